"""``random``: lambdas drawn uniformly from [lambda_low, lambda_high], ASHA stops weak trials early."""

from __future__ import annotations

from typing import Any

from auxtune.search_spaces.base import SearchPlan, asha, lambda_domains


def plan(exp: Any, num_trials: int) -> SearchPlan:
    return SearchPlan(
        param_space={"lambda": lambda_domains(exp)},
        num_samples=num_trials,
        trials=num_trials,
        scheduler=asha(exp),
    )
