"""Dynamic Weight Average (Liu, Johns & Davison, "End-to-End Multi-Task Learning with Attention",
CVPR 2019): a task whose loss falls slowly gets more weight in the next epoch.

With L_i(e) the mean training loss of auxiliary task i over epoch e, k tasks and temperature T,
the lambdas of epoch e >= 2 are

    w_i = L_i(e-1) / L_i(e-2),        lambda_i(e) = lambda0_i * k * exp(w_i / T) / sum_j exp(w_j / T)

and lambda_i(0) = lambda_i(1) = lambda0_i. With every lambda0_i = 1 this is the paper's rule over
the auxiliary tasks; lambda0 (``weighting.lambdas`` / ``init_lambda``) sets the scale, and DWA only
redistributes it (the factors k * softmax average 1). The main task keeps weight 1 and is not part
of the softmax: its loss ratio would otherwise take weight from the auxiliary tasks, or give it to
them. Each step is one backward of L_main + sum_i lambda_i L_i. ``weighting.dwa.temperature`` is T
(the paper's 2; larger T flattens the weights towards lambda0).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from auxtune.robust.weighting.base import StepContext, Weighting, weighted_sum
from auxtune.robust.weighting.config import WeightingConfig
from auxtune.robust.weighting.options import WeightingOptions, check_option
from auxtune.robust.weighting.registry import register_weighting


@dataclass(frozen=True)
class DWAOptions(WeightingOptions):
    """``weighting.dwa``: the softmax temperature T."""

    temperature: float = 2.0
    search: dict[str, tuple[float, float]] = field(
        default_factory=lambda: {"temperature": (0.5, 10.0)}
    )

    log_scale = frozenset({"temperature"})

    def __post_init__(self) -> None:
        check_option(self.temperature > 0, f"temperature = {self.temperature} must be > 0")


@register_weighting
class DynamicWeightAverage(Weighting):
    """Lambdas set once per epoch from the two previous epochs' mean auxiliary losses."""

    name = "dwa"
    config_class = DWAOptions
    options: DWAOptions

    def __init__(self, cfg: WeightingConfig, tasks: tuple[str, ...]) -> None:
        super().__init__(cfg, tasks)
        self.base = dict(self.lambdas)  # lambda0
        self.epoch = -1  # the epoch the running sums belong to
        self.loss_sums = torch.zeros(len(tasks), dtype=torch.float64)
        self.steps = 0
        self.epoch_means: list[torch.Tensor] = []  # the last two finished epochs, oldest first

    def lambda_bounds(self) -> tuple[float, float]:
        return 0.0, max(self.base.values(), default=0.0) * len(self.tasks)

    def backward(self, losses: Mapping[str, torch.Tensor], ctx: StepContext) -> dict[str, Any]:
        if ctx.epoch != self.epoch:
            self._start_epoch(ctx.epoch)
        weighted_sum(losses, self.lambdas).backward()
        step = torch.stack([losses[task].detach() for task in self.tasks]).to("cpu")
        self.loss_sums += step.to(torch.float64)
        self.steps += 1
        return self.lambda_metrics()

    def _start_epoch(self, epoch: int) -> None:
        if self.steps and epoch == self.epoch + 1:  # a finished epoch: its mean losses count
            self.epoch_means = [*self.epoch_means, self.loss_sums / self.steps][-2:]
        self.epoch, self.loss_sums, self.steps = epoch, torch.zeros_like(self.loss_sums), 0
        if len(self.epoch_means) == 2:
            factors = dwa_factors(
                self.epoch_means[-1], self.epoch_means[-2], self.options.temperature
            )
            self.lambdas = {t: self.base[t] * f for t, f in zip(self.tasks, factors.tolist())}

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "epoch": self.epoch,
            "loss_sums": self.loss_sums.clone(),
            "steps": self.steps,
            "epoch_means": [m.clone() for m in self.epoch_means],
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self.epoch, self.steps = int(state["epoch"]), int(state["steps"])
        self.loss_sums = state["loss_sums"].clone()
        self.epoch_means = [m.clone() for m in state["epoch_means"]]


def dwa_factors(last: torch.Tensor, before: torch.Tensor, temperature: float) -> torch.Tensor:
    """k * softmax(w / T) with w_i = last_i / before_i: the factors DWA multiplies lambda0 with.

    >>> dwa_factors(torch.tensor([1.0, 1.0]), torch.tensor([2.0, 1.0]), temperature=1.0)
    tensor([0.7551, 1.2449])
    """
    ratios = last / before.clamp_min(torch.finfo(before.dtype).tiny)
    return len(ratios) * torch.softmax(ratios / temperature, dim=0)
