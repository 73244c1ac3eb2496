"""How a registry finds its plugins: by module name, on first lookup, listed in a fixed order.

A registry (:mod:`auxtune.robust.tasks.registry`, :mod:`auxtune.robust.weighting.registry`) is a
name -> class dict that its plugin modules fill with a decorator when they are imported. It sits
below them and imports no torch, because the configs validate names through it; so it cannot import
its plugins at the top, and loads them here, late, by name. A plugin package's ``__init__`` serves
its heavy names the same way (:func:`lazy_attributes`), so importing a config from it stays light.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Any

_LOADED: set[str] = set()  # packages whose plugins are all imported


def load_plugins(registry: dict[str, Any], package: str, modules: Sequence[str]) -> None:
    """Import ``package``'s plugin ``modules`` (once, in order), then list ``registry`` in that
    order: a module imported on its own first (by a test, say) registered its classes early. Classes
    of other modules (a test's toy plugin) keep their registration order, after the listed ones."""
    if package in _LOADED:
        return
    for module in modules:
        importlib.import_module(f"{package}.{module}")
    rank = {f"{package}.{module}": i for i, module in enumerate(modules)}
    ordered = sorted(registry.items(), key=lambda item: rank.get(item[1].__module__, len(rank)))
    registry.clear()
    registry.update(ordered)
    _LOADED.add(package)


def lazy_attributes(
    package: str, load: Callable[[], object], **homes: Sequence[str]
) -> Callable[[str], Any]:
    """A package's ``__getattr__`` (PEP 562) serving the names of each submodule
    (``base=("create_task",)``), imported on first use after ``load()`` registered every plugin."""
    home = {name: module for module, names in homes.items() for name in names}

    def __getattr__(name: str) -> Any:
        if name not in home:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        load()
        return getattr(importlib.import_module(f"{package}.{home[name]}"), name)

    return __getattr__
