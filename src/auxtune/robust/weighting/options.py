"""Config sections of the weighting plugins: the base every ``weighting.<name>`` section extends.

A plugin owns its section: a frozen dataclass (``config_class`` of its weighting) holding its
hyperparameters, their checks, and the ranges a search draws them from::

    weighting:
      name: gradnorm
      gradnorm:
        alpha: 1.5
        search: {alpha: [0.0, 3.0]}   # what `auxtune search --strategy gradnorm` draws

Pure data, no torch: :class:`~auxtune.robust.weighting.config.WeightingConfig` parses the sections.

    >>> from dataclasses import dataclass, field
    >>> @dataclass(frozen=True)
    ... class Toy(WeightingOptions):
    ...     rate: float = 0.1
    ...     search: dict[str, tuple[float, float]] = field(default_factory=dict)
    ...     log_scale = frozenset({"rate"})
    >>> Toy(search={"rate": (0.01, 1.0)}).check_search("weighting.toy")
    >>> Toy(search={"rate": (0.0, 1.0)}).check_search("weighting.toy")
    Traceback (most recent call last):
    ...
    auxtune.config.ConfigError: weighting.toy.search.rate = [0.0, 1.0]: a log-uniform range needs 0 < low < high
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from auxtune.config import ConfigError, check


class OptionError(ConfigError):
    """A section's own check failed. The message starts at the field (``alpha = -1 must be >= 0``):
    :class:`~auxtune.robust.weighting.config.WeightingConfig` puts ``weighting.<name>.`` in front."""


def check_option(condition: bool, message: str) -> None:
    """:func:`auxtune.config.check` for a section's ``__post_init__`` (message relative to it)."""
    if not condition:
        raise OptionError(message)


@dataclass(frozen=True)
class WeightingOptions:
    """Base of a plugin's section. A section with hyperparameters worth searching declares, as its
    last field, ``search: dict[str, tuple[float, float]]``: hyperparameter (a numeric field of the
    section) -> the (low, high) range searches draw it from, log-uniformly for the fields named in
    ``log_scale``, uniformly otherwise. A YAML ``search`` replaces the plugin's default ranges."""

    #: fields searched log-uniformly (step sizes and the like)
    log_scale: ClassVar[frozenset[str]] = frozenset()
    #: flat ``weighting.<key>`` names an older schema had for this section's fields
    legacy_keys: ClassVar[tuple[str, ...]] = ()

    def check_with(self, cfg: Any) -> None:
        """Checks against the rest of the training config ``cfg`` (a
        :class:`~auxtune.robust.config.TrainConfig`, which composes this module and so is not
        imported by it), run when this section is the active one."""

    def search_ranges(self) -> dict[str, tuple[float, float]]:
        """Hyperparameter -> (low, high) a search draws it from (empty: nothing to search)."""
        return dict(getattr(self, "search", {}))

    def check_search(self, where: str) -> None:
        """Every search range is a pair inside the field's own valid values (``where``: the section)."""
        numeric = {f.name for f in dataclasses.fields(self) if f.name != "search"}
        for key, bounds in self.search_ranges().items():
            prefix = f"{where}.search.{key}"
            check(
                key in numeric,
                f"{prefix}: {key!r} is not a hyperparameter of {where}; "
                f"valid: {', '.join(sorted(numeric)) or 'none'}",
            )
            check(len(bounds) == 2, f"{prefix} = {list(bounds)} must be [low, high]")
            low, high = bounds
            text = f"{prefix} = [{low}, {high}]"
            check(low < high, f"{text}: low must be < high")
            check(
                key not in self.log_scale or low > 0,
                f"{text}: a log-uniform range needs 0 < low < high",
            )
            for end in (low, high):
                try:
                    dataclasses.replace(self, **{key: end, "search": {}})
                except ConfigError as err:
                    raise ConfigError(f"{text}: {err}") from None

    def scale(self, key: str) -> Literal["log", "linear"]:
        """How searches draw ``key``."""
        return "log" if key in self.log_scale else "linear"


@dataclass(frozen=True)
class MetaValidationOptions(WeightingOptions):
    """Sections of weightings that learn from meta-validation batches (``needs_meta_batch``)."""

    meta_batch_size: int = 25  # images of each meta-validation batch
    # where meta-validation images come from: ``holdout`` (leak-free: held-out training images
    # under the 4 extra corruptions) or ``paper`` (Kim, Lee & Suh: CIFAR-C test blocks, which
    # evaluation then skips)
    protocol: Literal["holdout", "paper"] = "holdout"

    def __post_init__(self) -> None:
        check_option(
            self.meta_batch_size >= 1, f"meta_batch_size = {self.meta_batch_size} must be >= 1"
        )
