"""Weighting strategies, registered by name (:mod:`.registry`): a plugin module listed in the
registry's ``PLUGINS`` makes its ``@register_weighting`` classes available.

The package imports light (no torch): :class:`~auxtune.robust.config.TrainConfig` composes its
:class:`.config.WeightingConfig`. The plugins and their contract (:mod:`.base`) load on first use
of a name that needs them.

>>> from auxtune.robust.weighting import WEIGHTINGS
>>> list(WEIGHTINGS)
['fixed', 'meta', 'auto_lambda', 'uncertainty', 'dwa', 'gradnorm', 'pcgrad', 'mgda', 'upgrad', 'cagrad', 'schedule']
"""

from typing import TYPE_CHECKING

from auxtune.robust.plugins import lazy_attributes
from auxtune.robust.weighting.config import WeightingConfig
from auxtune.robust.weighting.registry import register_weighting, weighting_class, weighting_names

if TYPE_CHECKING:  # served by __getattr__: they need torch, or every plugin registered
    from auxtune.robust.weighting.base import (
        MAIN,
        StepContext,
        Weighting,
        create_weighting,
        weighted_sum,
    )
    from auxtune.robust.weighting.registry import WEIGHTINGS

__getattr__ = lazy_attributes(
    __name__,
    weighting_names,
    base=("MAIN", "StepContext", "Weighting", "create_weighting", "weighted_sum"),
    registry=("WEIGHTINGS",),
)

__all__ = [
    "MAIN",
    "WEIGHTINGS",
    "StepContext",
    "Weighting",
    "WeightingConfig",
    "create_weighting",
    "register_weighting",
    "weighted_sum",
    "weighting_class",
    "weighting_names",
]
