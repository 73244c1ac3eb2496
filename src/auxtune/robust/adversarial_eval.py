"""The attacks by name, and the accuracies a run reports under attack.

:func:`run_attack` runs any attack :data:`~auxtune.robust.adversarial_config.ATTACK_FORMS` names:
``pgd<K>`` is ours (:mod:`auxtune.robust.pgd_eval`), the others the library's
(:mod:`auxtune.robust.art_attacks`). A trial reports ``val_adv_accuracy`` every epoch
(:func:`epoch_metrics`) and, at its end, each of ``adversarial.final_attacks`` and the epsilon
sweep (:func:`final_metrics`); the sanity checks on them are :mod:`auxtune.robust.gradient_masking`.

    >>> attack_metric("pgd20"), sweep_multiple(sweep_metric(0.5))
    ('adv_pgd20_accuracy', 0.5)
"""

from __future__ import annotations

import dataclasses
import re
import time
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from torch import nn

from auxtune.robust.adversarial import PGD
from auxtune.robust.adversarial_config import (
    ATTACK_FORMS,
    ATTACK_NAME,
    AdversarialConfig,
    attack_steps,
)
from auxtune.robust.art_attacks import art_accuracy, art_attack
from auxtune.robust.pgd_eval import epsilon_sweep, pgd_k, robust_accuracy

# ---------------------------------------------------------------------------------- metrics


def sweep_metric(multiple: float) -> str:
    """``adv/eps_<m>x_accuracy``: accuracy at test epsilon = m x the training epsilon.

    Relative to the training radius because that is where robustness changes character (Kucer et
    al.); the absolute radius is ``adversarial.epsilon`` in the run's parameters.

    >>> sweep_metric(0.5), sweep_metric(2.0)
    ('adv/eps_0.5x_accuracy', 'adv/eps_2x_accuracy')
    """
    return f"adv/eps_{multiple:g}x_accuracy"


SWEEP_METRIC = re.compile(r"^adv/eps_(?P<multiple>[0-9.e+-]+)x_accuracy$")


def sweep_multiple(metric: str) -> float | None:
    """The multiple of the training epsilon a sweep metric is at (None for other metrics)."""
    match = SWEEP_METRIC.match(metric)
    return float(match["multiple"]) if match else None


def epoch_metric_names(cfg: AdversarialConfig) -> tuple[str, ...]:
    return ("val_adv_accuracy",) if cfg.enabled else ()


def final_metric_names(cfg: AdversarialConfig) -> tuple[str, ...]:
    if not cfg.enabled:
        return ()
    attacks = tuple(attack_metric(name) for name in cfg.final_attacks)
    return attacks + tuple(sweep_metric(m) for m in cfg.sweep)


def attack_metric(name: str) -> str:
    """``adv_<attack>_accuracy``, e.g. ``adv_pgd20_accuracy``, ``adv_apgd_accuracy``."""
    return f"adv_{name}_accuracy"


class LabelledImages(Protocol):
    """uint8 images (N, 32, 32, 3) and their labels (N,), e.g. a dataset split."""

    @property
    def images(self) -> np.ndarray: ...

    @property
    def labels(self) -> np.ndarray: ...


def epoch_metrics(
    model: nn.Module, val: LabelledImages, cfg: AdversarialConfig
) -> dict[str, float]:
    """``val_adv_accuracy``: the training attack (eval mode, fixed start) on the first
    ``cfg.val_images`` validation images: leak-free, cheap enough for every epoch; and its cost
    ``time/val_adv_s``."""
    if not cfg.enabled:
        return {}
    start = time.perf_counter()
    n = cfg.val_images
    accuracy = robust_accuracy(model, val.images[:n], val.labels[:n], PGD.from_config(cfg))
    return {"val_adv_accuracy": accuracy, "time/val_adv_s": time.perf_counter() - start}


def final_metrics(
    model: nn.Module, test: LabelledImages, cfg: AdversarialConfig
) -> dict[str, float]:
    """``cfg.final_attacks`` (``cfg.restarts`` restarts) and the epsilon sweep (PGD-20, one start)
    on the first ``cfg.test_images`` test images (all when 0)."""
    if not cfg.enabled:
        return {}
    n = cfg.test_images or len(test.labels)
    images, labels = test.images[:n], test.labels[:n]
    metrics = {
        attack_metric(name): run_attack(
            name, model, images, labels, cfg.threat_model, cfg.epsilon, restarts=cfg.restarts
        ).accuracy
        for name in cfg.final_attacks
    }
    radii = [m * cfg.epsilon for m in cfg.sweep]
    sweep = epsilon_sweep(model, images, labels, cfg.threat_model, radii)
    metrics.update({sweep_metric(m): acc for m, acc in zip(cfg.sweep, sweep.values())})
    return metrics


# ---------------------------------------------------------------------------------- by name


@dataclass(frozen=True)
class AttackResult:
    """One attack's accuracy on a set of images."""

    attack: str
    threat_model: str
    epsilon: float
    accuracy: float
    images: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def run_attack(
    name: str,
    model: nn.Module,
    images: np.ndarray,
    labels: np.ndarray,
    threat_model: str,
    epsilon: float,
    *,
    restarts: int = 1,
    batch_size: int = 256,
) -> AttackResult:
    """Accuracy under the attack called ``name`` (see :data:`ATTACK_FORMS`)."""
    check_attack_name(name)
    start = time.perf_counter()
    steps = attack_steps(name)
    if name.startswith("pgd"):
        pgd = pgd_k(threat_model, epsilon, steps)
        kwargs = {"restarts": restarts, "batch_size": batch_size}
        accuracy = robust_accuracy(model, images, labels, pgd, **kwargs)
    else:
        adversarial = art_attack(name, model, images, labels, threat_model, epsilon, restarts)
        accuracy = art_accuracy(model, images, labels, adversarial, threat_model, epsilon)
    seconds = time.perf_counter() - start
    return AttackResult(name, threat_model, epsilon, accuracy, len(labels), seconds)


def check_attack_name(name: str) -> None:
    """Refuse an unknown attack name with one line listing the valid forms."""
    if not ATTACK_NAME.fullmatch(name):
        raise ValueError(f"unknown attack {name!r}; valid: {ATTACK_FORMS}")
