"""The weighting registry: the one list of weighting names, and the classes behind them.

Light on purpose (no torch): :mod:`auxtune.robust.config` validates ``weighting.name`` and the
plugins' config sections through it. Plugins register with :func:`register_weighting` when the
package :mod:`auxtune.robust.weighting` is imported; every lookup here imports it first, so a caller
never sees a half-filled registry.

    >>> weighting_names()[:2], weighting_class("fixed").lambdas_change
    (('fixed', 'meta'), False)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, TypeVar

from auxtune.config import ConfigError

if TYPE_CHECKING:
    from auxtune.robust.weighting.base import Weighting

W = TypeVar("W", bound=type[Any])

#: name -> weighting class, in registration order (the order ``auxtune`` lists them in)
WEIGHTINGS: dict[str, type[Weighting]] = {}


def register_weighting(cls: W) -> W:
    """Class decorator: make ``cls`` available as ``weighting.name=<cls.name>``.

    A name is registered once: a second class under the same name is refused, whatever its module.
    """
    name = cls.name
    if name in WEIGHTINGS:
        first = WEIGHTINGS[name]
        raise ValueError(
            f"weighting {name!r} is already registered by {first.__module__}.{first.__qualname__}; "
            f"choose another name for {cls.__module__}.{cls.__qualname__}"
        )
    WEIGHTINGS[name] = cls
    return cls


def weighting_names() -> tuple[str, ...]:
    """Every registered weighting name."""
    _load_plugins()
    return tuple(WEIGHTINGS)


def weighting_class(name: str) -> type[Weighting]:
    """The class registered as ``name``; an unknown name is a ConfigError listing the valid ones."""
    _load_plugins()
    if name not in WEIGHTINGS:
        raise ConfigError(f"unknown weighting {name!r}; valid weightings: {', '.join(WEIGHTINGS)}")
    return WEIGHTINGS[name]


def _load_plugins() -> None:
    importlib.import_module("auxtune.robust.weighting")  # its imports register every plugin
