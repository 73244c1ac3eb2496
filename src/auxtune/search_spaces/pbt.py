"""``pbt``: Population Based Training over the lambdas.

Every ``search.perturbation_interval`` epochs the bottom quarter of the population copies the
checkpoint of a top-quarter trial (exploit) and perturbs its lambdas (explore: x0.8 / x1.2, or a
fresh uniform draw with probability 0.25). Trials checkpoint every epoch so any trial can donate.
"""

from __future__ import annotations

from typing import Any

from auxtune.search_spaces._population import ResumablePBT
from auxtune.search_spaces.base import SearchPlan, lambda_domains


def plan(exp: Any, num_trials: int) -> SearchPlan:
    scheduler = ResumablePBT(
        time_attr="training_iteration",
        metric=exp.search.metric,
        mode="max",
        perturbation_interval=exp.search.perturbation_interval,
        synch=exp.search.pbt_synch,
        hyperparam_mutations={"lambda": lambda_domains(exp)},
        quantile_fraction=0.25,
        resample_probability=0.25,
    )
    return SearchPlan(
        param_space={"lambda": lambda_domains(exp)},
        num_samples=num_trials,
        trials=num_trials,
        scheduler=scheduler,
        checkpoints_to_keep=4,
    )
