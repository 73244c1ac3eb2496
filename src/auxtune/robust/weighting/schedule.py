"""A lambda schedule given per epoch: the lambdas a PBT trial ended up training with, replayed.

``weighting.schedule.per_epoch`` lists one ``{task: lambda}`` per epoch; epoch ``e`` trains with
entry ``e`` (the last entry holds for every later epoch). An entry that leaves a task out keeps
that task's lambda from the epoch before, starting from ``weighting.lambdas`` / ``init_lambda``.
Within an epoch it is the fixed weighting (one backward of L_main + sum_i lambda_i L_i; the main
loss keeps weight 1)::

    weighting:
      name: schedule
      schedule:
        per_epoch: [{rotation: 0.5}, {rotation: 0.8}, {rotation: 0.3, jigsaw: 0.1}]

Not learned, not searched: a strategy over it runs seeds of one schedule. Its state is a function
of the epoch alone, so resumes are exact.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from auxtune.config import check
from auxtune.robust.weighting.base import StepContext, Weighting, weighted_sum
from auxtune.robust.weighting.options import WeightingOptions, check_option
from auxtune.robust.weighting.registry import register_weighting

if TYPE_CHECKING:
    from auxtune.robust.config import TrainConfig


@dataclass(frozen=True)
class ScheduleOptions(WeightingOptions):
    """``weighting.schedule``: one ``{task: lambda}`` per epoch (the last holds afterwards)."""

    per_epoch: tuple[dict[str, float], ...] = ()

    def __post_init__(self) -> None:
        for epoch, entry in enumerate(self.per_epoch):
            for task, value in entry.items():
                check_option(value >= 0, f"per_epoch[{epoch}].{task} = {value} must be >= 0")

    def check_with(self, cfg: TrainConfig) -> None:
        for epoch, entry in enumerate(self.per_epoch):
            for task in entry:
                check(
                    task in cfg.tasks.names,
                    f"weighting.schedule.per_epoch[{epoch}].{task} is set but {task!r} is not in "
                    f"tasks.names {list(cfg.tasks.names)}",
                )


@register_weighting
class ScheduledWeighting(Weighting):
    """Lambdas piecewise constant per epoch, from the config (``weighting.schedule.per_epoch``)."""

    name = "schedule"
    config_class = ScheduleOptions
    options: ScheduleOptions

    def backward(self, losses: Mapping[str, torch.Tensor], ctx: StepContext) -> dict[str, Any]:
        self.lambdas = self.lambdas_at(ctx.epoch)
        weighted_sum(losses, self.lambdas).backward()
        return self.lambda_metrics()

    def lambdas_at(self, epoch: int) -> dict[str, float]:
        """The lambdas of 0-based ``epoch``: the entries up to it applied in turn."""
        lambdas = self.cfg.initial_lambdas(self.tasks)
        for entry in self.options.per_epoch[: epoch + 1]:
            lambdas.update({task: float(v) for task, v in entry.items() if task in lambdas})
        return lambdas
