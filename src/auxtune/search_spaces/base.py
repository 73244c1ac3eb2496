"""What a strategy hands the search driver, and the pieces strategies share."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # Ray is imported when a plan is built, not when strategies are listed
    from ray.tune.schedulers import ASHAScheduler


@dataclass
class SearchPlan:
    """A strategy's Tune setup.

    ``param_space``: Tune's config space (``lambda: {task: domain}``, dotted config keys such as
    ``weighting.<name>.<hyperparameter>``, ``seed``);
    ``num_samples``: Tune's num_samples (a grid multiplies it); ``trials``: how many trials that makes;
    ``weighting``: the weighting the trials train with (None keeps the experiment's);
    ``checkpoints_to_keep``: per trial (PBT needs recent ones of every trial).
    """

    param_space: dict[str, Any]
    num_samples: int
    trials: int
    search_alg: Any = None
    scheduler: Any = None
    weighting: str | None = None
    checkpoints_to_keep: int | None = 2
    notes: list[str] = field(default_factory=list)


def lambda_domains(exp: Any) -> dict[str, Any]:
    """Uniform lambda in [search.lambda_low, search.lambda_high] for every task."""
    from ray import tune

    low, high = exp.search.lambda_low, exp.search.lambda_high
    return {task: tune.uniform(low, high) for task in exp.tasks.names}


def asha(exp: Any, *, grace_period: int | None = None) -> ASHAScheduler:
    """Asynchronous successive halving on epochs (``training_iteration``), maximising the metric."""
    from ray.tune.schedulers import ASHAScheduler

    epochs = exp.optim.epochs
    grace = min(grace_period or exp.search.grace_period, epochs)
    return ASHAScheduler(
        time_attr="training_iteration",
        metric=exp.search.metric,
        mode="max",
        max_t=epochs,
        grace_period=grace,
        reduction_factor=exp.search.reduction_factor,
    )
