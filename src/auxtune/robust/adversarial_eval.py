"""Accuracy under attack: PGD-k with restarts, epsilon sweeps, the library's attacks (ART) and the
sanity checks that tell a robust model from one that only masks its gradients.

Every attack here runs the model in eval mode and in float32 (bf16 rounding flattens the loss
surface an attack climbs), on uint8 (N, 32, 32, 3) images like :func:`auxtune.robust.trainer.predict`.
An image counts as robust only if it is classified correctly clean, at every PGD iterate (each
lies inside the ball, so each is an adversarial example) and after every restart: the worst case
per image.

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

import dataclasses
import itertools
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from auxtune.robust.adversarial import PGD
from auxtune.robust.adversarial_config import ATTACK_FORMS, ATTACK_NAME, AdversarialConfig
from auxtune.robust.data_utils import as_tensor, to_model_input

EVAL_SEED = 0  # random starts of evaluation attacks: fixed, so epochs and trials are comparable


# ---------------------------------------------------------------------------------- our PGD


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


# ---------------------------------------------------------------------------------- the library


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
    steps = _steps(name)
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


def _steps(name: str) -> int:
    digits = re.search(r"[0-9]+$", name)
    return int(digits.group()) if digits else 0


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
        pgd = pgd_k(threat_model, epsilon, _steps(name))
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


# ---------------------------------------------------------------------------------- sanity checks


@dataclass(frozen=True)
class Check:
    """One sanity check against gradient masking (Carlini et al., Athalye et al.)."""

    name: str
    passed: bool
    detail: str


def masking_checks(
    sweep: Mapping[float, float],
    pgd20: float,
    pgd100: float,
    large_epsilon: tuple[float, float] | None,
    library: tuple[str, float] | None = None,
    *,
    tolerance: float = 0.02,
) -> list[Check]:
    """The checks, each with ``tolerance`` (accuracy points of sampling noise) in its favour:
    accuracy never rises with epsilon, is ~0 at a large epsilon (when measured), PGD-100 <= PGD-20
    and the library's attack is no weaker than PGD-20."""
    radii = sorted(sweep)
    rises = [(a, b) for a, b in itertools.pairwise(radii) if sweep[b] > sweep[a] + tolerance]
    checks = [
        Check(
            "monotone in epsilon",
            not rises,
            "; ".join(f"{sweep[a]:.3f} at {a:.4g} -> {sweep[b]:.3f} at {b:.4g}" for a, b in rises)
            or f"{len(radii)} radii, never rising by more than {tolerance:.3g}",
        ),
    ]
    if large_epsilon is not None:
        eps_large, acc_large = large_epsilon
        checks.append(
            Check(
                "about 0 at a large epsilon",
                acc_large <= tolerance,
                f"{acc_large:.3f} at epsilon {eps_large:.4g}",
            )
        )
    checks.append(
        Check("PGD-100 <= PGD-20", pgd100 <= pgd20 + tolerance, f"{pgd100:.3f} vs {pgd20:.3f}")
    )
    if library is not None:
        name, acc = library
        checks.append(
            Check(f"{name} <= PGD-20", acc <= pgd20 + tolerance, f"{acc:.3f} vs {pgd20:.3f}")
        )
    return checks


#: Fraction of images on which two runs of PGD-20 that differ only in their random starts
#: disagree (robust in one, fooled in the other): 0.25-0.5 % measured on 400 synthetic test images
#: (WRN-10-1, normally and adversarially trained, at 4 radii), doubled. See :func:`sampling_tolerance`.
DISCORDANCE = 0.01


def sampling_tolerance(images: int, discordance: float = DISCORDANCE) -> float:
    """Slack of a paired accuracy comparison of two attacks on the same ``images``: two standard
    errors of the difference of two equally strong attacks, 2 * sqrt(discordance / n), and at
    least one image.

    >>> round(sampling_tolerance(200), 4), round(sampling_tolerance(1000), 4)
    (0.0141, 0.0063)
    """
    return max(1 / images, 2 * (discordance / images) ** 0.5)


