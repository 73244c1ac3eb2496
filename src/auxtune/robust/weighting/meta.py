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
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch.func import functional_call
from torch.nn import functional as F

from auxtune.robust.config import WeightingConfig
from auxtune.robust.model import MultiHeadNet
from auxtune.robust.weighting.base import MAIN, StepContext, register_weighting, weighted_sum
from auxtune.robust.weighting.fixed import FixedWeighting

Tensors = list[torch.Tensor]


@dataclass
class MetaGradient:
    """One meta step's results: the hypergradient and the per-loss gradients it was built from."""

    hypergrad: torch.Tensor  # (k,) dL_meta/dlambda_i, in the order of the tasks given
    meta_loss: torch.Tensor  # L_meta at psi' (detached scalar)
    rows: dict[str, torch.Tensor]  # each loss's grad_psi, flattened (rows of one matrix)
    heads: dict[str, Tensors]  # each task head's gradient of its own loss


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
    order = {MAIN: losses[MAIN], **{task: losses[task] for task in lambdas}}
    matrix, heads = loss_gradients(model, order)
    rows = dict(zip(order, matrix))
    g = unflatten(weighted_sum(rows, lambdas), psi)
    psi_next, scale = lookahead_step(psi, g, alpha, optimizer, lookahead)
    meta = meta_loss(model, dict(zip(shared_names(model), psi_next)), meta_batch, autocast)
    g_meta = flatten(torch.autograd.grad(meta, psi_next))
    hypergrad = (matrix[1:] @ g_meta).mul_(-alpha * scale)
    return MetaGradient(hypergrad, meta.detach(), rows, heads)


def loss_gradients(
    model: MultiHeadNet, losses: Mapping[str, torch.Tensor]
) -> tuple[torch.Tensor, dict[str, Tensors]]:
    """Row r of G (len(losses), P) is grad_psi of the r-th loss; also each task head's own gradient.

    The losses come from separate forward passes, so their graphs are disjoint: one
    ``autograd.grad`` each costs, in all, one ordinary backward (no graph is retained).
    """
    psi = model.shared_parameters()
    matrix = psi[0].new_empty(len(losses), sum(p.numel() for p in psi))
    heads: dict[str, Tensors] = {}
    for row, (name, loss) in enumerate(losses.items()):
        own = [] if name == MAIN else list(model.task(name).parameters())
        # a task never touches the classifier: its zero gradient there is materialised
        grads = torch.autograd.grad(loss, psi + own, allow_unused=True, materialize_grads=True)
        torch.cat([g.reshape(-1) for g in grads[: len(psi)]], out=matrix[row])
        heads[name] = list(grads[len(psi) :])
    return matrix, heads


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


def flatten(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for t in tensors])


def unflatten(flat: torch.Tensor, like: Sequence[torch.Tensor]) -> Tensors:
    """Views of ``flat`` shaped like ``like`` (contiguous, whatever the originals' layout)."""
    chunks = flat.split([t.numel() for t in like])
    return [chunk.view(t.shape) for chunk, t in zip(chunks, like)]


def set_grads(params: Sequence[torch.Tensor], grads: Sequence[torch.Tensor]) -> None:
    """``p.grad = g`` in each parameter's own memory layout (keeps the optimizer's fused path)."""
    copies = [torch.empty_like(p) for p in params]
    torch._foreach_copy_(copies, list(grads))
    for p, copy in zip(params, copies):
        p.grad = copy


@register_weighting
class MetaGradientWeighting(FixedWeighting):
    """Lambdas learned online by the meta-gradient; ``fixed`` during warm-up and between updates.

    Reports ``lambda/<task>`` every step and, once warm-up is over, ``hypergrad/<task>`` and
    ``meta/loss`` (the values of the latest update on steps between updates). A non-finite
    hypergradient leaves the lambdas unchanged for that step (it still shows in the metrics).
    """

    name = "meta"

    def __init__(self, cfg: WeightingConfig, tasks: tuple[str, ...]) -> None:
        super().__init__(cfg, tasks)
        self.steps_after_warmup = 0  # an update is due when this is a multiple of update_every
        self.last: dict[str, float] = {}  # hypergrad/meta metrics of the latest update

    def backward(self, losses: Mapping[str, torch.Tensor], ctx: StepContext) -> dict[str, Any]:
        if ctx.meta_batch is None:
            raise ValueError(
                "weighting.name=meta needs meta-validation batches: give the Trainer a meta_source "
                "(auxtune.data.meta_validation.meta_validation_stream)"
            )
        if ctx.epoch < self.cfg.warmup_epochs:
            return super().backward(losses, ctx)
        due = self.steps_after_warmup % self.cfg.update_every == 0
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
            self.cfg.lookahead,
            ctx.autocast,
        )
        *hypergrad, meta = torch.cat([mg.hypergrad, mg.meta_loss.reshape(1)]).tolist()  # one sync
        if all(math.isfinite(h) for h in hypergrad):
            self.lambdas = {
                task: self._clamp(value - self.cfg.meta_lr * h)
                for (task, value), h in zip(self.lambdas.items(), hypergrad)
            }
        self.last = {f"hypergrad/{t}": h for t, h in zip(self.lambdas, hypergrad)}
        self.last["meta/loss"] = meta
        psi = ctx.model.shared_parameters()
        set_grads(psi, unflatten(weighted_sum(mg.rows, self.lambdas), psi))
        for task, value in self.lambdas.items():  # each head is trained by its own loss only
            # out of place: autograd may hand back expanded (stride-0) gradients
            scaled = torch._foreach_mul(mg.heads[task], value)
            for p, grad in zip(ctx.model.task(task).parameters(), scaled):
                p.grad = grad

    def _clamp(self, value: float) -> float:
        upper = math.inf if self.cfg.lambda_max is None else self.cfg.lambda_max
        return min(max(value, 0.0), upper)

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
