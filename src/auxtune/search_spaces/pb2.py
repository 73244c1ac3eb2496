"""``pb2``: Population Based Bandits: PBT whose explore step picks new lambdas with a GP bandit
(time-varying GP-UCB) inside [lambda_low, lambda_high] instead of random perturbation."""

from __future__ import annotations

from typing import Any

from auxtune.search_spaces._population import ResumablePB2
from auxtune.search_spaces.base import SearchPlan, lambda_domains


def plan(exp: Any, num_trials: int) -> SearchPlan:
    bounds = [exp.search.lambda_low, exp.search.lambda_high]
    scheduler = ResumablePB2(
        time_attr="training_iteration",
        metric=exp.search.metric,
        mode="max",
        perturbation_interval=exp.search.perturbation_interval,
        synch=exp.search.pbt_synch,
        hyperparam_bounds={"lambda": {task: list(bounds) for task in exp.tasks.names}},
        quantile_fraction=0.25,
    )
    return SearchPlan(
        param_space={"lambda": lambda_domains(exp)},
        num_samples=num_trials,
        trials=num_trials,
        scheduler=scheduler,
        checkpoints_to_keep=4,
    )