def large_epsilon(threat_model: str) -> float:
    """A radius that reaches the all-gray image from any image (so accuracy ~0 must be reachable):
    0.5 in L-infinity, 0.5 * sqrt(3 * 32 * 32) in L2."""
    return 0.5 if threat_model == "linf" else 0.5 * float(np.sqrt(3 * 32 * 32))


# ---------------------------------------------------------------------------------- a report


@dataclass(frozen=True)
class AttackReport:
    """What ``auxtune evaluate --attack`` prints and writes: each attack's accuracy, the epsilon
    sweep and the sanity checks (the last two when asked for)."""

    threat_model: str
    epsilon: float
    images: int
    clean_accuracy: float
    attacks: tuple[AttackResult, ...]
    sweep: dict[float, float] = dataclasses.field(default_factory=dict)
    checks: tuple[Check, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "threat_model": self.threat_model,
            "epsilon": self.epsilon,
            "images": self.images,
            "clean_accuracy": self.clean_accuracy,
            "attacks": {
                r.attack: {"accuracy": r.accuracy, "seconds": r.seconds} for r in self.attacks
            },
            "sweep": [{"epsilon": e, "accuracy": a} for e, a in self.sweep.items()],
            "checks": [dataclasses.asdict(c) for c in self.checks],
        }

    def format_table(self) -> str:
        head = f"{self.threat_model} epsilon {self.epsilon:.4g} ({self.epsilon * 255:.3g}/255), {self.images} test images"
        lines = [head, f"{'attack':<12}{'accuracy':>10}{'seconds':>10}", "-" * 32]
        lines.append(f"{'clean':<12}{100 * self.clean_accuracy:>9.1f}%{'':>10}")
        lines += [
            f"{r.attack:<12}{100 * r.accuracy:>9.1f}%{r.seconds:>10.1f}" for r in self.attacks
        ]
        if self.sweep:
            lines += ["", "epsilon sweep (PGD-20):"]
            lines += [f"  {e:<10.4g}{100 * a:>7.1f}%" for e, a in self.sweep.items()]
        if self.checks:
            lines += ["", "sanity checks against gradient masking:"]
            lines += [
                f"  {'PASS' if c.passed else 'FAIL'}  {c.name}: {c.detail}" for c in self.checks
            ]
        return "\n".join(lines)


def attack_report(
    model: nn.Module,
    images: np.ndarray,
    labels: np.ndarray,
    attacks: Sequence[str],
    threat_model: str,
    epsilon: float,
    *,
    restarts: int = 1,
    sweep: Sequence[float] = (),
    checks: bool = False,
) -> AttackReport:
    """Run ``attacks`` at ``epsilon``; with ``checks``, also the sweep over ``sweep`` (multiples of
    epsilon), PGD-20, PGD-100 and ``apgd`` when missing, and the gradient-masking checks."""
    for name in attacks:
        check_attack_name(name)
    names = list(dict.fromkeys([*attacks, *(("pgd20", "pgd100", "apgd") if checks else ())]))
    results = {
        name: run_attack(name, model, images, labels, threat_model, epsilon, restarts=restarts)
        for name in names
    }
    radii = [m * epsilon for m in sweep]
    accuracy = epsilon_sweep(model, images, labels, threat_model, radii) if radii else {}
    clean = robust_accuracy(model, images, labels, pgd_k(threat_model, 0.0, 1))
    found: tuple[Check, ...] = ()
    if checks:
        large = large_epsilon(threat_model)
        at_large = robust_accuracy(model, images, labels, pgd_k(threat_model, large, 20))
        found = tuple(
            masking_checks(
                {0.0: clean, **accuracy},
                results["pgd20"].accuracy,
                results["pgd100"].accuracy,
                (large, at_large),
                ("apgd", results["apgd"].accuracy),
                tolerance=sampling_tolerance(len(labels)),
            )
        )
    return AttackReport(
        threat_model, epsilon, len(labels), clean, tuple(results.values()), accuracy, found
    )
