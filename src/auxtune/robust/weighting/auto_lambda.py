"""Auto-Lambda (Liu, Davison & Johns, "Auto-Lambda: Disentangling Dynamic Task Relationships",
TMLR 2022): task weights meta-learned on a validation loss one step ahead, the hypergradient
approximated by finite differences. The nearest published peer of the ``meta`` weighting.

Every step, with psi the shared parameters and alpha_t this step's learning rate:

    psi'   = psi - alpha_t * grad_psi L_lambda(psi)                 (the virtual step)
    v      = grad_psi' L_meta(psi'),      eps = 0.01 / |v|          (L_meta: main CE, meta batch)
    h_i    = -alpha_t * (L_i(psi + eps v) - L_i(psi - eps v)) / (2 eps)
    lambda <- Adam(lambda, h),  clipped to [0, lambda_max]

and the ordinary update then uses the new lambdas. h_i approximates dL_meta/dlambda_i =
-alpha_t < grad_psi L_i(psi), v >, which ``meta`` computes exactly as a dot product of gradients it
already has: the finite difference costs two more forward passes of every task at the perturbed
psi (this step's batch and task draws, replayed), ``meta`` needs none.

How the main loss enters: the main task is the primary task, whose loss is the meta objective and
whose weight stays 1 (the published code learns the primary task's weight too); only the auxiliary
lambdas are learned. As published: Adam on lambda (``weighting.auto_lambda.meta_lr``, the paper's
CIFAR value 3e-4), an update every step, no warm-up. Two departures, both shared with ``meta`` so
the two compare on the hypergradient alone: the virtual step is the paper's equation (plain SGD;
the code adds momentum and weight decay), and lambda is kept >= 0 (a negative weight would ascend
an auxiliary loss). Meta-validation batches come from the same source as ``meta``'s
(``meta_batch_size``, ``protocol``), rather than a second pass over the training set.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from auxtune.robust.model import MultiHeadNet
from auxtune.robust.weighting.base import StepContext, Weighting, weighted_sum
from auxtune.robust.weighting.config import WeightingConfig
from auxtune.robust.weighting.gradients import TaskGradients, flatten, task_gradients, unflatten
from auxtune.robust.weighting.meta import lookahead_step, meta_loss, shared_names
from auxtune.robust.weighting.options import MetaValidationOptions, check_option
from auxtune.robust.weighting.registry import register_weighting

FD_RADIUS = 0.01  # eps * |v|: the published step of the finite difference


@dataclass(frozen=True)
class AutoLambdaOptions(MetaValidationOptions):
    """``weighting.auto_lambda``: Adam's step size on lambda and an optional upper bound."""

    meta_lr: float = 3e-4
    lambda_max: float | None = None
    search: dict[str, tuple[float, float]] = field(
        default_factory=lambda: {"meta_lr": (1e-4, 1e-2)}
    )

    log_scale = frozenset({"meta_lr"})

    def __post_init__(self) -> None:
        super().__post_init__()
        check_option(self.meta_lr > 0, f"meta_lr = {self.meta_lr} must be > 0")
        check_option(
            self.lambda_max is None or self.lambda_max > 0,
            f"lambda_max = {self.lambda_max} must be > 0 (or null for no upper bound)",
        )


@dataclass
class FiniteDifference:
    """One step's approximate hypergradient and what it was built from."""

    hypergrad: torch.Tensor  # (k,) in the order of the tasks
    meta_loss: torch.Tensor  # L_meta at psi' (detached)
    grads: TaskGradients


