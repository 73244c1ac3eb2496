"""Accuracy under our PGD: the worst case per image over every iterate and restart, and accuracy
along a sweep of radii.

Every attack here runs the model in eval mode and in float32 (bf16 rounding flattens the loss
surface an attack climbs), on uint8 (N, 32, 32, 3) images like :func:`auxtune.robust.trainer.predict`.
An image counts as robust only if it is classified correctly clean, at every PGD iterate (each
lies inside the ball, so each is an adversarial example) and after every restart: the worst case
per image. The library's attacks (:mod:`auxtune.robust.art_attacks`) run in the same mode.

    >>> import numpy as np, torch
    >>> from auxtune.robust.config import ModelConfig, TasksConfig
    >>> from auxtune.robust.model import MultiHeadNet
    >>> model = MultiHeadNet(ModelConfig(depth=10, widen_factor=1, base_width=4), TasksConfig(), 10)
    >>> images, labels = np.zeros((4, 32, 32, 3), np.uint8), np.zeros(4, np.int64)
    >>> pgd = PGD("linf", epsilon=8 / 255, step_size=2 / 255, steps=2)
    >>> 0.0 <= robust_accuracy(model, images, labels, pgd) <= 1.0
    True
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from auxtune.robust.adversarial import PGD
from auxtune.robust.data_utils import as_tensor, to_model_input

EVAL_SEED = 0  # random starts of evaluation attacks: fixed, so epochs and trials are comparable


def robust_correct(
    model: nn.Module,
    images: np.ndarray | torch.Tensor,
    labels: np.ndarray | torch.Tensor,
    pgd: PGD,
    *,
    restarts: int = 1,
    seed: int = EVAL_SEED,
    batch_size: int = 256,
) -> torch.Tensor:
    """Per image (bool, on the CPU): correct clean, at every iterate and after every restart."""
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    out = []
    with eval_mode(model):
        for start in range(0, len(labels), batch_size):
            x = to_model_input(as_tensor(images[start : start + batch_size], device))
            y = as_tensor(labels[start : start + batch_size], device).long()
            out.append(_robust_batch(model, x, y, pgd, restarts, generator).cpu())
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.bool)


def _robust_batch(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    pgd: PGD,
    restarts: int,
    generator: torch.Generator,
) -> torch.Tensor:
    with torch.no_grad():
        correct = model(x).argmax(1) == y
    for _ in range(restarts):
        index = correct.nonzero().squeeze(1)  # attack only what still stands
        if len(index) == 0:
            break
        xs, ys = x[index], y[index]
        fooled = torch.zeros_like(ys, dtype=torch.bool)

        def loss(z: torch.Tensor, ys: torch.Tensor = ys, fooled: torch.Tensor = fooled) -> Any:
            logits = model(z)
            fooled.logical_or_(logits.detach().argmax(1) != ys)  # any iterate fooling counts
            return F.cross_entropy(logits.float(), ys, reduction="sum")

        last = pgd.perturb(loss, xs, generator=generator)
        with torch.no_grad():
            fooled.logical_or_(model(last).argmax(1) != ys)
        correct[index] = ~fooled
    return correct


def robust_accuracy(
    model: nn.Module,
    images: np.ndarray | torch.Tensor,
    labels: np.ndarray | torch.Tensor,
    pgd: PGD,
    **kwargs: Any,
) -> float:
    """Fraction of images robust to ``pgd`` (see :func:`robust_correct` for ``restarts``, ``seed``)."""
    correct = robust_correct(model, images, labels, pgd, **kwargs)
    return float(correct.float().mean()) if len(correct) else float("nan")


def pgd_k(threat_model: str, epsilon: float, steps: int) -> PGD:
    """PGD-``steps`` with a random start and step epsilon / 4: 2/255 at CIFAR's 8/255, the usual
    choice (Madry et al.); PGD-20 can travel 5 epsilon, PGD-100 25, so longer is stronger."""
    return PGD(threat_model, epsilon, epsilon / 4, steps, random_start=True)  # type: ignore[arg-type]


def epsilon_sweep(
    model: nn.Module,
    images: np.ndarray | torch.Tensor,
    labels: np.ndarray | torch.Tensor,
    threat_model: str,
    epsilons: Sequence[float],
    *,
    steps: int = 20,
    **kwargs: Any,
) -> dict[float, float]:
    """Accuracy under PGD-``steps`` at each test epsilon (0 gives the clean accuracy)."""
    return {
        eps: robust_accuracy(model, images, labels, pgd_k(threat_model, eps, steps), **kwargs)
        for eps in epsilons
    }


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)
