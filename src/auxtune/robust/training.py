"""The math of one training step: named losses, then the weighting's backward, then the update.

losses = {"main": CE(f(x), y), task: L_task(head(f(T_task(x))), target) for each task}
L = losses["main"] + sum_i lambda_i * losses[task_i]     (weighting.weighted_sum)
"""

from __future__ import annotations

from typing import Any

import torch
from torch.nn import functional as F

from auxtune.robust.model import MultiHeadNet
from auxtune.robust.weighting import MAIN, StepContext, Weighting


def compute_losses(
    model: MultiHeadNet, images: torch.Tensor, labels: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Main cross-entropy plus each task's loss on its own view of the same batch."""
    losses = {MAIN: F.cross_entropy(model(images).float(), labels)}
    for name, task in model.tasks.items():
        inputs, targets = task.make_inputs(images)  # type: ignore[operator]
        features = model.backbone.forward_features(inputs)
        losses[name] = task.loss(task(features), targets)  # type: ignore[operator]
    return losses


def train_step(
    model: MultiHeadNet,
    optimizer: torch.optim.Optimizer,
    weighting: Weighting,
    images: torch.Tensor,
    labels: torch.Tensor,
    ctx: StepContext,
) -> dict[str, Any]:
    """One update; returns the detached losses under ``loss/<name>`` and the weighting's metrics."""
    optimizer.zero_grad(set_to_none=True)
    with ctx.autocast() if ctx.autocast else torch.enable_grad():
        losses = compute_losses(model, images, labels)
    metrics = weighting.backward(losses, ctx)
    optimizer.step()
    return {**{f"loss/{k}": v.detach() for k, v in losses.items()}, **metrics}
