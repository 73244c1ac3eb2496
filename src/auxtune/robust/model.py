"""The multi-head network: a shared backbone, the main classifier and one head per auxiliary task."""

from __future__ import annotations

import torch
from torch import nn

from auxtune.robust.backbones import WideResNet
from auxtune.robust.batchnorm import frozen_running_stats
from auxtune.robust.config import ModelConfig, TasksConfig
from auxtune.robust.tasks import AuxTask, create_task


class MultiHeadNet(nn.Module):
    """``forward(images)`` gives the main logits; ``tasks[name]`` holds each auxiliary head.

    The shared parameters psi of the meta-gradient (backbone + main classifier) are
    :meth:`shared_parameters`; each task's head is trained by its own loss only.
    """

    def __init__(self, model: ModelConfig, tasks: TasksConfig, num_classes: int) -> None:
        super().__init__()
        self.backbone = WideResNet.from_config(model)
        self.classifier = nn.Linear(self.backbone.num_features, num_classes)
        self.tasks = nn.ModuleDict(
            {name: create_task(name, self.backbone.num_features, tasks) for name in tasks.names}
        )
        self.num_classes = num_classes
        self.running_stats = tasks.running_stats

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.backbone.forward_features(images))

    def view_features(self, views: torch.Tensor) -> torch.Tensor:
        """Backbone features of an auxiliary task's view (rotated, grey, blurred, ...).

        In training the view is normalised by its own batch statistics; unless
        ``tasks.running_stats`` is ``every_view`` it leaves the running statistics, which
        evaluation normalises clean images with, to the clean batches of :meth:`forward`.
        """
        if self.running_stats == "every_view":
            return self.backbone.forward_features(views)
        with frozen_running_stats(self.backbone):
            return self.backbone.forward_features(views)

    def task(self, name: str) -> AuxTask:
        return self.tasks[name]  # type: ignore[return-value]

    def shared_parameters(self) -> list[nn.Parameter]:
        """psi: the parameters the main loss depends on (backbone and main classifier)."""
        return [*self.backbone.parameters(), *self.classifier.parameters()]
