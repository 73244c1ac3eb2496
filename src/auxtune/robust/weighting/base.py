"""The weighting contract: how the lambdas of L = L_main + sum_i lambda_i L_aux_i are chosen.

A weighting is a small object registered by name. Each step it receives the named losses and a
:class:`StepContext` holding everything it may use, fills the parameters' ``.grad`` and returns the
metrics it wants reported. Its whole state is in ``state_dict()`` so resumes and PBT restores are exact.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import torch

from auxtune.robust.config import WeightingConfig
from auxtune.robust.model import MultiHeadNet

X = TypeVar("X")
MAIN = "main"  # the key of the main task's loss; its weight is always 1

WEIGHTINGS: dict[str, type[Weighting]] = {}


def register_weighting(cls: type[Weighting]) -> type[Weighting]:
    WEIGHTINGS[cls.name] = cls
    return cls


def create_weighting(cfg: WeightingConfig, tasks: tuple[str, ...]) -> Weighting:
    """Build the weighting called ``cfg.name`` for the auxiliary ``tasks``."""
    if cfg.name not in WEIGHTINGS:
        raise ValueError(f"unknown weighting {cfg.name!r}; valid: {', '.join(sorted(WEIGHTINGS))}")
    return WEIGHTINGS[cfg.name](cfg, tasks)


def weighted_sum(terms: Mapping[str, X], lambdas: Mapping[str, float]) -> X:
    """``terms[MAIN] + sum_i lambdas[i] * terms[i]``: the one place the objective is combined.

    Works on losses (scalars) and on flattened gradients (vectors) alike.
    """
    total: Any = terms[MAIN]
    for task, weight in lambdas.items():
        total = total + weight * terms[task]  # type: ignore[operator]
    return total


@dataclass
class StepContext:
    """What a weighting may use in one training step (passed explicitly, never read off the trainer)."""

    model: MultiHeadNet
    optimizer: torch.optim.Optimizer
    epoch: int  # 0-based epoch of this step
    step: int  # 0-based global step
    meta_batch: Callable[[], tuple[torch.Tensor, torch.Tensor]] | None = None  # model-ready (x, y)
    autocast: Callable[[], Any] | None = None  # context manager factory for forward passes

    @property
    def lr(self) -> float:
        """The learning rate this step's parameter update will use (alpha_t)."""
        return float(self.optimizer.param_groups[0]["lr"])


class Weighting(ABC):
    """Base class: holds the current lambdas; subclasses decide how they move."""

    name: ClassVar[str]

    def __init__(self, cfg: WeightingConfig, tasks: tuple[str, ...]) -> None:
        self.cfg = cfg
        self.tasks = tasks
        self.lambdas: dict[str, float] = cfg.initial_lambdas(tasks)

    @abstractmethod
    def backward(self, losses: Mapping[str, torch.Tensor], ctx: StepContext) -> dict[str, Any]:
        """Fill ``.grad`` of the model's parameters for this step; return metrics to report."""

    def lambda_metrics(self) -> dict[str, float]:
        return {f"lambda/{task}": value for task, value in self.lambdas.items()}

    def state_dict(self) -> dict[str, Any]:
        return {"lambdas": dict(self.lambdas)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.lambdas = {task: float(state["lambdas"][task]) for task in self.tasks}
