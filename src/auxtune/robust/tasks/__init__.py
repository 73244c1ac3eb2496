"""Self-supervised auxiliary tasks, one module each, registered by name (:mod:`.registry`).

The package imports light (no torch): :class:`~auxtune.robust.config.TrainConfig` composes its
:class:`.config.TasksConfig`. The task classes load on first use of a name that needs them.

>>> import torch
>>> from auxtune.robust.tasks import TasksConfig, create_task
>>> task = create_task("rotation", num_features=16, cfg=TasksConfig())
>>> inputs, labels = task.make_inputs(torch.rand(4, 3, 32, 32))
>>> inputs.shape, labels.shape
(torch.Size([4, 3, 32, 32]), torch.Size([4]))
"""

from typing import TYPE_CHECKING

from auxtune.robust.plugins import lazy_attributes
from auxtune.robust.tasks.config import TasksConfig
from auxtune.robust.tasks.registry import register_task, task_class, task_names

if TYPE_CHECKING:  # served by __getattr__: they need torch, or every plugin registered
    from auxtune.robust.tasks.base import AuxTask, ClassificationTask, create_task
    from auxtune.robust.tasks.registry import TASKS

__getattr__ = lazy_attributes(
    __name__, task_names, base=("AuxTask", "ClassificationTask", "create_task"), registry=("TASKS",)
)

__all__ = [
    "TASKS",
    "AuxTask",
    "ClassificationTask",
    "TasksConfig",
    "create_task",
    "register_task",
    "task_class",
    "task_names",
]
