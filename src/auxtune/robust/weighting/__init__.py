"""Weighting strategies, registered by name: import a plugin module here and it is available.

>>> list(WEIGHTINGS)
['fixed', 'meta', 'auto_lambda', 'uncertainty', 'dwa', 'gradnorm', 'pcgrad', 'mgda', 'upgrad', 'cagrad', 'schedule']
"""

# Each import registers its weightings; the import order is the order they are listed in.
# isort: off
from auxtune.robust.weighting import fixed, meta, auto_lambda  # noqa: F401
from auxtune.robust.weighting import uncertainty, dwa, gradnorm, aggregation, schedule  # noqa: F401

# isort: on
from auxtune.robust.weighting.base import (
    MAIN,
    StepContext,
    Weighting,
    create_weighting,
    weighted_sum,
)
from auxtune.robust.weighting.registry import (
    WEIGHTINGS,
    register_weighting,
    weighting_class,
    weighting_names,
)

__all__ = [
    "MAIN",
    "WEIGHTINGS",
    "StepContext",
    "Weighting",
    "create_weighting",
    "register_weighting",
    "weighted_sum",
    "weighting_class",
    "weighting_names",
]
