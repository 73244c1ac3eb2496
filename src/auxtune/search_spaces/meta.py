"""``meta``: online meta-gradient trials (``weighting.name=meta``, Kim, Lee & Suh).

Each trial learns its lambdas during training; the search draws the meta step size beta
(``meta_lr``, log-uniform in [meta_lr_low, meta_lr_high]) and the initial lambdas (uniform in
[lambda_low, lambda_high]). ASHA stops weak trials, never before the warm-up epochs are over.
"""

from __future__ import annotations

from typing import Any

from ray import tune

from auxtune.search_spaces.base import SearchPlan, asha, lambda_domains


def plan(exp: Any, num_trials: int) -> SearchPlan:
    grace = max(exp.search.grace_period, exp.weighting.warmup_epochs + 1)
    return SearchPlan(
        param_space={
            "meta_lr": tune.loguniform(exp.search.meta_lr_low, exp.search.meta_lr_high),
            "lambda": lambda_domains(exp),
        },
        num_samples=num_trials,
        trials=num_trials,
        scheduler=asha(exp, grace_period=grace),
        weighting="meta",
    )
