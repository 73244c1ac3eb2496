"""Out-of-distribution detection: detectors that score images, metrics that score detectors.

A detector maps a batch to outlier scores, higher = more anomalous (pytorch-ood's convention):

- ``msp``: the negative maximum softmax probability (Hendrycks & Gimpel 2017), the baseline;
- ``max_logit``: the negative maximum logit (Hendrycks et al. 2022);
- ``energy``: -logsumexp of the logits (Liu et al. 2020);
- ``rotation``: the sum over the four rotations r of the rotation head's cross-entropy on the
  image rotated by r (Hendrycks, Mazeika, Kadavath & Song 2019): a network that cannot tell how
  an image is turned has not seen its like. Needs the rotation task.

The metrics come from pytorch-ood, with the OOD images as the positive class: AUROC; AUPR (its
AUPR-OUT); and FPR95, the fraction of in-distribution images flagged when the threshold catches
95 % of the OOD images.

    >>> inliers, outliers = torch.tensor([0.1, 0.2, 0.3, 0.4]), torch.tensor([0.35, 0.5])
    >>> m = detection_metrics(inliers, outliers)
    >>> m.auroc, m.fpr95
    (0.875, 0.25)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from auxtune.robust.config import OOD_DETECTORS, ood_detectors
from auxtune.robust.data_utils import as_tensor, to_model_input
from auxtune.robust.model import MultiHeadNet
from auxtune.robust.tasks.rotation import rotate

#: (model, model-ready images, their logits) -> (N,) outlier scores, higher = more anomalous
Detector = Callable[[MultiHeadNet, torch.Tensor, torch.Tensor], torch.Tensor]

DETECTORS: dict[str, Detector] = {}


def register_detector(name: str) -> Callable[[Detector], Detector]:
    """Make a detector available by ``name`` (listed, with the task it needs, in the config)."""
    if name not in OOD_DETECTORS:
        raise ValueError(f"add {name!r} to auxtune.robust.config.OOD_DETECTORS first")

    def register(detector: Detector) -> Detector:
        DETECTORS[name] = detector
        return detector

    return register


# pytorch-ood is imported where it is used: it takes seconds to import and only evaluation needs it
@register_detector("msp")
def max_softmax_score(model: MultiHeadNet, x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    from pytorch_ood.detector import MaxSoftmax

    return MaxSoftmax.score(logits.float())


@register_detector("max_logit")
def max_logit_score(model: MultiHeadNet, x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    from pytorch_ood.detector import MaxLogit

    return MaxLogit.score(logits.float())


@register_detector("energy")
def energy_score(model: MultiHeadNet, x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    from pytorch_ood.detector import EnergyBased

    return EnergyBased.score(logits.float())


@register_detector("rotation")
def rotation_score(model: MultiHeadNet, x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    head = model.task("rotation")
    total = x.new_zeros(len(x), dtype=torch.float32)
    for turns in range(4):
        predicted = head(model.backbone.forward_features(rotate(x, turns))).float()
        target = torch.full((len(x),), turns, device=x.device)
        total += F.cross_entropy(predicted, target, reduction="none")
    return total


@torch.no_grad()
def outlier_scores(
    model: MultiHeadNet,
    images: np.ndarray | torch.Tensor,
    detectors: Sequence[str],
    device: torch.device,
    *,
    batch_size: int = 500,
    autocast: Callable[[], Any] | None = None,
    fmt: torch.memory_format = torch.contiguous_format,
) -> dict[str, torch.Tensor]:
    """Each detector's scores (N,) of uint8 (N, 32, 32, 3) images, on the CPU, model in eval mode."""
    was_training = model.training
    model.eval()
    chunks: dict[str, list[torch.Tensor]] = {name: [] for name in detectors}
    for start in range(0, len(images), batch_size):
        x = to_model_input(as_tensor(images[start : start + batch_size], device))
        x = x.contiguous(memory_format=fmt)
        with autocast() if autocast else torch.no_grad():
            logits = model(x)
            for name in detectors:
                chunks[name].append(DETECTORS[name](model, x, logits).float().cpu())
    model.train(was_training)
    return {name: torch.cat(parts) for name, parts in chunks.items()}


@dataclass(frozen=True)
class DetectionMetrics:
    """How well scores separate in-distribution from OOD images (OOD = positive)."""

    auroc: float  # 0.5 = chance, 1 = perfect
    aupr: float  # area under precision-recall, OOD positive (AUPR-OUT)
    fpr95: float  # in-distribution images flagged at 95 % of the OOD images caught; lower is better

    def as_dict(self) -> dict[str, float]:
        return {"auroc": self.auroc, "aupr": self.aupr, "fpr95": self.fpr95}


def detection_metrics(inliers: torch.Tensor, outliers: torch.Tensor) -> DetectionMetrics:
    """AUROC, AUPR and FPR95 (pytorch-ood) of outlier scores of in-distribution and OOD images."""
    from pytorch_ood.metrics import functional as ood_metrics

    scores = torch.cat([inliers.double(), outliers.double()])
    labels = torch.cat([torch.zeros(len(inliers)), -torch.ones(len(outliers))]).long()
    return DetectionMetrics(
        auroc=float(ood_metrics.auroc(scores, labels)),
        aupr=float(ood_metrics.aupr(scores, labels, positive="ood")),
        fpr95=float(ood_metrics.fpr_at_tpr(scores, labels, tpr=0.95)),
    )


def evaluate_ood(
    model: MultiHeadNet,
    inliers: np.ndarray | torch.Tensor,
    ood_sets: Mapping[str, np.ndarray | torch.Tensor],
    device: torch.device,
    detectors: Sequence[str] | None = None,
    **kwargs: Any,
) -> dict[str, dict[str, DetectionMetrics]]:
    """``{set: {detector: metrics}}``: every detector the model supports (or ``detectors``) on
    ``inliers`` against each OOD set; the in-distribution images are scored once."""
    names = tuple(detectors or ood_detectors(tuple(model.tasks)))
    reference = outlier_scores(model, inliers, names, device, **kwargs)
    results: dict[str, dict[str, DetectionMetrics]] = {}
    for set_name, images in ood_sets.items():
        scores = outlier_scores(model, images, names, device, **kwargs)
        results[set_name] = {d: detection_metrics(reference[d], scores[d]) for d in names}
    return results
