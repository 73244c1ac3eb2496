"""The sanity checks that tell a robust model from one that only masks its gradients (Carlini et
al., Athalye et al.), and the report of ``auxtune evaluate --attack`` that runs them.

    >>> sweep = {0.0: 0.9, 0.03: 0.5, 0.06: 0.55}   # accuracy rises from 0.03 to 0.06
    >>> [(c.name, c.passed) for c in masking_checks(sweep, 0.5, 0.48, large_epsilon=None)]
    [('monotone in epsilon', False), ('PGD-100 <= PGD-20', True)]
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from torch import nn

from auxtune.robust.adversarial_eval import AttackResult, check_attack_name, run_attack
from auxtune.robust.pgd_eval import epsilon_sweep, pgd_k, robust_accuracy


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


# ------------------------------------------------------------------------- the report


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
