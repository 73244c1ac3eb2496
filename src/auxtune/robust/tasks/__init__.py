"""Self-supervised auxiliary tasks, one module each, registered by name.

>>> import torch
>>> from auxtune.robust.config import TasksConfig
>>> task = create_task("rotation", num_features=16, cfg=TasksConfig())
>>> inputs, labels = task.make_inputs(torch.rand(4, 3, 32, 32))
>>> inputs.shape, labels.shape
(torch.Size([4, 3, 32, 32]), torch.Size([4]))
"""

from auxtune.robust.tasks import (  # noqa: F401  (each import registers its task)
    blur_reconstruction,
    colorization,
    inpainting,
    jigsaw,
    reconstruction,
    rgb_permutation,
    rotation,
)
from auxtune.robust.tasks.base import TASKS, AuxTask, ClassificationTask, create_task, register_task

__all__ = ["TASKS", "AuxTask", "ClassificationTask", "create_task", "register_task"]
