"""The library's attacks, from the Adversarial Robustness Toolbox (ART): its PGD, APGD-CE and
APGD-DLR (``apgd``) and AutoAttack's list (``autoattack``), and accuracy on their examples.

ART is imported where it is used: it takes seconds and only evaluation needs it. An example is
counted only inside the ball (ART's own tolerance) and only where the clean image was right, the
worst-case rule of :mod:`auxtune.robust.pgd_eval`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from auxtune.robust.adversarial import PGD
from auxtune.robust.adversarial_config import attack_steps
from auxtune.robust.data_utils import as_tensor, to_model_input
from auxtune.robust.pgd_eval import eval_mode, pgd_k


def art_attack(
    name: str,
    model: nn.Module,
    images: np.ndarray,
    labels: np.ndarray,
    threat_model: str,
    epsilon: float,
    restarts: int = 1,
) -> np.ndarray:
    """Adversarial float images (N, 3, 32, 32) in [0, 1] from the Adversarial Robustness Toolbox."""
    classifier = art_classifier(model)
    x, y = _float_images(images), np.asarray(labels)
    norm = np.inf if threat_model == "linf" else 2
    if name.startswith("art-pgd"):
        pgd = pgd_k(threat_model, epsilon, attack_steps(name))
        return art_pgd(classifier, pgd, random_inits=restarts).generate(x=x, y=y)
    # AutoAttack's ensemble: each attack tries the images all earlier ones failed on
    attacks = _autoattack_list(classifier, norm, epsilon, restarts, full=name == "autoattack")
    return _run_ensemble(attacks, classifier, x, y, norm, epsilon)


def art_pgd(classifier: Any, pgd: PGD, random_inits: int = 1) -> Any:
    """ART's PyTorch PGD with ``pgd``'s radius, step and steps; ``random_inits`` = 0 starts at x,
    more keep each image's first successful start (ART's restarts)."""
    from art.attacks.evasion import ProjectedGradientDescentPyTorch

    return ProjectedGradientDescentPyTorch(
        classifier,
        norm=np.inf if pgd.threat_model == "linf" else 2,
        eps=pgd.epsilon,
        eps_step=pgd.step_size,
        max_iter=pgd.steps,
        num_random_init=random_inits,
        batch_size=256,
        verbose=False,
    )


def _autoattack_list(
    classifier: Any, norm: float, epsilon: float, restarts: int, full: bool
) -> list[Any]:
    """APGD-CE and APGD-DLR (``apgd``), plus DeepFool and Square: ART's default AutoAttack list."""
    from art.attacks.evasion import AutoAttack, AutoProjectedGradientDescent

    if full:
        return AutoAttack(
            classifier, norm=norm, eps=epsilon, eps_step=2 * epsilon, batch_size=256
        ).attacks
    return [
        AutoProjectedGradientDescent(
            classifier,
            norm=norm,
            eps=epsilon,
            eps_step=2 * epsilon,  # APGD's initial step (Croce & Hein); it adapts it
            max_iter=100,
            nb_random_init=restarts,
            batch_size=256,
            loss_type=loss,
            verbose=False,
        )
        for loss in ("cross_entropy", "difference_logits_ratio")
    ]


def _run_ensemble(
    attacks: list[Any],
    classifier: Any,
    x: np.ndarray,
    labels: np.ndarray,
    norm: float,
    epsilon: float,
) -> np.ndarray:
    """What ``AutoAttack.generate`` does without a process pool (its ``generate`` imports the
    optional ``multiprocess`` package even then): ART's own ``run_attack`` per attack, in turn."""
    from art.attacks.evasion.auto_attack import run_attack as run_art_attack

    y = np.eye(classifier.nb_classes, dtype=np.float32)[np.asarray(labels)]
    robust = classifier.predict(x).argmax(1) == np.asarray(labels)
    adversarial = x.copy()
    for attack in attacks:
        if not robust.any():
            break
        adversarial, robust = run_art_attack(
            adversarial, y, robust, attack, classifier, norm, epsilon
        )
    return adversarial


def art_classifier(model: nn.Module) -> Any:
    """``model`` wrapped for ART: float32 inputs (N, 3, 32, 32) in [0, 1], eval mode."""
    from art.estimators.classification import PyTorchClassifier

    device = next(model.parameters()).device
    return PyTorchClassifier(
        model=model.eval(),
        loss=nn.CrossEntropyLoss(),
        input_shape=(3, 32, 32),
        nb_classes=int(model.num_classes),  # type: ignore[arg-type]
        clip_values=(0.0, 1.0),
        device_type="gpu" if device.type == "cuda" else "cpu",
    )


def art_accuracy(
    model: nn.Module,
    images: np.ndarray,
    labels: np.ndarray,
    adversarial: np.ndarray,
    threat_model: str,
    epsilon: float,
) -> float:
    """Accuracy on ART's examples, each refused (counted as the clean prediction) if it leaves the
    ball or was not needed: robust = correct clean and correct on its example."""
    clean = _float_images(images)
    order = np.inf if threat_model == "linf" else 2
    distance = np.linalg.norm((adversarial - clean).reshape(len(clean), -1), ord=order, axis=1)
    inside = distance <= epsilon * (1 + 1e-4)  # ART's own tolerance in AutoAttack
    device = next(model.parameters()).device
    with torch.no_grad(), eval_mode(model):
        on_clean = _predict_float(model, clean, device)
        on_adversarial = _predict_float(
            model, np.where(inside[:, None, None, None], adversarial, clean), device
        )
    y = np.asarray(labels)
    return float(((on_clean == y) & (on_adversarial == y)).mean()) if len(y) else float("nan")


def _float_images(images: np.ndarray | torch.Tensor) -> np.ndarray:
    return to_model_input(as_tensor(images)).numpy().astype(np.float32)


def _predict_float(model: nn.Module, x: np.ndarray, device: torch.device) -> np.ndarray:
    out = [
        model(torch.from_numpy(x[i : i + 512]).to(device)).argmax(1).cpu().numpy()
        for i in range(0, len(x), 512)
    ]
    return np.concatenate(out) if out else np.zeros(0, np.int64)
