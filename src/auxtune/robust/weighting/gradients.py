"""Per-loss gradients over the shared parameters psi, the machinery of the gradient-based weightings.

Every task's loss has its own forward graph (``compute_losses`` runs one forward per view), so
the gradient of each loss alone costs, all together, one ordinary backward: :func:`task_gradients`
gives the matrix G whose row r is grad_psi of the r-th loss (row 0 the main loss), plus each task
head's gradient of its own loss. A weighting then picks lambdas from G (a hypergradient, a Gramian,
gradient norms) and :meth:`TaskGradients.apply` sets the step's gradient to that of
``L_main + sum_i lambda_i L_i``: psi gets ``G[0] + sum_i lambda_i G[i]``, head i gets ``lambda_i``
times its own gradient.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from auxtune.robust.model import MultiHeadNet
from auxtune.robust.weighting.base import MAIN, weighted_sum

Tensors = list[torch.Tensor]


@dataclass
class TaskGradients:
    """G (1 + k, P) over psi in the order of ``names`` (MAIN first), and each head's own gradient."""

    names: tuple[str, ...]
    matrix: torch.Tensor
    heads: dict[str, Tensors]

    @property
    def rows(self) -> dict[str, torch.Tensor]:
        return dict(zip(self.names, self.matrix))

    def apply(self, model: MultiHeadNet, lambdas: Mapping[str, float]) -> None:
        """``.grad`` of every parameter := the gradient of L_main + sum_i lambdas[i] L_i."""
        psi = model.shared_parameters()
        set_grads(psi, unflatten(weighted_sum(self.rows, lambdas), psi))
        for task, value in lambdas.items():  # each head is trained by its own loss only
            # out of place: autograd may hand back expanded (stride-0) gradients
            scaled = torch._foreach_mul(self.heads[task], value)
            for p, grad in zip(model.task(task).parameters(), scaled):
                p.grad = grad


def task_gradients(
    model: MultiHeadNet, losses: Mapping[str, torch.Tensor], tasks: Sequence[str]
) -> TaskGradients:
    """The gradients of ``losses[MAIN]`` and of each of ``tasks``; consumes the losses' graphs."""
    order = {MAIN: losses[MAIN], **{task: losses[task] for task in tasks}}
    matrix, heads = loss_gradients(model, order)
    return TaskGradients(tuple(order), matrix, heads)


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
