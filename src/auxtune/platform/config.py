"""The experiment file: a training run plus how to search over it and where to record it.

An experiment YAML is flat: the sections of :class:`~auxtune.robust.config.TrainConfig`
(``seed``, ``data``, ``model``, ``optim``, ``tasks``, ``weighting``, ``runtime``) beside ``name``,
``search``, ``tracking`` and ``compare``. Overrides use the same dotted names (``search.num_trials=4``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from auxtune.config import apply_overrides, check, from_dict, load_yaml, to_dict
from auxtune.robust.config import TrainConfig

STRATEGIES = ("fixed", "random", "optuna", "pbt", "pb2", "meta")


@dataclass(frozen=True)
class SearchConfig:
    """What a search may try and spend. Budgets are in trial-epochs (one trial training one epoch)."""

    num_trials: int = 4
    lambda_low: float = 0.0  # lambda range searched by random/optuna/pbt/pb2
    lambda_high: float = 1.0
    grid: tuple[float, ...] = (0.0, 0.5, 1.0)  # per-task lambda values of the `fixed` grid
    meta_lr_low: float = 1e-3  # range of beta searched by the `meta` strategy (log-uniform)
    meta_lr_high: float = 1e-1
    perturbation_interval: int = 1  # epochs between PBT/PB2 exploit/explore decisions
    # pbt/pb2: decide only when every trial reached the interval (reproducible, and no epoch is
    # trained twice, so budgets stay exact; a population larger than the concurrent trials is
    # paused and resumed at each interval). False: decide as each trial arrives, exploiting
    # whichever checkpoint the donor last wrote (a trial may redo or skip epochs)
    pbt_synch: bool = True
    grace_period: int = 1  # epochs before ASHA may stop a trial
    reduction_factor: int = 2  # ASHA keeps 1/reduction_factor of trials at each rung
    # what searches maximise (leak-free: the val split under the 4 extra corruptions)
    metric: str = "val_corrupt_accuracy"
    max_concurrent: int = 0  # trials at once; 0 = as many as the resources allow
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0  # fractions share a GPU, e.g. 0.25
    # retries of a trial after a lost node or a dead worker; each resumes from its last epoch's
    # checkpoint (a diverged trial is never retried: it ends failed with its reason)
    max_failures: int = 2
    optuna_storage: str | None = None  # optuna: RDB URL keeping the study (e.g. sqlite:///study.db)

    def __post_init__(self) -> None:
        check(self.num_trials >= 1, f"search.num_trials = {self.num_trials} must be >= 1")
        check(self.lambda_low >= 0, f"search.lambda_low = {self.lambda_low} must be >= 0")
        check(
            self.lambda_high > self.lambda_low,
            f"search.lambda_high = {self.lambda_high} must be > search.lambda_low = {self.lambda_low}"
            " (the lambda range is empty or inverted)",
        )
        check(len(self.grid) > 0, "search.grid must list at least one lambda value")
        check(
            all(v >= 0 for v in self.grid), f"search.grid = {list(self.grid)} has a negative lambda"
        )
        check(
            0 < self.meta_lr_low < self.meta_lr_high,
            f"search.meta_lr_low/high = {self.meta_lr_low}/{self.meta_lr_high} must satisfy 0 < low < high",
        )
        check(self.perturbation_interval >= 1, "search.perturbation_interval must be >= 1 epoch")
        check(self.grace_period >= 1, "search.grace_period must be >= 1 epoch")
        check(self.reduction_factor >= 2, "search.reduction_factor must be >= 2")
        check(self.max_concurrent >= 0, "search.max_concurrent must be >= 0")
        check(
            self.optuna_storage is None or "://" in self.optuna_storage,
            f"search.optuna_storage = {self.optuna_storage!r} must be a database URL such as "
            "sqlite:///ABS/PATH/study.db (or null for an in-memory study)",
        )
        check(self.cpus_per_trial > 0, f"search.cpus_per_trial = {self.cpus_per_trial} must be > 0")
        check(
            self.gpus_per_trial >= 0, f"search.gpus_per_trial = {self.gpus_per_trial} must be >= 0"
        )
        check(self.max_failures >= 0, f"search.max_failures = {self.max_failures} must be >= 0")


@dataclass(frozen=True)
class TrackingConfig:
    """Where results and MLflow records go."""

    workdir: str = "runs"  # Ray Tune results, reports and the default MLflow store live here
    tracking_uri: str | None = None  # default sqlite:///<workdir>/mlflow.db; or http://host:port
    storage: str | None = None  # Ray Tune storage_path (shared path or s3://) for clusters


@dataclass(frozen=True)
class CompareConfig:
    """What ``auxtune compare`` runs: each strategy's search on the same budget, then seeded retrains."""

    strategies: tuple[str, ...] = ("fixed", "meta", "optuna", "pbt")
    budget: int = 0  # trial-epochs each search may spend; 0 = search.num_trials * optim.epochs
    seeds: int = 3  # retrains of each strategy's best configuration (mean +- std over these)

    def __post_init__(self) -> None:
        for name in self.strategies:
            check(
                name in STRATEGIES,
                f"compare.strategies: unknown strategy {name!r}; valid strategies: {', '.join(STRATEGIES)}",
            )
        check(len(self.strategies) > 0, "compare.strategies must name at least one strategy")
        check(
            len(set(self.strategies)) == len(self.strategies),
            f"compare.strategies has duplicates: {list(self.strategies)}",
        )
        check(self.budget >= 0, f"compare.budget = {self.budget} must be >= 0 (0 = auto)")
        check(self.seeds >= 1, f"compare.seeds = {self.seeds} must be >= 1")


@dataclass(frozen=True)
class ExperimentConfig(TrainConfig):
    """A training run (the :class:`TrainConfig` sections) plus its name and how to search over it,
    record it and compare strategies on it."""

    name: str = "auxtune"
    search: SearchConfig = field(default_factory=SearchConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    compare: CompareConfig = field(default_factory=CompareConfig)

    def __post_init__(self) -> None:
        check(bool(self.name.strip()), "name must not be empty")
        super().__post_init__()  # cross-section checks (lambdas vs tasks)

    def train_config(self) -> TrainConfig:
        """The training-run part of the experiment."""
        return TrainConfig(**{f.name: getattr(self, f.name) for f in fields(TrainConfig)})

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)


def load_experiment(path: str | Path | None, overrides: Sequence[str] = ()) -> ExperimentConfig:
    """Experiment from a YAML file (or the defaults when ``path`` is None) plus ``key=value`` overrides."""
    data = load_yaml(path) if path is not None else {}
    return from_dict(ExperimentConfig, apply_overrides(data, overrides))
