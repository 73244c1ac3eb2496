"""The weighting contract: how the lambdas of L = L_main + sum_i lambda_i L_aux_i are chosen.

A weighting is a small object registered by name (:mod:`auxtune.robust.weighting.registry`). Each
step it receives the named losses and a :class:`StepContext` holding everything it may use, fills the
parameters' ``.grad`` and returns the metrics it wants reported (``lambda/<task>`` at least). Its
whole state is in ``state_dict()`` so resumes and PBT restores are exact.

What a weighting needs is declared on its class, and read by the trainer, the trainables and the
CLI instead of its name:

- ``config_class``: its config section ``weighting.<name>`` (a :class:`WeightingOptions`), or None;
- ``needs_meta_batch``: it draws meta-validation batches (``ctx.meta_batch``), so whoever builds the
  :class:`~auxtune.robust.trainer.Trainer` gives it a meta source;
- ``needs_task_gradients``: it computes one gradient per loss over the shared parameters (the
  ``(1 + k, P)`` matrix of :func:`~auxtune.robust.weighting.gradients.task_gradients`);
- ``lambdas_change``: its lambdas move during training (False only for constant lambdas: then a
  task whose lambda is 0 is not computed at all, see :meth:`Weighting.active_tasks`);
- ``search_lambdas``: a search over this weighting also draws the initial lambdas.

The main task's weight is always 1: every weighting's step is the gradient of
``L_main + sum_i lambda_i L_i`` for the lambdas it reports.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import torch

from auxtune.robust.model import MultiHeadNet
from auxtune.robust.weighting.config import WeightingConfig
from auxtune.robust.weighting.options import WeightingOptions
from auxtune.robust.weighting.registry import weighting_class

X = TypeVar("X")
MAIN = "main"  # the key of the main task's loss; its weight is always 1


def create_weighting(cfg: WeightingConfig, tasks: tuple[str, ...]) -> Weighting:
    """Build the weighting called ``cfg.name`` for the auxiliary ``tasks``."""
    cls = weighting_class(cfg.name)
    if not issubclass(cls, Weighting):  # the registry takes any class with the declarations
        raise TypeError(
            f"weighting {cfg.name!r} is registered by {cls.__qualname__}, not a Weighting"
        )
    return cls(cfg, tasks)


def weighted_sum(terms: Mapping[str, X], lambdas: Mapping[str, float | torch.Tensor]) -> X:
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
    # this step's named losses again, at the model's current parameters: the same images and the
    # same task draws (finite differences); filled in by ``train_step``
    recompute_losses: Callable[[], dict[str, torch.Tensor]] | None = None

    @property
    def lr(self) -> float:
        """The learning rate this step's parameter update will use (alpha_t)."""
        return float(self.optimizer.param_groups[0]["lr"])


class Weighting(ABC):
    """Base class: holds the current lambdas; subclasses decide how they move."""

    name: ClassVar[str]
    config_class: ClassVar[type[WeightingOptions] | None] = None
    needs_meta_batch: ClassVar[bool] = False
    needs_task_gradients: ClassVar[bool] = False
    lambdas_change: ClassVar[bool] = True
    search_lambdas: ClassVar[bool] = False

    def __init__(self, cfg: WeightingConfig, tasks: tuple[str, ...]) -> None:
        self.cfg = cfg
        self.options: Any = cfg.section(self.name)
        self.tasks = tasks
        self.lambdas: dict[str, float] = cfg.initial_lambdas(tasks)

    @abstractmethod
    def backward(self, losses: Mapping[str, torch.Tensor], ctx: StepContext) -> dict[str, Any]:
        """Fill ``.grad`` of the model's parameters for this step; return metrics to report."""

    @classmethod
    def warmup_epochs(cls, options: Any) -> int:
        """Epochs it trains with its initial lambdas before they start to move (with ``options``)."""
        return 0

    def active_tasks(self) -> tuple[str, ...]:
        """The tasks whose losses a step computes: all of them, except those whose lambda stays 0
        for the whole run. Such a loss cannot move a parameter, so its forward passes are skipped:
        a fixed weighting with every lambda at 0 costs what training without tasks costs."""
        if self.lambdas_change:
            return self.tasks
        return tuple(task for task in self.tasks if self.lambdas[task] != 0)

    def lambda_bounds(self) -> tuple[float, float]:
        """[low, high] every lambda it reports stays in."""
        return 0.0, math.inf

    def lambda_metrics(self) -> dict[str, float]:
        return {f"lambda/{task}": value for task, value in self.lambdas.items()}

    def state_dict(self) -> dict[str, Any]:
        return {"lambdas": dict(self.lambdas)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.lambdas = {task: float(state["lambdas"][task]) for task in self.tasks}
