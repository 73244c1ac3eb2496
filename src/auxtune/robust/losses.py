"""The named losses of one training step, and the main loss a label correction may replace.

    losses = {"main": CE(f(x), y), task: L_task(head(f(T_task(x))), target) for each active task}

One home for what the training step (:mod:`auxtune.robust.training`), its replays and the
training-time attack (:mod:`auxtune.robust.adversarial`, ``attack_loss=total``) compute, so the
attack maximises exactly the losses the step then trains on.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

import torch
from torch.nn import functional as F

from auxtune.robust.model import MultiHeadNet
from auxtune.robust.weighting import MAIN

#: (logits, labels) -> the main task's scalar loss
MainLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The main loss unless a label correction replaces it (in float32 under bf16 autocast)."""
    return F.cross_entropy(logits.float(), labels)


def compute_losses(
    model: MultiHeadNet,
    images: torch.Tensor,
    labels: torch.Tensor,
    aux_images: torch.Tensor | None = None,
    *,
    main_loss: MainLoss = cross_entropy,
    tasks: Collection[str] | None = None,
) -> dict[str, torch.Tensor]:
    """Main loss (cross-entropy unless a label correction replaces it) plus each task's loss on
    its own view of the same batch (of ``aux_images`` when given: adversarial training's clean or
    adversarial view). ``tasks``: the auxiliary tasks to compute (None: all the model's)."""
    losses = {MAIN: main_loss(model(images), labels)}
    views = images if aux_images is None else aux_images
    for name, task in model.tasks.items():
        if tasks is not None and name not in tasks:
            continue
        inputs, targets = task.make_inputs(views)  # type: ignore[operator]
        features = model.view_features(inputs)
        # loss_scale: a constant from tasks.loss_scales (the paper's code weighs MSEs by 30)
        losses[name] = task.loss_scale * task.loss(task(features), targets)  # type: ignore[operator]
    return losses
