"""Name -> corruption function and its per-severity parameter table.

Each family module registers its corruptions with `@register(name, field=(s1, ..., s5), ...)`;
the table columns become a named tuple, so a function reads `params.sigma` instead of `c[0]`.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

SEVERITIES = (1, 2, 3, 4, 5)

# (images (N, 3, H, W) float in [0, 1], parameters of one severity, generator) -> float images;
# the caller clips to [0, 1] and truncates to uint8.
CorruptionFn = Callable[[torch.Tensor, Any, torch.Generator], torch.Tensor]


@dataclass(frozen=True)
class Corruption:
    name: str
    fn: CorruptionFn
    parameters: tuple[Any, ...]  # one named tuple per severity, severity 1 first
    stochastic: bool


REGISTRY: dict[str, Corruption] = {}


def register(name: str, *, stochastic: bool = True, **table: tuple[Any, ...]):
    """Decorator: register `fn` under `name` with one value per severity for each parameter."""
    if any(len(column) != len(SEVERITIES) for column in table.values()):
        raise ValueError(f"{name}: every parameter needs {len(SEVERITIES)} values")
    type_name = "".join(part.title() for part in name.split("_")) + "Parameters"
    row_type = namedtuple(type_name, tuple(table))  # type: ignore[misc]
    rows = tuple(row_type(*values) for values in zip(*table.values()))

    def decorate(fn: CorruptionFn) -> CorruptionFn:
        REGISTRY[name] = Corruption(name, fn, rows, stochastic)
        return fn

    return decorate
