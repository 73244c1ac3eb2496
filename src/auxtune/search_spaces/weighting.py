"""Any registered weighting as a strategy: its trials train with it (``weighting.name=<name>``).

The search draws what the weighting's config section declares searchable (``search``: field ->
range, log-uniform for its ``log_scale`` fields) under the dotted keys ``weighting.<name>.<field>``,
and the initial lambdas (uniform in [lambda_low, lambda_high]) when the weighting says it learns
from them (``search_lambdas``, e.g. ``meta``). ASHA stops weak trials, never before the weighting's
warm-up epochs are over.

A weighting with nothing to search (``pcgrad``, ``mgda``, ``upgrad``, ``schedule``, an empty
``search``) has one configuration: its ``num_trials`` trials are that configuration at seeds
``seed``, ``seed + 1``, ... (no early stopping), which measures how much the method varies with
the seed; the best trial is the best seed.
"""

from __future__ import annotations

from typing import Any

from auxtune.robust.weighting.registry import weighting_class
from auxtune.search_spaces.base import SearchPlan, asha, lambda_domains


def plan(exp: Any, num_trials: int, name: str) -> SearchPlan:
    cls = weighting_class(name)
    options = exp.weighting.section(name)
    space = hyperparameter_domains(name, options)
    if cls.search_lambdas:
        space["lambda"] = lambda_domains(exp)
    if not space:
        seeds = [exp.seed + i for i in range(num_trials)]
        return SearchPlan(
            param_space={"seed": _grid(seeds)},
            num_samples=1,
            trials=num_trials,
            weighting=name,
            notes=[f"{name}: nothing to search; its {num_trials} trials are seeds {seeds}"],
        )
    warmup = cls.warmup_epochs(options) if options is not None else 0
    return SearchPlan(
        param_space=space,
        num_samples=num_trials,
        trials=num_trials,
        scheduler=asha(exp, grace_period=max(exp.search.grace_period, warmup + 1)),
        weighting=name,
    )


def hyperparameter_domains(name: str, options: Any) -> dict[str, Any]:
    """``{"weighting.<name>.<field>": Tune domain}`` for every range in the section's ``search``."""
    from ray import tune

    if options is None:
        return {}
    return {
        f"weighting.{name}.{key}": (
            tune.loguniform(low, high) if options.scale(key) == "log" else tune.uniform(low, high)
        )
        for key, (low, high) in options.search_ranges().items()
    }


def _grid(values: list[int]) -> Any:
    from ray import tune

    return tune.grid_search(values)
