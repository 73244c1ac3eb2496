"""Projected gradient descent (Madry et al.) and the adversarial views a training step trains on.

**PGD** maximises a loss over perturbations delta in a ball around the images x (pixel units of
[0, 1] images; x + delta is kept in [0, 1]):

    delta_0     = uniform in the ball (random start) or 0
    delta_{t+1} = project(delta_t + step_size * direction(grad_delta loss(x + delta_t)))

with direction = sign (L-infinity) or grad / ||grad||_2 per image (L2), and project the clip to the
ball and to the image range. :class:`PGD` is that update, nothing else: the training step
(:class:`Adversary`) and the evaluation (:mod:`auxtune.robust.pgd_eval`) give it their loss.

**What adversarial training trains on.** With one perturbation delta of the batch,

* ``attack_loss=main``: delta maximises L_main(x + delta) (Madry et al.; every PGD step costs one
  forward and one input-backward of the main batch);
* ``attack_loss=total``: delta maximises L_main(x + delta) + sum_i lambda_i L_i(T_i(x + delta)) with
  the weighting's current lambdas (Kucer et al.: crafting with the self-supervised loss helps); each
  task's random transform T_i (rotation angle, jigsaw order, ...) is drawn once and replayed in every
  PGD step and in the training forward, so the attack maximises the loss the step then trains on;

then the main head trains on x + delta, and task i on T_i(x + delta) (``aux_view=adversarial``) or on
T_i(x) (``aux_view=clean``).

The default ``aux_view`` is ``adversarial``: Hendrycks et al. (the +5.6 points under PGD-20 this
project reproduces) train the rotation head on adversarial examples of the rotated images, so the
self-supervised loss regularises the backbone's features on the perturbed inputs the classifier
must withstand, not on clean ones it already handles; it also costs nothing extra (each head has
one forward either way). Their attack perturbs each rotated copy separately; here the views share
delta (T_i(x + delta) = T_i(x) + T_i(delta) is an adversarial example of the rotated image whose
perturbation is the rotated one of the upright image), which keeps ``attack_loss`` meaningful (the
lambdas trade the tasks off inside one perturbation) and costs one main batch per PGD step under
``attack_loss=main`` instead of one per view.

**BatchNorm during the training-time attack**: train mode (batch statistics), as in Madry et al.,
Hendrycks et al. and Rice et al.: the attack then maximises the very function the training loss
evaluates. The attack's forwards never update the running statistics (:func:`frozen_running_stats`),
so evaluation sees statistics of the training batches only. Evaluation attacks run in eval mode
(RobustBench's convention), in float32.

    >>> import torch
    >>> pgd = PGD("linf", epsilon=0.1, step_size=0.05, steps=4)  # 0.2 of travel: any start gets there
    >>> x = torch.full((2, 3, 4, 4), 0.5)
    >>> x_adv = pgd.perturb(lambda z: z.sum(), x)   # the loss grows with every pixel
    >>> round(float((x_adv - x).max()), 4), round(float((x_adv - x).min()), 4)
    (0.1, 0.1)
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F

from auxtune.robust.adversarial_config import AdversarialConfig
from auxtune.robust.batchnorm import frozen_running_stats
from auxtune.robust.losses import compute_losses
from auxtune.robust.model import MultiHeadNet
from auxtune.robust.weighting import weighted_sum

LossFn = Callable[[torch.Tensor], torch.Tensor]  # perturbed images -> scalar loss to maximise


@dataclass(frozen=True)
class PGD:
    """Projected gradient ascent in an L-infinity or L2 ball of radius ``epsilon`` (pixel units)."""

    threat_model: Literal["linf", "l2"]
    epsilon: float
    step_size: float
    steps: int
    random_start: bool = True

    @classmethod
    def from_config(cls, cfg: AdversarialConfig) -> PGD:
        """The training attack of ``cfg``."""
        return cls(cfg.threat_model, cfg.epsilon, cfg.pgd_step_size, cfg.steps, cfg.random_start)

    def start(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """delta_0: uniform in the ball (``random_start``) or zero, kept inside the image range."""
        if not self.random_start or self.epsilon == 0:
            return torch.zeros_like(images)
        if self.threat_model == "linf":
            noise = torch.rand(images.shape, generator=generator, device=images.device)
            delta = (2 * noise - 1).mul_(self.epsilon)
        else:  # uniform in the L2 ball: Gaussian direction, radius epsilon * U^(1/d)
            direction = torch.randn(images.shape, generator=generator, device=images.device)
            u = torch.rand(len(images), generator=generator, device=images.device)
            radius = self.epsilon * u.pow(1.0 / images[0].numel())
            delta = direction * _per_image(radius / _l2_norm(direction))
        return (images + delta).clamp_(0, 1) - images

    def ascend(self, delta: torch.Tensor, grad: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        """One step up the gradient, then back into the ball and the image range."""
        if self.threat_model == "linf":
            delta = (delta + self.step_size * grad.sign()).clamp_(-self.epsilon, self.epsilon)
        else:
            delta = delta + self.step_size * grad * _per_image(1.0 / _l2_norm(grad))
            delta = delta * _per_image((self.epsilon / _l2_norm(delta)).clamp(max=1.0))
        return (images + delta).clamp_(0, 1) - images

    def perturb(
        self,
        loss_fn: LossFn,
        images: torch.Tensor,
        *,
        delta: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """x + delta_steps (detached), from ``delta`` or a fresh :meth:`start`.

        ``loss_fn`` sees every iterate x + delta_t, t < steps: a caller may record what it needs
        there (the evaluation notes which images any iterate already fooled).
        """
        images = images.detach()
        delta = self.start(images, generator) if delta is None else delta
        for _ in range(self.steps):
            x = (images + delta).requires_grad_()
            with torch.enable_grad():
                (grad,) = torch.autograd.grad(loss_fn(x), x)
            delta = self.ascend(delta, grad.float(), images)
        return (images + delta).detach()


def _l2_norm(x: torch.Tensor) -> torch.Tensor:
    """Per-image L2 norm (N,), never 0 (a zero gradient stays a zero step)."""
    return x.flatten(1).norm(dim=1).clamp_min(1e-12)


def _per_image(values: torch.Tensor) -> torch.Tensor:
    return values.view(-1, 1, 1, 1)


@contextlib.contextmanager
def replayable_randomness(device: torch.device) -> Iterator[Callable[[], None]]:
    """Yields ``rewind()``: it resets torch's generator (the device's too) to its state at entry.

    Leaves the generator rewound on exit, so whatever runs next draws what the replays drew.
    """
    cpu = torch.get_rng_state()
    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None

    def rewind() -> None:
        torch.set_rng_state(cpu)
        if cuda is not None:
            torch.cuda.set_rng_state(cuda, device)

    try:
        yield rewind
    finally:
        rewind()


@dataclass(frozen=True)
class Adversary:
    """Makes the training step's inputs: (main images, auxiliary images), both adversarial or not.

    Call it inside the step's autocast; the model stays in its mode (train) with BatchNorm's
    running statistics frozen during the attack.
    """

    pgd: PGD
    attack_loss: Literal["main", "total"] = "main"
    aux_view: Literal["clean", "adversarial"] = "adversarial"

    @classmethod
    def from_config(cls, cfg: AdversarialConfig) -> Adversary | None:
        """The training attack of ``cfg``; None unless ``cfg.train``."""
        if not cfg.train:
            return None
        return cls(PGD.from_config(cfg), cfg.attack_loss, cfg.aux_view)

    def scaled(self, fraction: float) -> Adversary:
        """This attack with its radius and step times ``fraction`` in (0, 1] (epsilon warm-up).

        Scaling both keeps PGD's path the same shape: the same number of steps crosses the ball.
        """
        if fraction >= 1:
            return self
        pgd = replace(
            self.pgd, epsilon=self.pgd.epsilon * fraction, step_size=self.pgd.step_size * fraction
        )
        return replace(self, pgd=pgd)

    def __call__(
        self,
        model: MultiHeadNet,
        images: torch.Tensor,
        labels: torch.Tensor,
        lambdas: Mapping[str, float],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        with frozen_running_stats(model):
            if self.attack_loss == "main" or not lambdas:
                adversarial = self.pgd.perturb(main_loss(model, labels), images)
            else:
                adversarial = self._perturb_total(model, images, labels, lambdas)
        return adversarial, adversarial if self.aux_view == "adversarial" else images

    def _perturb_total(
        self,
        model: MultiHeadNet,
        images: torch.Tensor,
        labels: torch.Tensor,
        lambdas: Mapping[str, float],
    ) -> torch.Tensor:
        delta = self.pgd.start(images)  # before the replay point: replays re-draw the tasks only
        with replayable_randomness(images.device) as rewind:

            def total(x: torch.Tensor) -> torch.Tensor:
                rewind()  # the same task transforms in every PGD step (and then in training)
                return weighted_sum(compute_losses(model, x, labels, tasks=lambdas), lambdas)

            return self.pgd.perturb(total, images, delta=delta)


def main_loss(model: nn.Module, labels: torch.Tensor) -> LossFn:
    """x -> mean cross-entropy of the main head (what Madry et al.'s attack maximises)."""
    return lambda x: F.cross_entropy(model(x).float(), labels)
