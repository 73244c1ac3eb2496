"""Weighting strategies, registered by name (``fixed``, ``meta``)."""

from auxtune.robust.weighting import (
    fixed,  # noqa: F401  (registers "fixed")
    meta,  # noqa: F401
)
from auxtune.robust.weighting.base import (
    MAIN,
    WEIGHTINGS,
    StepContext,
    Weighting,
    create_weighting,
    register_weighting,
    weighted_sum,
)

__all__ = [
    "MAIN",
    "WEIGHTINGS",
    "StepContext",
    "Weighting",
    "create_weighting",
    "register_weighting",
    "weighted_sum",
]
