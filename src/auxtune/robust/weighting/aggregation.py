"""Gradient aggregation through TorchJD: PCGrad, MGDA, UPGrad and CAGrad as weightings.

Each step takes the per-loss gradients over the shared parameters psi (one backward in all,
:func:`~auxtune.robust.weighting.gradients.task_gradients`) as the rows of

    J = [ g_main ; lambda0_1 g_1 ; ... ; lambda0_k g_k ]

(the gradients of L_main and of each lambda0_i L_i, lambda0 being ``weighting.lambdas`` /
``init_lambda``: the user's prior on each auxiliary task's scale), hands its Gramian J J^T to the
aggregator's TorchJD weighting, and gets weights w with the aggregated direction d = w^T J. These
methods treat the rows symmetrically; the main task keeps its priority because the step is
d / w_main: the aggregator picks the direction, the main gradient enters with coefficient 1 (as in
every other weighting, so ``optim.lr`` means the same) and the step is exactly the gradient of

    L_main + sum_i lambda_i L_i,        lambda_i = lambda0_i * w_i / w_main,

the lambdas reported as ``lambda/<task>``. PCGrad, UPGrad and CAGrad give the main row a weight of
at least 1/(1 + k) of theirs (PCGrad and UPGrad at least 1), so d / w_main stays bounded; a lambda
may still be large, where the aggregator adds a big multiple of a small gradient. MGDA may give the
main gradient no weight at all: its lambdas are capped at ``weighting.mgda.lambda_max`` (default 1,
no auxiliary loss weighs more than the main one), and where the cap binds the direction is no
longer MGDA's. ``lambda_max`` caps the others too when set. Without conflicts PCGrad and UPGrad
give w proportional to 1: the fixed weighting with lambda0.

TorchJD is imported when the first aggregating weighting is built; CAGrad needs its ``cagrad``
extra (cvxpy), UPGrad's default projector its ``quadprog-projector`` extra.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from auxtune.robust.weighting.base import StepContext, Weighting
from auxtune.robust.weighting.config import WeightingConfig
from auxtune.robust.weighting.gradients import task_gradients
from auxtune.robust.weighting.options import WeightingOptions, check_option
from auxtune.robust.weighting.registry import register_weighting


@dataclass(frozen=True)
class AggregationOptions(WeightingOptions):
    """``weighting.<pcgrad|upgrad>``: an optional upper bound of the effective lambdas."""

    lambda_max: float | None = None

    def __post_init__(self) -> None:
        check_option(
            self.lambda_max is None or self.lambda_max > 0,
            f"lambda_max = {self.lambda_max} must be > 0 (or null for no bound)",
        )


@dataclass(frozen=True)
class MGDAOptions(AggregationOptions):
    """``weighting.mgda``: the lambdas' bound (MGDA may leave the main gradient out entirely)."""

    lambda_max: float | None = 1.0


@dataclass(frozen=True)
class CAGradOptions(AggregationOptions):
    """``weighting.cagrad``: c, the radius of the ball around the mean gradient (0: the mean)."""

    c: float = 0.4  # the value the CAGrad paper uses on NYUv2
    search: dict[str, tuple[float, float]] = field(default_factory=lambda: {"c": (0.1, 0.9)})

    def __post_init__(self) -> None:
        super().__post_init__()
        check_option(self.c >= 0, f"c = {self.c} must be >= 0")


