"""A trial's training config: the experiment's :class:`TrainConfig` plus what the search chose.

A trial config (Tune's ``config`` dict) may hold

- ``lambda``: ``{task: value}`` (Tune shows it as ``lambda/<task>``), or ``lambdas`` (same), or
  flat ``lambda/<task>`` keys;
- ``meta_lr``: beta of the meta-gradient weighting;
- ``seed``: the training seed (model init, data order, task transforms), e.g. compare's retrains;
- dotted keys of the training config (``"optim.lr": 0.05``) for anything else.

Pure functions, no Ray: the driver (MLflow params, artifacts) and the trials use the same ones.

    >>> from auxtune.robust.config import TasksConfig, TrainConfig
    >>> base = TrainConfig(tasks=TasksConfig(names=("rotation", "jigsaw")))
    >>> cfg = trial_train_config(base, {"lambda": {"rotation": 0.2, "jigsaw": 0.7}, "meta_lr": 0.05})
    >>> cfg.weighting.lambdas, cfg.weighting.meta_lr
    ({'rotation': 0.2, 'jigsaw': 0.7}, 0.05)
    >>> trial_train_config(base, {"seed": 3}).seed
    3
    >>> chosen_params({"lambda": {"rotation": 0.2}, "meta_lr": 0.05})
    {'lambda/rotation': 0.2, 'meta_lr': 0.05}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from auxtune.config import ConfigError, apply_overrides, from_dict, to_dict
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
    """``base`` with the trial's lambdas, ``meta_lr`` and dotted overrides applied (validated)."""
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
    if "meta_lr" in config:
        data["weighting"]["meta_lr"] = float(config["meta_lr"])
    if "seed" in config:
        data["seed"] = int(config["seed"])
    overrides = [f"{k}={v}" for k, v in config.items() if "." in k and not k.startswith("lambda")]
    data = apply_overrides(data, overrides)
    if threads is not None:
        data["runtime"]["threads"] = threads
    return from_dict(TrainConfig, data)


def chosen_params(config: Mapping[str, Any]) -> dict[str, float | str]:
    """What the strategy chose, flat: ``lambda/<task>``, ``meta_lr``, dotted overrides."""
    params: dict[str, float | str] = {f"lambda/{t}": v for t, v in trial_lambdas(config).items()}
    for key, value in config.items():
        if key in ("lambda", "lambdas") or key.startswith("lambda/"):
            continue
        params[key] = value if isinstance(value, (int, float, str)) else str(value)
    return params


def lambdas_key(cfg: TrainConfig) -> dict[str, Any]:
    """What a checkpoint records of the search's choice; a restore that differs is a PBT exploit."""
    return {
        "lambdas": cfg.weighting.initial_lambdas(cfg.tasks.names),
        "meta_lr": cfg.weighting.meta_lr,
        "weighting": cfg.weighting.name,
    }
