"""Second-order reference of the meta hypergradient, the way the paper's code computes it.

The lambdas are leaf tensors, the lookahead psi' is built with ``create_graph=True`` (for
``nesterov`` by replaying the optimizer's momentum rule, not by the (1 + mu) shortcut), and autograd
differentiates the meta loss through it. Slow (double backward), for tests and the benchmark only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

from auxtune.robust.model import MultiHeadNet
from auxtune.robust.weighting.base import weighted_sum
from auxtune.robust.weighting.meta import meta_loss, nesterov_terms, shared_names


def meta_hypergradient_reference(
    model: MultiHeadNet,
    losses: Mapping[str, torch.Tensor],
    lambdas: Mapping[str, float],
    alpha: float,
    meta_batch: tuple[torch.Tensor, torch.Tensor],
    optimizer: torch.optim.Optimizer,
    lookahead: str = "sgd",
    autocast: Callable[[], Any] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(dL_meta/dlambda in the order of ``lambdas``, L_meta at psi'); keeps the graphs of ``losses``."""
    psi = model.shared_parameters()
    lam = torch.tensor(list(lambdas.values()), dtype=psi[0].dtype, requires_grad=True)
    weights: dict[str, Any] = dict(zip(lambdas, lam.to(psi[0].device).unbind()))
    total = weighted_sum(losses, weights)
    grads = torch.autograd.grad(total, psi, create_graph=True)
    if lookahead == "sgd":
        psi_next = [p - alpha * g for p, g in zip(psi, grads)]
    else:
        mu, wd = nesterov_terms(optimizer)
        psi_next = []
        for p, g in zip(psi, grads):  # torch.optim.SGD's rule, step by step
            d = g + wd * p
            buf = optimizer.state.get(p, {}).get("momentum_buffer")
            buf = d if buf is None else mu * buf + d
            psi_next.append(p - alpha * (d + mu * buf))
    meta = meta_loss(model, dict(zip(shared_names(model), psi_next)), meta_batch, autocast)
    (hypergrad,) = torch.autograd.grad(meta, lam)
    return hypergrad, meta.detach()
