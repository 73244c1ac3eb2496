"""The comparison's retrains: every (row, seed) trained from scratch in one Tune run, through the
search's trainable, each nested in MLflow under its row's run.

Every row's choice is put in the same two keys (:func:`normalized_choice`), so Tune's grid over
(row, seed) has the same keys for every row and a row never sees another row's settings.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from auxtune.config import to_dict
from auxtune.platform.comparison import Retrain
from auxtune.platform.config import ExperimentConfig
from auxtune.platform.trials import TrialSummary
from auxtune.platform.tuning import RunRecord, TrialRun, experiment_dir, run_trials

RETRAIN = "retrain"


def run_retrains(
    exp: ExperimentConfig,
    choices: Mapping[str, Mapping[str, Any]],
    seeds: Sequence[int],
    *,
    record: RunRecord,
    row_runs: Mapping[str, str],
    on_cluster: bool = False,
    verbose: int = 0,
) -> dict[str, tuple[Retrain, ...]]:
    """Every (row, seed) trained from scratch in one Tune run, through the search's trainable.

    Each retrain's MLflow run is nested under its row's run (``row_runs``).
    """
    from auxtune.trainables.data import absolute_data_config, prepare_trial_data

    exp = dataclasses.replace(exp, data=absolute_data_config(exp.data))
    exp_dir, ledger = experiment_dir(exp, f"{exp.name}-compare-{RETRAIN}", resume=False)
    train_cfg = exp.train_config()
    data = prepare_trial_data(_data_config(train_cfg, choices), storage=exp.tracking.storage)
    run = TrialRun(
        exp=exp,
        train=train_cfg,
        data=data,
        exp_dir=exp_dir,
        ledger=ledger,
        param_space=retrain_space(choices, seeds),
        record=dataclasses.replace(record, parents=dict(row_runs)),
        checkpoints_to_keep=1,
        trial_name=retrain_trial_name,
        on_cluster=on_cluster,
        verbose=verbose,
        progress=None if verbose else RETRAIN,
    )
    found: dict[str, list[Retrain]] = {}
    for trial in run_trials(run):
        retrain = retrain_from_trial(trial)
        found.setdefault(retrain.strategy, []).append(retrain)
    return {s: tuple(sorted(rs, key=lambda r: r.seed)) for s, rs in found.items()}


def _data_config(train_cfg: Any, choices: Mapping[str, Mapping[str, Any]]) -> Any:
    """The config the trials' data is prepared for: any row's weighting that needs
    meta-validation images (``paper`` protocol: cut from every corrupted block) sets it for all,
    so every row is evaluated on the same images."""
    from auxtune.config import from_dict
    from auxtune.trainables.config import trial_train_config

    for config in choices.values():
        cfg = trial_train_config(train_cfg, config)
        if _needs_meta_batch(cfg):
            return cfg
    return from_dict(type(train_cfg), to_dict(train_cfg))


def _needs_meta_batch(cfg: Any) -> bool:
    from auxtune.robust.weighting.registry import weighting_class

    return bool(weighting_class(cfg.weighting.name).needs_meta_batch)


def retrain_space(choices: Mapping[str, Mapping[str, Any]], seeds: Sequence[int]) -> dict[str, Any]:
    """Tune's grid over (row, seed). Every row's choice is put in the same two keys, ``lambda``
    (``{task: value}``) and ``overrides`` (dotted config keys), so the grid's keys are the same
    for every row and a row never sees another row's settings."""
    from ray import tune

    table = {row: normalized_choice(c) for row, c in choices.items()}

    def pick(key: str) -> Any:
        return tune.sample_from(lambda config: table[config["strategy"]][key])

    return {
        "strategy": tune.grid_search(list(table)),
        "seed": tune.grid_search(list(seeds)),
        "lambda": pick("lambda"),
        "overrides": pick("overrides"),
    }


def normalized_choice(choice: Mapping[str, Any]) -> dict[str, Any]:
    """A trial config as ``{"lambda": {...}, "overrides": {...}}`` (what it sets, nothing else).

    >>> normalized_choice({"lambda/rotation": 0.5, "weighting.dwa.temperature": 2.0,
    ...                    "overrides": {"weighting.name": "dwa"}})
    {'lambda': {'rotation': 0.5}, 'overrides': {'weighting.dwa.temperature': 2.0, 'weighting.name': 'dwa'}}
    """
    from auxtune.trainables.config import dotted_overrides, trial_lambdas

    return {"lambda": trial_lambdas(choice), "overrides": dotted_overrides(choice)}


def retrain_trial_name(trial: Any) -> str:
    """``retrain-meta-seed1``: the Tune trial's (and its MLflow run's) name."""
    return f"{RETRAIN}-{trial.config['strategy']}-seed{trial.config['seed']}"


def retrain_from_trial(trial: TrialSummary) -> Retrain:
    """A :class:`Retrain` from the Tune trial that ran it."""
    return Retrain(
        strategy=str(trial.params["strategy"]),
        seed=int(trial.params["seed"]),
        metrics=dict(trial.metrics),
        history=trial.history,
        epochs=trial.epochs,
        seconds=trial.seconds,
        status=trial.status,
        error=trial.error,
        mlflow_run_id=trial.mlflow_run_id,
    )