class GradientAggregation(Weighting):
    """The adapter: per-loss gradients -> Gramian -> TorchJD weights -> effective lambdas."""

    config_class = AggregationOptions
    needs_task_gradients = True
    options: AggregationOptions

    def __init__(self, cfg: WeightingConfig, tasks: tuple[str, ...]) -> None:
        super().__init__(cfg, tasks)
        self.base = dict(self.lambdas)  # lambda0: the rows' scales
        self.gramian_weighting = self.torchjd_weighting()

    @abstractmethod
    def torchjd_weighting(self) -> torch.nn.Module:
        """The TorchJD ``Weighting`` mapping a Gramian to the aggregation weights."""

    def lambda_bounds(self) -> tuple[float, float]:
        return 0.0, math.inf if self.options.lambda_max is None else self.options.lambda_max

    def backward(self, losses: Mapping[str, torch.Tensor], ctx: StepContext) -> dict[str, Any]:
        grads = task_gradients(ctx.model, losses, self.tasks)
        self.lambdas = self.combine(grads.matrix)
        grads.apply(ctx.model, self.lambdas)
        return self.lambda_metrics()

    def combine(self, matrix: torch.Tensor) -> dict[str, float]:
        """The effective lambdas for the per-loss gradients ``matrix`` (rows: main, then tasks)."""
        scales = torch.tensor([1.0, *self.base.values()], dtype=torch.float64)
        gramian = (matrix @ matrix.T).double().cpu() * torch.outer(scales, scales)
        weights = self.gramian_weighting(gramian)
        return effective_lambdas(weights, self.base, self.lambda_bounds()[1])


def effective_lambdas(
    weights: torch.Tensor, base: Mapping[str, float], lambda_max: float
) -> dict[str, float]:
    """lambda_i = clip(lambda0_i * w_i / w_main, 0, lambda_max) for weights w of the rows
    [g_main, lambda0_1 g_1, ...]: the coefficients of d / w_main on the unscaled gradients.

    >>> effective_lambdas(torch.tensor([2.0, 1.0, 0.0]), {"a": 0.5, "b": 0.5}, lambda_max=10.0)
    {'a': 0.25, 'b': 0.0}
    """
    main, *rest = weights.tolist()
    result = {}
    for (task, scale), w in zip(base.items(), rest):
        value = scale * w
        ratio = value / main if main > 0 else (float("inf") if value > 0 else 0.0)
        result[task] = min(max(ratio, 0.0), lambda_max)
    return result


@register_weighting
class PCGradAggregation(GradientAggregation):
    """PCGrad (Yu, Kumar, Gupta, Levine, Hausman & Finn, "Gradient Surgery for Multi-Task
    Learning", NeurIPS 2020): each gradient loses its component along every gradient it conflicts
    with (negative inner product), in a random order, and the projected gradients are summed."""

    name = "pcgrad"

    def torchjd_weighting(self) -> torch.nn.Module:
        from torchjd.aggregation import PCGradWeighting

        return PCGradWeighting()


@register_weighting
class MGDAAggregation(GradientAggregation):
    """MGDA (Desideri, "Multiple-gradient descent algorithm for multiobjective optimization", 2012;
    the Frank-Wolfe solver of Sener & Koltun, "Multi-Task Learning as Multi-Objective
    Optimization", NeurIPS 2018): the minimum-norm point of the rows' convex hull."""

    name = "mgda"
    config_class = MGDAOptions

    def torchjd_weighting(self) -> torch.nn.Module:
        from torchjd.aggregation import MGDAWeighting

        return MGDAWeighting()


@register_weighting
class UPGradAggregation(GradientAggregation):
    """UPGrad (Quinton & Rey, "Jacobian Descent for Multi-Objective Optimization", 2024): each row
    projected onto the dual cone of the rows (so the result conflicts with none), then averaged."""

    name = "upgrad"

    def torchjd_weighting(self) -> torch.nn.Module:
        from torchjd.aggregation import UPGradWeighting

        return UPGradWeighting()


@register_weighting
class CAGradAggregation(GradientAggregation):
    """CAGrad (Liu, Liu, Jin, Stone & Liu, "Conflict-Averse Gradient Descent for Multi-task
    Learning", NeurIPS 2021): the mean gradient, moved within a ball of radius c * |mean| to raise
    the worst task's improvement."""

    name = "cagrad"
    config_class = CAGradOptions
    options: CAGradOptions

    def torchjd_weighting(self) -> torch.nn.Module:
        from torchjd.aggregation import CAGradWeighting

        return CAGradWeighting(c=self.options.c)
