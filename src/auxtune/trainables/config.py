"""A trial's training config: the experiment's :class:`TrainConfig` plus what the search chose.

A trial config (Tune's ``config`` dict) may hold

- ``lambda``: ``{task: value}`` (Tune shows it as ``lambda/<task>``), or ``lambdas`` (same), or
  flat ``lambda/<task>`` keys;
- ``seed``: the training seed (model init, data order, task transforms), e.g. compare's retrains;
- dotted keys of the training config for anything else: ``"optim.lr": 0.05``, a weighting and its
  hyperparameters (``"weighting.name": "gradnorm"``, ``"weighting.gradnorm.alpha": 0.5``); a None
  value leaves its key as configured (a grid over strategies can give each only its own keys).
- ``overrides``: more dotted keys gathered in one mapping (compare's retrains and variants:
  ``{"overrides": {"tasks.names": []}}``), applied last.

Pure functions, no Ray: the driver (MLflow params, artifacts) and the trials use the same ones.

    >>> from auxtune.robust.config import TasksConfig, TrainConfig
    >>> base = TrainConfig(tasks=TasksConfig(names=("rotation", "jigsaw")))
    >>> choice = {"lambda": {"rotation": 0.2}, "optim.lr": 0.05, "seed": 3}
    >>> cfg = trial_train_config(base, choice)
    >>> cfg.weighting.lambdas, cfg.optim.lr, cfg.seed
    ({'rotation': 0.2}, 0.05, 3)
    >>> chosen_params(choice)
    {'lambda/rotation': 0.2, 'optim.lr': 0.05, 'seed': 3}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from auxtune.config import ConfigError, from_dict, set_dotted, to_dict
from auxtune.robust.config import TrainConfig


def trial_lambdas(config: Mapping[str, Any]) -> dict[str, float]:
    """The lambdas a trial config sets (empty when it sets none)."""
    found: dict[str, float] = {}
    for key in ("lambda", "lambdas"):
        value = config.get(key)
        if isinstance(value, Mapping):
            found.update({str(t): float(v) for t, v in value.items()})
    for key, value in config.items():
        if key.startswith("lambda/"):
            found[key.removeprefix("lambda/")] = float(value)
    return found


def trial_train_config(
    base: TrainConfig, config: Mapping[str, Any], *, threads: int | None = None
) -> TrainConfig:
    """``base`` with the trial's lambdas, seed and dotted keys applied (validated)."""
    data = to_dict(base)
    lambdas = trial_lambdas(config)
    unknown = [task for task in lambdas if task not in base.tasks.names]
    if unknown:
        raise ConfigError(
            f"the search sets lambda/{unknown[0]} but {unknown[0]!r} is not in tasks.names "
            f"{list(base.tasks.names)}"
        )
    if lambdas:
        data["weighting"]["lambdas"] = {**data["weighting"]["lambdas"], **lambdas}
    if "seed" in config:
        data["seed"] = int(config["seed"])
    for key, value in dotted_overrides(config).items():
        if value is not None:
            set_dotted(data, key, value)
    if threads is not None:
        data["runtime"]["threads"] = threads
    return from_dict(TrainConfig, data)


def dotted_overrides(config: Mapping[str, Any]) -> dict[str, Any]:
    """The trial config's dotted training-config keys: top-level ones, then ``overrides``."""
    found = {k: v for k, v in config.items() if "." in k and not k.startswith("lambda")}
    found.update(config.get("overrides") or {})
    return found


def chosen_params(config: Mapping[str, Any]) -> dict[str, float | str]:
    """What the strategy chose, flat: ``lambda/<task>`` and the dotted keys."""
    params: dict[str, float | str] = {f"lambda/{t}": v for t, v in trial_lambdas(config).items()}
    for key, value in config.items():
        if key in ("lambda", "lambdas", "overrides") or key.startswith("lambda/"):
            continue
        params[key] = value if isinstance(value, (int, float, str)) else str(value)
    for key, value in (config.get("overrides") or {}).items():
        params[key] = value if isinstance(value, (int, float, str)) else str(value)
    return params


def lambdas_key(cfg: TrainConfig) -> dict[str, Any]:
    """What a checkpoint records of the search's choice; a restore that differs is a PBT exploit.

    Plain JSON data: the initial lambdas, the weighting and its options."""
    return {
        "lambdas": cfg.weighting.initial_lambdas(cfg.tasks.names),
        "weighting": cfg.weighting.name,
        "options": to_dict(cfg.weighting.options),
    }
