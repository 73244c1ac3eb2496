"""GradNorm (Chen, Badrinarayanan, Lee & Rabinovich, "GradNorm: Gradient Normalization for
Adaptive Loss Balancing in Deep Multitask Networks", ICML 2018): learn the weights so that each
task's weighted gradient norm on the shared layers W follows its relative training rate.

Each step, with n_r = ||grad_W L_r|| over the shared backbone W, w_r the weights (w_main = 1),
L~_r = L_r(t) / L_r(0) and r_r = L~_r / mean(L~):

    G_r      = w_r n_r,            G_bar = mean_r G_r
    target_r = G_bar * r_r^alpha                           (held constant)
    L_grad   = sum_r |G_r - target_r|
    w_i     <- w_i - lr * sign(G_i - target_i) n_i         (= w_i - lr * dL_grad/dw_i)

then the weights are clipped at 0 and renormalised to their initial sum. The asymmetry alpha sets
how hard tasks that train slower are pushed (alpha = 0 equalises the gradient norms).

How the main loss enters: it takes part in G_bar and in the training rates r, so the auxiliary
gradient norms are balanced against the main task's, but its own weight stays 1 (the paper
renormalises every weight to sum to the number of tasks; here the auxiliary weights keep the sum
of the configured lambdas). W is every backbone parameter: the paper allows any shared subset and
takes the last shared layer only to save compute, while here the per-task gradients over the
whole backbone are computed anyway (:func:`~auxtune.robust.weighting.gradients.task_gradients`).
This step's update uses the weights from before it, as in the paper's Algorithm 1.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from auxtune.robust.weighting.base import StepContext, Weighting
from auxtune.robust.weighting.config import WeightingConfig
from auxtune.robust.weighting.gradients import task_gradients
from auxtune.robust.weighting.options import WeightingOptions, check_option
from auxtune.robust.weighting.registry import register_weighting


@dataclass(frozen=True)
class GradNormOptions(WeightingOptions):
    """``weighting.gradnorm``: the asymmetry alpha and the weights' step size."""

    alpha: float = 1.5  # the paper's value on NYUv2
    lr: float = 0.025  # step size of the weights' gradient step
    search: dict[str, tuple[float, float]] = field(default_factory=lambda: {"alpha": (0.0, 3.0)})

    log_scale = frozenset({"lr"})

    def __post_init__(self) -> None:
        check_option(self.alpha >= 0, f"alpha = {self.alpha} must be >= 0")
        check_option(self.lr > 0, f"lr = {self.lr} must be > 0")


@register_weighting
class GradNormWeighting(Weighting):
    """Auxiliary weights learned by gradient-norm balancing; the main weight stays 1."""

    name = "gradnorm"
    config_class = GradNormOptions
    needs_task_gradients = True
    options: GradNormOptions

    def __init__(self, cfg: WeightingConfig, tasks: tuple[str, ...]) -> None:
        super().__init__(cfg, tasks)
        self.mass = sum(self.lambdas.values())  # the auxiliary weights' sum, kept
        self.initial_losses: torch.Tensor | None = None  # L_r(0), main first

    def lambda_bounds(self) -> tuple[float, float]:
        return 0.0, self.mass

    def backward(self, losses: Mapping[str, torch.Tensor], ctx: StepContext) -> dict[str, Any]:
        grads = task_gradients(ctx.model, losses, self.tasks)
        grads.apply(ctx.model, self.lambdas)
        current = torch.stack([losses[name].detach().double() for name in grads.names]).cpu()
        if self.initial_losses is None:  # L(0): a loss of exactly 0 must not divide
            self.initial_losses = current.clamp_min(torch.finfo(current.dtype).tiny)
        backbone = sum(p.numel() for p in ctx.model.backbone.parameters())
        norms = grads.matrix[:, :backbone].norm(dim=1).double().cpu()
        weights = torch.tensor([1.0, *self.lambdas.values()], dtype=torch.float64)
        step, loss = gradnorm_step(
            weights, norms, current / self.initial_losses, self.options.alpha
        )
        metrics = {**self.lambda_metrics(), "gradnorm/loss": float(loss)}
        self.lambdas = self._renormalised(weights[1:] - self.options.lr * step[1:])
        return metrics

    def _renormalised(self, aux: torch.Tensor) -> dict[str, float]:
        aux = aux.clamp_min(0.0)
        total = float(aux.sum())
        scale = self.mass / total if total > 0 else 0.0
        return {task: value * scale for task, value in zip(self.tasks, aux.tolist())}

    def state_dict(self) -> dict[str, Any]:
        initial = None if self.initial_losses is None else self.initial_losses.clone()
        return {**super().state_dict(), "initial_losses": initial}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        initial = state["initial_losses"]
        self.initial_losses = None if initial is None else initial.clone()


def gradnorm_step(
    weights: torch.Tensor, norms: torch.Tensor, loss_ratios: torch.Tensor, alpha: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """(dL_grad/dw with the target held constant, L_grad) for weights w, gradient norms n and
    loss ratios L(t)/L(0), all in one order (main first).

    >>> w, n = torch.tensor([1.0, 1.0]), torch.tensor([2.0, 1.0])
    >>> gradnorm_step(w, n, loss_ratios=torch.tensor([1.0, 1.0]), alpha=1.0)
    (tensor([2., -1.]), tensor(1.))
    """
    weighted = weights * norms
    rates = loss_ratios / loss_ratios.mean()
    target = weighted.mean() * rates**alpha
    return torch.sign(weighted - target) * norms, (weighted - target).abs().sum()
