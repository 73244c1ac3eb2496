"""The ``weighting:`` section of a run: which weighting, its lambdas, and each plugin's own section.

Pure data, no torch: :class:`~auxtune.robust.config.TrainConfig` composes it. Names and sections
are checked against the registry (:mod:`auxtune.robust.weighting.registry`), read when a config is
built; each section is parsed by its plugin's ``config_class`` (:mod:`.options`).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from auxtune.config import ConfigError, check, from_dict
from auxtune.robust.tasks.registry import task_names
from auxtune.robust.weighting.options import MetaValidationOptions, OptionError, WeightingOptions
from auxtune.robust.weighting.registry import weighting_class, weighting_names


@dataclass(frozen=True)
class WeightingConfig:
    """How the lambdas of L = L_main + sum_i lambda_i L_aux_i are set.

    ``name`` picks a registered weighting (:mod:`auxtune.robust.weighting`); ``lambdas`` (and
    ``init_lambda`` for tasks it does not name) are the fixed lambdas, or where a learned weighting
    starts. Each weighting with options owns a section named after it (``weighting.meta.meta_lr``,
    ``weighting.gradnorm.alpha``): ``sections`` holds them, parsed by the plugin's config class, and
    plain data spells them in place (``{"name": "gradnorm", "gradnorm": {"alpha": 1.5}}``). The
    active weighting's section is always there (its defaults unless given).

        >>> cfg = WeightingConfig.create("fixed", lambdas={"rotation": 0.2})
        >>> cfg.initial_lambdas(("rotation", "jigsaw")), cfg.options
        ({'rotation': 0.2, 'jigsaw': 0.5}, None)
    """

    name: str = "fixed"
    init_lambda: float = 0.5  # every task's lambda unless ``lambdas`` names it
    lambdas: dict[str, float] = field(default_factory=dict)
    #: weighting name -> its config section (``config_class`` of the weighting)
    sections: dict[str, Any] = field(default_factory=dict, metadata={"inline": True})

    def __post_init__(self) -> None:
        names = weighting_names()
        check(
            self.name in names,
            f"weighting.name: unknown weighting {self.name!r}; valid weightings: {', '.join(names)}",
        )
        check(self.init_lambda >= 0, f"weighting.init_lambda = {self.init_lambda} must be >= 0")
        valid = task_names()
        for task, value in self.lambdas.items():
            check(
                task in valid,
                f"weighting.lambdas: unknown task {task!r}; valid tasks: {', '.join(valid)}",
            )
            check(value >= 0, f"weighting.lambdas.{task} = {value} must be >= 0")
        object.__setattr__(self, "sections", _parse_sections(self.sections, self.name))

    @classmethod
    def create(
        cls,
        name: str = "fixed",
        *,
        init_lambda: float = 0.5,
        lambdas: Mapping[str, float] | None = None,
        **options: Any,
    ) -> WeightingConfig:
        """``create("gradnorm", alpha=0.5)``: the keyword options fill the weighting's own section."""
        sections = {name: options} if options else {}
        return cls(name, init_lambda, dict(lambdas or {}), sections)

    @property
    def options(self) -> Any:
        """The active weighting's section (None for a weighting without options)."""
        return self.sections.get(self.name)

    def section(self, name: str) -> Any:
        """Weighting ``name``'s section: as configured, else its defaults (None: it has none)."""
        if name in self.sections:
            return self.sections[name]
        config_class = weighting_class(name).config_class
        return None if config_class is None else config_class()

    @property
    def meta_validation(self) -> MetaValidationOptions | None:
        """Where the active weighting's meta-validation batches come from, if it needs any."""
        return self.options if weighting_class(self.name).needs_meta_batch else None

    def initial_lambdas(self, tasks: tuple[str, ...]) -> dict[str, float]:
        """The starting lambda of each task in ``tasks``."""
        return {t: float(self.lambdas.get(t, self.init_lambda)) for t in tasks}


def _parse_sections(raw: Mapping[str, Any], active: str) -> dict[str, WeightingOptions]:
    """Each plugin section parsed by its weighting's config class; old flat keys moved into the
    section that declares them (with a deprecation note); the active weighting's section added."""
    plugins = [weighting_class(name) for name in weighting_names()]
    owners = {c.name: c.config_class for c in plugins if c.config_class is not None}
    legacy = {key: name for name, c in owners.items() for key in c.legacy_keys}
    given: dict[str, Any] = {}
    moved: dict[str, dict[str, Any]] = {}
    for key, value in raw.items():
        if key in owners:
            given[key] = value
        elif key in legacy:
            moved.setdefault(legacy[key], {})[key] = value
        else:
            valid = ["init_lambda", "lambdas", "name", *owners]
            raise ConfigError(f"unknown config key weighting.{key}; valid keys: {', '.join(valid)}")
    for name, values in moved.items():
        keys = ", ".join(f"weighting.{k}" for k in values)
        warnings.warn(
            f"{keys}: deprecated flat keys, read as weighting.{name}.<key>; write them there",
            FutureWarning,
            stacklevel=4,
        )
        nested = given.get(name) or {}
        if isinstance(nested, Mapping):  # keys spelt in the section win over flat ones
            given[name] = {**values, **nested}
    config_class = weighting_class(active).config_class
    if config_class is not None and active not in given:
        given[active] = config_class()
    sections = {}
    for name, value in given.items():
        config_class = owners[name]
        try:
            section = (
                value
                if isinstance(value, config_class)
                else from_dict(config_class, value, f"weighting.{name}")
            )
        except OptionError as err:
            raise ConfigError(f"weighting.{name}.{err}") from None
        section.check_search(f"weighting.{name}")
        sections[name] = section
    return sections
