"""The weighting registry: the one list of weighting names, and the classes behind them.

Light on purpose (no torch): :class:`~auxtune.robust.weighting.config.WeightingConfig` validates
``weighting.name`` and the plugins' config sections through it. Plugins register with
:func:`register_weighting` when their module is imported; every lookup here first imports the
modules in :data:`PLUGINS`, so a caller never sees a half-filled registry.

    >>> weighting_names()[:2], weighting_class("fixed").lambdas_change
    (('fixed', 'meta'), False)
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol, TypeVar

from auxtune.config import ConfigError
from auxtune.robust.plugins import load_plugins
from auxtune.robust.weighting.options import WeightingOptions

#: the modules of :mod:`auxtune.robust.weighting` that register weightings, in the order
#: ``auxtune`` lists them (a module's own weightings in the order it registers them)
PLUGINS = (
    "fixed",
    "meta",
    "auto_lambda",
    "uncertainty",
    "dwa",
    "gradnorm",
    "aggregation",
    "schedule",
)


class RegisteredWeighting(Protocol):
    """What the config, the search and the CLI read off a weighting class without building one:
    the declarations :mod:`.base` explains. The class is a :class:`~.base.Weighting`, which this
    module cannot import: that needs torch and the weighting config, which needs this registry."""

    name: ClassVar[str]
    config_class: ClassVar[type[WeightingOptions] | None]
    needs_meta_batch: ClassVar[bool]
    needs_task_gradients: ClassVar[bool]
    lambdas_change: ClassVar[bool]
    search_lambdas: ClassVar[bool]

    @classmethod
    def warmup_epochs(cls, options: Any) -> int: ...


# any class: a plugin narrows the declared types (config_class = MetaOptions), which a Protocol's
# attributes, being settable, do not allow; create_weighting checks it is a Weighting
W = TypeVar("W", bound=type[Any])

#: name -> weighting class, in the order of :data:`PLUGINS` (the order ``auxtune`` lists them in)
WEIGHTINGS: dict[str, type[RegisteredWeighting]] = {}


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
    load_plugins(WEIGHTINGS, "auxtune.robust.weighting", PLUGINS)
    return tuple(WEIGHTINGS)


def weighting_class(name: str) -> type[RegisteredWeighting]:
    """The class registered as ``name``; an unknown name is a ConfigError listing the valid ones."""
    if name not in weighting_names():
        raise ConfigError(f"unknown weighting {name!r}; valid weightings: {', '.join(WEIGHTINGS)}")
    return WEIGHTINGS[name]