@register_weighting
class AutoLambdaWeighting(Weighting):
    """Auxiliary lambdas meta-learned every step, by Adam on a finite-difference hypergradient."""

    name = "auto_lambda"
    config_class = AutoLambdaOptions
    needs_meta_batch = True
    needs_task_gradients = True
    search_lambdas = True
    options: AutoLambdaOptions

    def __init__(self, cfg: WeightingConfig, tasks: tuple[str, ...]) -> None:
        super().__init__(cfg, tasks)
        self.weights = torch.tensor(list(self.lambdas.values()), dtype=torch.float64)
        self.adam = torch.optim.Adam([self.weights.requires_grad_()], lr=self.options.meta_lr)

    def lambda_bounds(self) -> tuple[float, float]:
        return 0.0, math.inf if self.options.lambda_max is None else self.options.lambda_max

    def backward(self, losses: Mapping[str, torch.Tensor], ctx: StepContext) -> dict[str, Any]:
        if ctx.meta_batch is None or ctx.recompute_losses is None:
            raise ValueError(
                "weighting.name=auto_lambda needs meta-validation batches and the step's losses "
                "again: run it through train_step with a Trainer given a meta_source"
            )
        fd = finite_difference(
            ctx.model,
            losses,
            self.lambdas,
            ctx.lr,
            ctx.meta_batch(),
            ctx.optimizer,
            ctx.recompute_losses,
            ctx.autocast,
        )
        hypergrad = fd.hypergrad.double().cpu()
        if bool(torch.isfinite(hypergrad).all()):
            self._adam_step(hypergrad)
        fd.grads.apply(ctx.model, self.lambdas)
        metrics = {f"hypergrad/{t}": h for t, h in zip(self.tasks, hypergrad.tolist())}
        return {**self.lambda_metrics(), **metrics, "meta/loss": float(fd.meta_loss)}

    def _adam_step(self, hypergrad: torch.Tensor) -> None:
        self.weights.grad = hypergrad
        self.adam.step()
        low, high = self.lambda_bounds()
        with torch.no_grad():
            self.weights.clamp_(low, high)
        self.lambdas = dict(zip(self.tasks, self.weights.tolist()))

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "weights": self.weights.detach().clone(),
            "adam": self.adam.state_dict(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        with torch.no_grad():
            self.weights.copy_(state["weights"])
        self.adam.load_state_dict(state["adam"])


def finite_difference(
    model: MultiHeadNet,
    losses: Mapping[str, torch.Tensor],
    lambdas: Mapping[str, float],
    alpha: float,
    meta_batch: tuple[torch.Tensor, torch.Tensor],
    optimizer: torch.optim.Optimizer,
    recompute_losses: Callable[[], dict[str, torch.Tensor]],
    autocast: Callable[[], Any] | None = None,
    radius: float = FD_RADIUS,
) -> FiniteDifference:
    """Auto-Lambda's hypergradient of the tasks in ``lambdas``; consumes the graphs of ``losses``.

    ``recompute_losses`` evaluates this step's losses at the model's current parameters (the
    same batch and task draws); psi is moved to psi +- eps v in place and restored bit for bit,
    BatchNorm statistics included.
    """
    psi = model.shared_parameters()
    grads = task_gradients(model, losses, tuple(lambdas))
    g = unflatten(weighted_sum(grads.rows, lambdas), psi)
    psi_next, _ = lookahead_step(psi, g, alpha, optimizer, "sgd")
    meta = meta_loss(model, dict(zip(shared_names(model), psi_next)), meta_batch, autocast)
    v = list(torch.autograd.grad(meta, psi_next))
    eps = radius / float(flatten(v).norm())
    plus = perturbed_losses(model, v, eps, recompute_losses, tuple(lambdas))
    minus = perturbed_losses(model, v, -eps, recompute_losses, tuple(lambdas))
    hypergrad = (plus - minus).mul_(-alpha / (2 * eps))
    return FiniteDifference(hypergrad, meta.detach(), grads)


def perturbed_losses(
    model: MultiHeadNet,
    direction: list[torch.Tensor],
    eps: float,
    recompute_losses: Callable[[], dict[str, torch.Tensor]],
    tasks: tuple[str, ...],
) -> torch.Tensor:
    """(L_i(psi + eps * direction))_i for ``tasks``, the model left exactly as it was."""
    psi: list[torch.Tensor] = list(model.shared_parameters())
    saved_psi = [p.detach().clone() for p in psi]
    saved_buffers = [b.clone() for b in model.buffers()]
    try:
        with torch.no_grad():
            torch._foreach_add_(psi, direction, alpha=eps)
            losses = recompute_losses()
            stacked = torch.stack([losses[task] for task in tasks])
            return stacked.to(torch.promote_types(stacked.dtype, torch.float32))
    finally:
        with torch.no_grad():
            torch._foreach_copy_(psi, saved_psi)
            torch._foreach_copy_(list(model.buffers()), saved_buffers)
