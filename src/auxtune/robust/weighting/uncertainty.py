"""Homoscedastic uncertainty weighting (Kendall, Gal & Cipolla, "Multi-Task Learning Using
Uncertainty to Weigh Losses for Scene Geometry and Semantics", CVPR 2018).

Each auxiliary task i has a learned log-variance s_i = log sigma_i^2, and the objective is

    L = L_main + sum_i ( exp(-s_i) L_i + s_i ),        lambda_i = exp(-s_i)

the form the multi-task literature uses (Kendall et al.'s classification likelihood gives
exp(-s_i) L_i + s_i / 2, others halve both terms; every variant has the same minimiser in s,
s_i* = log L_i, and differs only by a constant factor on lambda). The main task's log-variance is
held at 0, so L_main keeps weight 1 and the learning rate its meaning; each auxiliary task learns
how much it is trusted relative to the main one. s starts at -log(lambda_i) of the config (a lambda
of 0 switches a task off) and takes a plain SGD step on dL/ds_i = 1 - exp(-s_i) L_i at the
network's scheduled learning rate (no momentum, no weight decay: the regulariser s_i alone keeps
lambda finite). ``weighting.uncertainty.lambda_max`` optionally caps lambda (s_i >= -log lambda_max):
a loss near 0 drives lambda towards 1/L_i.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from auxtune.robust.weighting.base import MAIN, StepContext, Weighting, weighted_sum
from auxtune.robust.weighting.config import WeightingConfig
from auxtune.robust.weighting.options import WeightingOptions, check_option
from auxtune.robust.weighting.registry import register_weighting


@dataclass(frozen=True)
class UncertaintyOptions(WeightingOptions):
    """``weighting.uncertainty``: an optional upper bound of the learned lambdas."""

    lambda_max: float | None = None

    def __post_init__(self) -> None:
        check_option(
            self.lambda_max is None or self.lambda_max > 0,
            f"lambda_max = {self.lambda_max} must be > 0 (or null for no bound)",
        )


@register_weighting
class UncertaintyWeighting(Weighting):
    """lambda_i = exp(-s_i), the log-variances s learned jointly with the network."""

    name = "uncertainty"
    config_class = UncertaintyOptions
    options: UncertaintyOptions

    def __init__(self, cfg: WeightingConfig, tasks: tuple[str, ...]) -> None:
        super().__init__(cfg, tasks)
        initial = [-math.log(v) if v > 0 else math.inf for v in self.lambdas.values()]
        self.log_vars = torch.tensor(initial, dtype=torch.float64)  # s, in the order of tasks

    def lambda_bounds(self) -> tuple[float, float]:
        return 0.0, math.inf if self.options.lambda_max is None else self.options.lambda_max

    def backward(self, losses: Mapping[str, torch.Tensor], ctx: StepContext) -> dict[str, Any]:
        main = losses[MAIN]
        s = self.log_vars.to(main.device, torch.float32).requires_grad_()
        objective = uncertainty_objective(losses, s, self.tasks)
        objective.backward()
        assert s.grad is not None
        with torch.no_grad():
            step = s - ctx.lr * s.grad
            if self.options.lambda_max is not None:
                step.clamp_(min=-math.log(self.options.lambda_max))
        # lambda of this step's update, then the new s for the next one
        self.lambdas = dict(zip(self.tasks, torch.exp(-s.detach()).tolist()))
        self.log_vars = step.to("cpu", torch.float64)
        return self.lambda_metrics()

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "log_vars": self.log_vars.clone()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self.log_vars = state["log_vars"].clone().to(torch.float64)


def uncertainty_objective(
    losses: Mapping[str, torch.Tensor], log_vars: torch.Tensor, tasks: tuple[str, ...]
) -> torch.Tensor:
    """L_main + sum_i exp(-s_i) L_i + s_i (a task whose s is +inf, lambda 0, adds nothing)."""
    weights = dict(zip(tasks, torch.exp(-log_vars).unbind()))
    regulariser = torch.where(torch.isfinite(log_vars), log_vars, 0.0).sum()
    return weighted_sum(losses, weights) + regulariser
