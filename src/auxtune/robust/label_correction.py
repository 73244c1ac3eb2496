"""Gold Loss Correction's first stage: train on the untrusted images, estimate C from the trusted.

Both ``auxtune train`` and a search trial run it before the model they keep (stage 2, a
:class:`~auxtune.robust.trainer.Trainer` given the estimate) starts. Stage 1 is the same
experiment (network, tasks, weighting, ``optim.epochs``) with plain cross-entropy on the
untrusted images only: trained on the trusted ones too, its softmax on them would be pulled
towards their clean labels and C_hat towards the identity.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from auxtune.robust.config import TrainConfig
from auxtune.robust.data_utils import as_tensor, to_model_input
from auxtune.robust.gold_loss import estimate_corruption_matrix
from auxtune.robust.model import MultiHeadNet
from auxtune.robust.trainer import MetaBatchSource, Trainer


@dataclass(frozen=True)
class CorruptionEstimate:
    matrix: torch.Tensor  # C_hat (K, K) on the CPU
    seconds: float  # wall time of stage 1
    epochs: int


def stage_one_config(cfg: TrainConfig) -> TrainConfig:
    """Stage 1 trains like the experiment, with no correction of its own."""
    noise = dataclasses.replace(cfg.label_noise, correction="none")
    return dataclasses.replace(cfg, label_noise=noise)


def estimate_corruption(
    cfg: TrainConfig,
    images: np.ndarray | torch.Tensor,
    labels: np.ndarray | torch.Tensor,
    trusted: np.ndarray,
    num_classes: int,
    *,
    meta_source: MetaBatchSource | None = None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> CorruptionEstimate:
    """Train stage 1 on the images ``trusted`` does not mark; C_hat from its softmax on the others.

    ``on_epoch`` receives each stage-1 epoch's metrics (for progress lines).
    """
    start = time.perf_counter()
    untrusted = np.flatnonzero(~trusted)
    stage_one = Trainer(
        stage_one_config(cfg),
        images[untrusted],
        labels[untrusted],
        num_classes,
        meta_source=meta_source,
    )
    while stage_one.epoch < cfg.optim.epochs:
        metrics = stage_one.train_epoch()
        if on_epoch is not None:
            on_epoch(metrics)
    chosen = np.flatnonzero(trusted)
    probs = predicted_probabilities(stage_one.model, images[chosen], stage_one.device)
    clean = as_tensor(labels[chosen], probs.device).long()
    matrix = estimate_corruption_matrix(probs, clean, num_classes)
    return CorruptionEstimate(matrix.cpu(), time.perf_counter() - start, cfg.optim.epochs)


@torch.no_grad()
def predicted_probabilities(
    model: MultiHeadNet,
    images: np.ndarray | torch.Tensor,
    device: torch.device,
    batch_size: int = 500,
) -> torch.Tensor:
    """softmax(f(x)) (N, K) in float32 of uint8 (N, 32, 32, 3) images, eval mode, batched."""
    was_training = model.training
    model.eval()
    chunks = [
        model(to_model_input(as_tensor(images[i : i + batch_size], device))).float().softmax(1)
        for i in range(0, len(images), batch_size)
    ]
    model.train(was_training)
    return torch.cat(chunks)
