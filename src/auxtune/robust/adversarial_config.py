"""The ``adversarial:`` section of a run: the threat model, the training attack, and the attacks a
run is evaluated with, by name (:data:`ATTACK_NAME`, shared with ``auxtune evaluate --attack``).

Pure data, no torch: :class:`~auxtune.robust.config.TrainConfig` composes it; the attacks are in
:mod:`auxtune.robust.adversarial` (training) and :mod:`auxtune.robust.adversarial_eval`.

    >>> AdversarialConfig(epsilon=8 / 255, steps=10).pgd_step_size == 2 / 255
    True
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

from auxtune.config import check

THREAT_MODELS = ("linf", "l2")
#: attack names of ``adversarial.final_attacks`` and ``auxtune evaluate --attack``
ATTACK_NAME = re.compile(r"(art-)?pgd[1-9][0-9]*|apgd|autoattack")
ATTACK_FORMS = (
    "pgd<K> (ours: K steps, random start), art-pgd<K> (ART's PGD), apgd (ART: APGD-CE + "
    "APGD-DLR), autoattack (ART: APGD-CE, APGD-DLR, DeepFool, Square)"
)


def attack_steps(name: str) -> int:
    """The K of ``pgd<K>`` and ``art-pgd<K>`` (0 for the attacks that choose their own).

    >>> attack_steps("art-pgd20"), attack_steps("apgd")
    (20, 0)
    """
    digits = re.search(r"[0-9]+$", name)
    return int(digits.group()) if digits else 0


@dataclass(frozen=True)
class AdversarialConfig:
    """PGD adversarial training (Madry et al.) and the attacks a run is evaluated with.

    ``train``: every step trains on PGD examples. ``evaluate``: report accuracy under attack
    (every epoch ``val_adv_accuracy``, at the end ``final_attacks`` and the epsilon sweep); always on
    when ``train`` is, so ``evaluate=true`` alone is normal training measured under attack. Distances are in pixel units of images in
    [0, 1] before the network's standardisation: CIFAR's L-infinity radius is 8/255 = 0.0314,
    its usual L2 radius 0.5 (set it with ``threat_model=l2``: the default is the L-infinity one).
    See :mod:`auxtune.robust.adversarial` for the attack's loss and the auxiliary heads' view.
    """

    train: bool = False  # PGD adversarial training
    evaluate: bool = False  # the attack metrics without adversarial training (implied by train)
    threat_model: Literal["linf", "l2"] = "linf"
    epsilon: float = 8 / 255  # radius of the threat model, pixel units of [0, 1] images
    steps: int = 10  # PGD steps of the training attack and of the per-epoch val_adv_accuracy
    # per PGD step, pixel units; null = 2.5 * epsilon / steps (Madry et al.'s rule: 2/255 here)
    step_size: float | None = None
    random_start: bool = True  # start uniformly inside the ball (Madry et al.), not at x
    # epochs over which the training radius (and PGD's step) grows linearly from 0 to epsilon,
    # step by step; 0 = the full radius from the first step
    warmup_epochs: float = 0.0
    attack_loss: Literal["main", "total"] = "main"  # what the attack maximises (total: + lambdas)
    aux_view: Literal["clean", "adversarial"] = "adversarial"  # what the auxiliary heads see
    val_images: int = 200  # fixed validation images attacked after every epoch (val_adv_accuracy)
    test_images: int = 0  # test images attacked at the end (final_attacks, sweep); 0 = all
    # attacks on the test images at the end, each reported as adv_<name>_accuracy
    final_attacks: tuple[str, ...] = ("pgd20", "pgd100")
    restarts: int = 1  # random restarts of the final attacks (worst case per image)
    # test radii of the final epsilon sweep, as multiples of epsilon (0 = clean accuracy)
    sweep: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0)

    def __post_init__(self) -> None:
        check(
            self.threat_model in THREAT_MODELS,
            f"adversarial.threat_model = {self.threat_model!r}; choose linf or l2",
        )
        check(
            self.attack_loss in ("main", "total"),
            f"adversarial.attack_loss = {self.attack_loss!r}; choose main or total",
        )
        check(
            self.aux_view in ("clean", "adversarial"),
            f"adversarial.aux_view = {self.aux_view!r}; choose clean or adversarial",
        )
        top = 1.0 if self.threat_model == "linf" else math.inf
        check(
            0 < self.epsilon <= top,
            f"adversarial.epsilon = {self.epsilon} must be > 0"
            + (
                " and <= 1 (pixel units of [0, 1] images; CIFAR's is 8/255 = 0.0314)"
                if top == 1
                else ""
            ),
        )
        check(self.steps >= 1, f"adversarial.steps = {self.steps} must be >= 1")
        check(
            self.step_size is None or self.step_size > 0,
            f"adversarial.step_size = {self.step_size} must be > 0 (or null for 2.5 * epsilon / steps)",
        )
        check(
            self.warmup_epochs >= 0,
            f"adversarial.warmup_epochs = {self.warmup_epochs} must be >= 0 (0 = no warm-up)",
        )
        check(self.val_images >= 1, f"adversarial.val_images = {self.val_images} must be >= 1")
        check(
            self.test_images >= 0,
            f"adversarial.test_images = {self.test_images} must be >= 0 (0 = all)",
        )
        for name in self.final_attacks:
            check(
                ATTACK_NAME.fullmatch(name) is not None,
                f"adversarial.final_attacks: unknown attack {name!r}; valid: {ATTACK_FORMS}",
            )
        check(self.restarts >= 1, f"adversarial.restarts = {self.restarts} must be >= 1")
        check(
            len(self.sweep) > 0 and all(m >= 0 for m in self.sweep),
            f"adversarial.sweep = {list(self.sweep)} must list multiples of epsilon >= 0",
        )
        check(
            len(set(self.sweep)) == len(self.sweep),
            f"adversarial.sweep has duplicates: {list(self.sweep)}",
        )

    @property
    def enabled(self) -> bool:
        """Whether runs report accuracy under attack (``train`` or ``evaluate``)."""
        return self.train or self.evaluate

    @property
    def pgd_step_size(self) -> float:
        """The training attack's step: ``step_size``, or 2.5 * epsilon / steps when unset."""
        return self.step_size if self.step_size is not None else 2.5 * self.epsilon / self.steps
