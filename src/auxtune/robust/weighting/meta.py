"""Meta-gradient lambdas (Kim, Lee & Suh, Algorithm 1): lambda descends a meta-validation loss
taken one lookahead step ahead.

Every ``update_every`` steps once ``warmup_epochs`` are over, with psi the shared parameters
(backbone + main classifier) and alpha_t this step's learning rate:

    psi'     = psi - alpha_t * grad_psi L_lambda(psi)          (lookahead "sgd", the paper's)
    L_meta   = CE(f_psi'(x_meta), y_meta)                       (main task, BN in train mode)
    lambda_i <- clamp(lambda_i - beta * dL_meta/dlambda_i, 0, lambda_max)

and the ordinary update then uses the new lambdas. psi' is affine in lambda, so the hypergradient
is exactly a dot product of first-order gradients:

    dL_meta/dlambda_i = -alpha_t * c * < grad L_meta(psi'), grad_psi L_i(psi) >

with c = 1 for ``sgd``, and c = 1 + mu for ``nesterov``, where psi' is the optimizer's own next step
psi - alpha_t ((1 + mu)(g + wd psi) + mu^2 buf). Every task has its own forward graph, so the
per-loss gradients cost one ordinary backward together; the only extra work is the meta forward and
backward on the small meta batch. The second-order reference (autograd through the lookahead, as
in the paper's code) is :func:`auxtune.robust.weighting._reference.meta_hypergradient_reference`.

The main loss keeps weight 1 and is the meta objective (on meta-validation images); only the
auxiliary lambdas are learned. Options: ``weighting.meta`` (:class:`MetaOptions`).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch.func import functional_call
from torch.nn import functional as F

from auxtune.config import check
from auxtune.robust.model import MultiHeadNet
from auxtune.robust.weighting.base import StepContext, weighted_sum
from auxtune.robust.weighting.config import WeightingConfig
from auxtune.robust.weighting.fixed import FixedWeighting
from auxtune.robust.weighting.gradients import (
    TaskGradients,
    Tensors,
    flatten,
    loss_gradients,  # noqa: F401  (re-exported: the per-loss machinery began here)
    task_gradients,
    unflatten,
)
from auxtune.robust.weighting.options import MetaValidationOptions, check_option
from auxtune.robust.weighting.registry import register_weighting

if TYPE_CHECKING:
    from auxtune.robust.config import TrainConfig


@dataclass(frozen=True)
class MetaOptions(MetaValidationOptions):
    """``weighting.meta``: the meta-gradient's knobs (beta, tau, m of Algorithm 1)."""

    meta_lr: float = 0.01  # beta: step size of the gradient step on lambda
    warmup_epochs: int = 1  # tau: epochs trained with the initial lambdas before meta updates start
    update_every: int = 1  # m: meta-update lambda every m steps
    lambda_max: float | None = None  # upper clamp of lambda (lower clamp is always 0)
    # the lookahead psi': "sgd" is the paper's psi - alpha*grad; "nesterov" is the optimizer's
    # actual next step (momentum buffer and weight decay included; scales the hypergradient by 1+mu)
    lookahead: Literal["sgd", "nesterov"] = "sgd"
    search: dict[str, tuple[float, float]] = field(
        default_factory=lambda: {"meta_lr": (1e-3, 1e-1)}
    )

    log_scale = frozenset({"meta_lr"})
    legacy_keys = (
        "meta_lr",
        "warmup_epochs",
        "update_every",
        "lambda_max",
        "meta_batch_size",
        "protocol",
        "lookahead",
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        check_option(self.meta_lr > 0, f"meta_lr = {self.meta_lr} must be > 0")
        check_option(self.warmup_epochs >= 0, f"warmup_epochs = {self.warmup_epochs} must be >= 0")
        check_option(self.update_every >= 1, f"update_every = {self.update_every} must be >= 1")
        check_option(
            self.lambda_max is None or self.lambda_max > 0,
            f"lambda_max = {self.lambda_max} must be > 0 (or null for no upper bound)",
        )

    def check_with(self, cfg: TrainConfig) -> None:
        nesterov = cfg.optim.nesterov or cfg.optim.momentum == 0
        check(
            self.lookahead == "sgd" or nesterov,
            "weighting.meta.lookahead = 'nesterov' models the Nesterov step but optim.nesterov = "
            "false; set optim.nesterov=true or weighting.meta.lookahead=sgd",
        )


@dataclass
class MetaGradient:
    """One meta step's results: the hypergradient and the per-loss gradients it was built from."""

    hypergrad: torch.Tensor  # (k,) dL_meta/dlambda_i, in the order of the tasks given
    meta_loss: torch.Tensor  # L_meta at psi' (detached scalar)
    grads: TaskGradients  # each loss's grad_psi (rows of one matrix), each head's own gradient


def meta_gradient(
    model: MultiHeadNet,
    losses: Mapping[str, torch.Tensor],
    lambdas: Mapping[str, float],
    alpha: float,
    meta_batch: tuple[torch.Tensor, torch.Tensor],
    optimizer: torch.optim.Optimizer,
    lookahead: str = "sgd",
    autocast: Callable[[], Any] | None = None,
) -> MetaGradient:
    """The exact hypergradient of the tasks in ``lambdas``; consumes the graphs of ``losses``."""
    psi = model.shared_parameters()
    grads = task_gradients(model, losses, tuple(lambdas))
    g = unflatten(weighted_sum(grads.rows, lambdas), psi)
    psi_next, scale = lookahead_step(psi, g, alpha, optimizer, lookahead)
    meta = meta_loss(model, dict(zip(shared_names(model), psi_next)), meta_batch, autocast)
    g_meta = flatten(torch.autograd.grad(meta, psi_next))
    hypergrad = (grads.matrix[1:] @ g_meta).mul_(-alpha * scale)
    return MetaGradient(hypergrad, meta.detach(), grads)


def lookahead_step(
    psi: Sequence[torch.Tensor],
    g: Sequence[torch.Tensor],
    alpha: float,
    optimizer: torch.optim.Optimizer,
    mode: str,
) -> tuple[Tensors, float]:
    """psi' as fresh leaves (no graph to psi), and c = d psi' / d(-alpha g) (1 or 1 + mu)."""
    psi, g = list(psi), list(g)
    with torch.no_grad():
        if mode == "sgd":  # the paper's: psi - alpha g
            step, scale = g, 1.0
        else:  # the optimizer's own next step: (1 + mu)(g + wd psi) + mu^2 buf
            mu, wd = nesterov_terms(optimizer)
            step, scale = list(torch._foreach_add(g, psi, alpha=wd)), 1.0 + mu
            torch._foreach_mul_(step, scale)
            bufs = [optimizer.state.get(p, {}).get("momentum_buffer") for p in psi]
            pairs = [(s, b) for s, b in zip(step, bufs) if b is not None]  # none on the first step
            if pairs:
                torch._foreach_add_([s for s, _ in pairs], [b for _, b in pairs], alpha=mu * mu)
        psi_next = torch._foreach_add(psi, step, alpha=-alpha)
    return [p.requires_grad_() for p in psi_next], scale


def nesterov_terms(optimizer: torch.optim.Optimizer) -> tuple[float, float]:
    """(mu, weight decay) of a Nesterov SGD optimizer; refuses other momentum rules."""
    group = optimizer.param_groups[0]
    mu, nesterov = float(group.get("momentum", 0.0)), bool(group.get("nesterov", False))
    if (mu > 0 and not nesterov) or group.get("dampening", 0.0) != 0:
        raise ValueError(
            "weighting.lookahead=nesterov models SGD with Nesterov momentum and no dampening; "
            f"the optimizer has momentum={mu}, nesterov={nesterov}: set optim.nesterov=true "
            "or weighting.lookahead=sgd"
        )
    return mu, float(group.get("weight_decay", 0.0))


def meta_loss(
    model: MultiHeadNet,
    params: Mapping[str, torch.Tensor],
    batch: tuple[torch.Tensor, torch.Tensor],
    autocast: Callable[[], Any] | None = None,
) -> torch.Tensor:
    """Main-task cross-entropy of ``model`` with ``params`` swapped in, on ``batch``.

    BatchNorm keeps the model's mode (train: batch statistics, as in the paper); it updates copies
    of the running statistics, so the model's own buffers never see the meta batch.
    """
    images, labels = batch
    buffers = {name: b.clone() for name, b in model.named_buffers()}
    with autocast() if autocast else contextlib.nullcontext():
        logits = functional_call(model, {**params, **buffers}, (images,))
    return main_loss(logits, labels)


def main_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy in at least float32 (bf16 logits under autocast are promoted, float64 kept)."""
    return F.cross_entropy(logits.to(torch.promote_types(logits.dtype, torch.float32)), labels)


def shared_names(model: MultiHeadNet) -> list[str]:
    """Names of ``model.shared_parameters()``, in that order (for ``functional_call``)."""
    names = {p: name for name, p in model.named_parameters()}
    return [names[p] for p in model.shared_parameters()]


@register_weighting
class MetaGradientWeighting(FixedWeighting):
    """Lambdas learned online by the meta-gradient; ``fixed`` during warm-up and between updates.

    Reports ``lambda/<task>`` every step and, once warm-up is over, ``hypergrad/<task>`` and
    ``meta/loss`` (the values of the latest update on steps between updates). A non-finite
    hypergradient leaves the lambdas unchanged for that step (it still shows in the metrics).
    """

    name = "meta"
    config_class = MetaOptions
    needs_meta_batch = True
    needs_task_gradients = True
    lambdas_change = True
    search_lambdas = True
    options: MetaOptions

    def __init__(self, cfg: WeightingConfig, tasks: tuple[str, ...]) -> None:
        super().__init__(cfg, tasks)
        self.steps_after_warmup = 0  # an update is due when this is a multiple of update_every
        self.last: dict[str, float] = {}  # hypergrad/meta metrics of the latest update

    @classmethod
    def warmup_epochs(cls, options: MetaOptions) -> int:
        return options.warmup_epochs

    def lambda_bounds(self) -> tuple[float, float]:
        return 0.0, math.inf if self.options.lambda_max is None else self.options.lambda_max

    def backward(self, losses: Mapping[str, torch.Tensor], ctx: StepContext) -> dict[str, Any]:
        if ctx.meta_batch is None:
            raise ValueError(
                "weighting.name=meta needs meta-validation batches: give the Trainer a meta_source "
                "(auxtune.data.meta_validation.meta_validation_source)"
            )
        if ctx.epoch < self.options.warmup_epochs:
            return super().backward(losses, ctx)
        due = self.steps_after_warmup % self.options.update_every == 0
        self.steps_after_warmup += 1
        if not due:
            return {**super().backward(losses, ctx), **self.last}
        self._update(losses, ctx)
        return {**self.lambda_metrics(), **self.last}

    def _update(self, losses: Mapping[str, torch.Tensor], ctx: StepContext) -> None:
        assert ctx.meta_batch is not None
        mg = meta_gradient(
            ctx.model,
            losses,
            self.lambdas,
            ctx.lr,
            ctx.meta_batch(),
            ctx.optimizer,
            self.options.lookahead,
            ctx.autocast,
        )
        *hypergrad, meta = torch.cat([mg.hypergrad, mg.meta_loss.reshape(1)]).tolist()  # one sync
        if all(math.isfinite(h) for h in hypergrad):
            low, high = self.lambda_bounds()
            self.lambdas = {
                task: min(max(value - self.options.meta_lr * h, low), high)
                for (task, value), h in zip(self.lambdas.items(), hypergrad)
            }
        self.last = {f"hypergrad/{t}": h for t, h in zip(self.lambdas, hypergrad)}
        self.last["meta/loss"] = meta
        mg.grads.apply(ctx.model, self.lambdas)

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "steps_after_warmup": self.steps_after_warmup,
            "last": dict(self.last),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self.steps_after_warmup = int(state["steps_after_warmup"])
        self.last = {key: float(value) for key, value in state["last"].items()}
