"""The math of one training step: named losses, then the weighting's backward, then the update.

losses = {"main": CE(f(x), y), task: L_task(head(f(T_task(x))), target) for each active task}
L = losses["main"] + sum_i lambda_i * losses[task_i]     (weighting.weighted_sum)

Every loss has its own forward pass (disjoint graphs: the meta-gradient takes one gradient per
loss at the cost of one backward in all); by default only the clean main forward moves the
BatchNorm running statistics (``tasks.running_stats``). A task whose lambda stays 0 for the whole
run is not computed (``Weighting.active_tasks``).

With an ``adversary`` (adversarial training), x is first replaced by its PGD example for the main
head and, per ``adversarial.aux_view``, for the tasks' views (:mod:`auxtune.robust.adversarial`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any

import torch

from auxtune.robust.losses import MainLoss, compute_losses, cross_entropy
from auxtune.robust.model import MultiHeadNet
from auxtune.robust.weighting import StepContext, Weighting

if TYPE_CHECKING:
    from auxtune.robust.adversarial import Adversary


def train_step(
    model: MultiHeadNet,
    optimizer: torch.optim.Optimizer,
    weighting: Weighting,
    images: torch.Tensor,
    labels: torch.Tensor,
    ctx: StepContext,
    adversary: Adversary | None = None,
    main_loss: MainLoss = cross_entropy,
    task_images: torch.Tensor | None = None,
) -> dict[str, Any]:
    """One update; returns the detached losses under ``loss/<name>`` and the weighting's metrics.

    ``task_images``: the batch the auxiliary tasks see when it is not the main loss's (only
    some images are labelled: the main loss sees labelled ones, the tasks any)."""
    optimizer.zero_grad(set_to_none=True)
    tasks = weighting.active_tasks()  # a lambda fixed at 0: that task is not computed
    aux_images = task_images
    if (
        adversary is not None
    ):  # never with task_images (TrainConfig refuses the combination)  # the attack first: a replay (recompute_losses) reuses its examples
        lambdas = {task: weighting.lambdas[task] for task in tasks}
        with ctx.autocast() if ctx.autocast else torch.enable_grad():
            images, aux_images = adversary(model, images, labels, lambdas)
    ctx.recompute_losses = replayable(
        model, images, labels, ctx.autocast, aux_images, main_loss, tasks
    )
    with ctx.autocast() if ctx.autocast else torch.enable_grad():
        losses = compute_losses(model, images, labels, aux_images, main_loss=main_loss, tasks=tasks)
    metrics = weighting.backward(losses, ctx)
    optimizer.step()
    return {**{f"loss/{k}": v.detach() for k, v in losses.items()}, **metrics}


def replayable(
    model: MultiHeadNet,
    images: torch.Tensor,
    labels: torch.Tensor,
    autocast: Callable[[], Any] | None,
    aux_images: torch.Tensor | None = None,
    main_loss: MainLoss = cross_entropy,
    tasks: Collection[str] | None = None,
) -> Callable[[], dict[str, torch.Tensor]]:
    """``compute_losses`` as it is about to run now, to run again later: the task transforms draw
    the same random numbers (the RNG state is replayed), and the global RNG stream moves on as if
    the replay never happened."""
    devices = [images.device] if images.is_cuda else []
    cpu_state = torch.get_rng_state()
    device_state = [torch.cuda.get_rng_state(d) for d in devices]

    def again() -> dict[str, torch.Tensor]:
        with torch.random.fork_rng(devices=devices):
            torch.set_rng_state(cpu_state)
            for device, state in zip(devices, device_state):
                torch.cuda.set_rng_state(state, device)
            with autocast() if autocast else contextlib.nullcontext():
                return compute_losses(
                    model, images, labels, aux_images, main_loss=main_loss, tasks=tasks
                )

    return again
