"""The task registry: the one list of self-supervised task names, and the classes behind them.

Light on purpose (no torch): :class:`~auxtune.robust.tasks.config.TasksConfig` validates
``tasks.names`` through it. A task registers with :func:`register_task` when its module is
imported; every lookup here first imports the modules in :data:`PLUGINS`, so a caller never sees a
half-filled registry.

    >>> task_names()[:2], task_class("rotation").name
    (('blur_reconstruction', 'colorization'), 'rotation')
"""

from __future__ import annotations

from typing import ClassVar, Protocol, TypeVar

from auxtune.robust.plugins import load_plugins

#: the modules of :mod:`auxtune.robust.tasks` that register a task, in the order tasks are listed
PLUGINS = (
    "blur_reconstruction",
    "colorization",
    "inpainting",
    "jigsaw",
    "reconstruction",
    "rgb_permutation",
    "rotation",
)


class RegisteredTask(Protocol):
    """What the registry reads off a task class. The class is an
    :class:`~auxtune.robust.tasks.base.AuxTask`, which this module cannot import: that needs torch
    and the task config, and the task config needs this registry."""

    name: ClassVar[str]


T = TypeVar("T", bound=type[RegisteredTask])

#: name -> task class, in the order of :data:`PLUGINS`
TASKS: dict[str, type[RegisteredTask]] = {}


def register_task(cls: T) -> T:
    """Class decorator: make ``cls`` available as ``tasks.names=[<cls.name>]``."""
    TASKS[cls.name] = cls
    return cls


def task_names() -> tuple[str, ...]:
    """Every registered self-supervised task."""
    load_plugins(TASKS, "auxtune.robust.tasks", PLUGINS)
    return tuple(TASKS)


def task_class(name: str) -> type[RegisteredTask]:
    """The class registered as ``name``; an unknown name is a ValueError listing the valid ones."""
    if name not in task_names():
        raise ValueError(f"unknown task {name!r}; valid tasks: {', '.join(sorted(TASKS))}")
    return TASKS[name]
