"""Fixed lambdas: the baseline every search strategy starts from."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from auxtune.robust.weighting.base import StepContext, Weighting, weighted_sum
from auxtune.robust.weighting.registry import register_weighting


@register_weighting
class FixedWeighting(Weighting):
    """Constant lambdas from the config: one backward pass of the weighted loss."""

    name = "fixed"
    lambdas_change = False

    def backward(self, losses: Mapping[str, torch.Tensor], ctx: StepContext) -> dict[str, Any]:
        weighted_sum(losses, {task: self.lambdas[task] for task in self.active_tasks()}).backward()
        return self.lambda_metrics()
