"""The contract every self-supervised task implements, and the factory that builds one by name.

A task owns three things: a batched, on-device input transform (``make_inputs``), a head on the
shared feature vector (``forward``) and a loss (``loss``). Adding a task is one module with a
``@register_task`` class (:mod:`.registry`), listed in the registry's ``PLUGINS``; the trainer, the
configs and the contract tests pick it up by name.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import ClassVar

import torch
from torch import nn

from auxtune.robust.tasks.config import TasksConfig
from auxtune.robust.tasks.registry import task_class


def create_task(name: str, num_features: int, cfg: TasksConfig) -> AuxTask:
    """Build the task called ``name`` with a head on ``num_features``-wide features."""
    cls = task_class(name)
    if not issubclass(cls, AuxTask):  # the registry takes any class with a name
        raise TypeError(f"task {name!r} is registered by {cls.__qualname__}, not an AuxTask")
    return cls(num_features, cfg)


class AuxTask(nn.Module, ABC):
    """A self-supervised auxiliary task: transform, head and loss."""

    name: ClassVar[str]

    def __init__(self, num_features: int, cfg: TasksConfig) -> None:
        super().__init__()
        self.num_features = num_features
        self.loss_scale = cfg.loss_scale(self.name)  # the trainer's constant factor on loss()

    @abstractmethod
    def make_inputs(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Images (N, 3, 32, 32) in [0, 1] -> (transformed images for the backbone, targets).

        The view usually has the batch's N images; a task may return k*N (all four rotations).
        """

    @abstractmethod
    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Backbone features of the transformed images -> the head's prediction."""

    @abstractmethod
    def loss(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Scalar loss of ``prediction`` against ``target``."""


class ClassificationTask(AuxTask):
    """A task that applies one of ``num_classes`` known transformations and predicts which one.

    Subclasses implement ``transform(images, labels)``; labels are drawn uniformly per image.
    """

    num_classes: ClassVar[int]

    def __init__(self, num_features: int, cfg: TasksConfig) -> None:
        super().__init__(num_features, cfg)
        self.head = nn.Linear(num_features, self.num_classes)

    @abstractmethod
    def transform(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Transform image i by transformation ``labels[i]`` (batched, no Python loop over images)."""

    def make_inputs(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        labels = torch.randint(self.num_classes, (images.shape[0],), device=images.device)
        return self.transform(images, labels), labels

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features)

    def loss(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(prediction, target)


def select_per_image(
    images: torch.Tensor,
    labels: torch.Tensor,
    transforms: Sequence[Callable[..., torch.Tensor]],
) -> torch.Tensor:
    """Apply transform ``labels[i]`` to image i: each transform runs once on the images that need it."""
    out = torch.empty_like(images)
    for k, transform in enumerate(transforms):
        chosen = labels == k
        if chosen.any():
            out[chosen] = transform(images[chosen])
    return out
