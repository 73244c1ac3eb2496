"""The experiment file: a training run plus how to search over it and where to record it.

An experiment YAML is flat: the sections of :class:`~auxtune.robust.config.TrainConfig`
(``seed``, ``data``, ``model``, ``optim``, ``tasks``, ``weighting``, ``runtime``) beside ``name``,
``search``, ``tracking`` and ``compare``. Overrides use the same dotted names (``search.num_trials=4``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from auxtune.config import (
    ConfigError,
    apply_overrides,
    check,
    flatten,
    from_dict,
    load_yaml,
    set_dotted,
    to_dict,
)
from auxtune.robust.config import OOD_DETECTOR_TASKS, TrainConfig


def strategy_names() -> tuple[str, ...]:
    """The strategies ``search`` and ``compare`` accept: the lambda searches and every weighting."""
    from auxtune.search_spaces import strategy_names as names

    return names()


#: A name becomes one directory name (Tune results, checkpoints, reports) and part of MLflow
#: experiment names: ASCII letters, digits, ``.``, ``_`` and ``-``, not starting with ``.`` or
#: ``-`` (no hidden files, no option look-alikes), at most 100 characters (room for suffixes).
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def check_name(name: str, what: str = "name") -> str:
    """Return ``name`` when it is one safe path component, else raise :class:`ConfigError`.

    ``what`` is how the user gave it (``name``, ``--name``), for the message.

    >>> check_name("demo-pbt_2")
    'demo-pbt_2'
    >>> check_name("../../x", "--name")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    auxtune.config.ConfigError: --name = '../../x' is not allowed: a name becomes a directory name...
    """
    if not SAFE_NAME.fullmatch(name):
        raise ConfigError(
            f"{what} = {name!r} is not allowed: a name becomes a directory name, so use 1-100 "
            "ASCII letters, digits, '.', '_' or '-', starting with a letter or digit "
            "(no '/', '\\', spaces or control characters)"
        )
    return name


@dataclass(frozen=True)
class SearchConfig:
    """What a search may try and spend. Budgets are in trial-epochs (one trial training one epoch)."""

    num_trials: int = 4
    lambda_low: float = 0.0  # lambda range searched by random/optuna/pbt/pb2
    lambda_high: float = 1.0
    grid: tuple[float, ...] = (0.0, 0.5, 1.0)  # per-task lambda values of the `fixed` grid
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
    # metrics maximised together (e.g. [val_accuracy, val_corrupt_accuracy, val_adv_accuracy]):
    # `optuna` searches them as a multi-objective study, every search reports their Pareto front;
    # `metric` must be one of them (it picks the front member a comparison retrains)
    objectives: tuple[str, ...] = ()

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
        check(
            len(self.objectives) != 1 and len(set(self.objectives)) == len(self.objectives),
            f"search.objectives = {list(self.objectives)} must list two or more different "
            "metrics (or none: one objective is search.metric)",
        )


@dataclass(frozen=True)
class TrackingConfig:
    """Where results and MLflow records go."""

    workdir: str = "runs"  # Ray Tune results, reports and the default MLflow store live here
    tracking_uri: str | None = None  # default sqlite:///<workdir>/mlflow.db; or http://host:port
    storage: str | None = None  # Ray Tune storage_path (shared path or s3://) for clusters


#: the control row of every comparison: the same network trained with no auxiliary task at all
BASELINE = "baseline"
BASELINE_OVERRIDES: dict[str, Any] = {
    "tasks.names": [],
    "weighting.lambdas": {},
    "weighting.name": "fixed",
}


@dataclass(frozen=True)
class CompareConfig:
    """What ``auxtune compare`` runs: rows retrained with the same seeds, compared with a reference.

    A row is a search strategy (searched on ``budget`` trial-epochs, its best configuration
    retrained), ``baseline`` (no auxiliary tasks: the control, always present) or a name of
    ``variants`` (a fixed configuration, retrained as it is). Every row is compared with
    ``reference`` seed by seed; ``metric`` ranks the rows and ``metrics`` are the table's columns.
    """

    # the rows; the presets add the weightings they compare (meta, auto_lambda, ...)
    strategies: tuple[str, ...] = (BASELINE, "fixed", "optuna", "pbt")
    budget: int = 0  # trial-epochs each search may spend; 0 = search.num_trials * optim.epochs
    seeds: int = 3  # retrains of every row, seeds seed .. seed + seeds - 1, shared by all rows
    # name -> {dotted config key: value}: configurations retrained as they are, without a search
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)
    reference: str = BASELINE  # the row every other row is compared with, paired by seed
    metric: str = "c15_accuracy"  # what ranks the rows (the headline)
    metrics: tuple[str, ...] = ("clean_test_accuracy", "c15_accuracy", "c19_accuracy")

    def __post_init__(self) -> None:
        rows = (*strategy_names(), BASELINE, *self.variants)
        for name in self.strategies:
            check(
                name in rows,
                f"compare.strategies: unknown strategy {name!r}; valid: {', '.join(rows)}",
            )
        check(len(self.strategies) > 0, "compare.strategies must name at least one strategy")
        check(
            len(set(self.strategies)) == len(self.strategies),
            f"compare.strategies has duplicates: {list(self.strategies)}",
        )
        for name in self.variants:
            check(
                name not in strategy_names(),
                f"compare.variants.{name}: {name!r} is a search strategy; name the variant otherwise",
            )
        check(
            self.reference in (BASELINE, *self.variants),
            f"compare.reference = {self.reference!r} must be baseline or a name of compare.variants",
        )
        check(self.budget >= 0, f"compare.budget = {self.budget} must be >= 0 (0 = auto)")
        check(self.seeds >= 1, f"compare.seeds = {self.seeds} must be >= 1")
        check(len(self.metrics) > 0, "compare.metrics must name at least one metric")

    def rows(self) -> tuple[str, ...]:
        """The rows in order: the reference first (added when not listed), then the others."""
        return (self.reference, *(s for s in self.strategies if s != self.reference))

    def overrides(self, row: str) -> dict[str, Any]:
        """The config overrides of a row that is not searched (baseline or a variant)."""
        if row in self.variants:  # nested YAML sections and dotted keys alike
            return flatten(self.variants[row])
        return dict(BASELINE_OVERRIDES) if row == BASELINE else {}


@dataclass(frozen=True)
class ExperimentConfig(TrainConfig):
    """A training run (the :class:`TrainConfig` sections) plus its name and how to search over it,
    record it and compare strategies on it."""

    name: str = "auxtune"
    search: SearchConfig = field(default_factory=SearchConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    compare: CompareConfig = field(default_factory=CompareConfig)

    def __post_init__(self) -> None:
        check_name(self.name)
        super().__post_init__()  # cross-section checks (lambdas vs tasks)
        rows = {row: self.row_config(row) for row in (BASELINE, *self.compare.variants)}
        for row, cfg in rows.items():  # a variant's bad key or value failed above, named
            self._check_shared_data(row, cfg)
        self._check_metrics(tuple(rows.values()))

    def _check_shared_data(self, row: str, cfg: TrainConfig) -> None:
        """A comparison prepares its data once (noisy labels, held-out classes, OOD sets): a
        variant may change the correction, the tasks or the detector, not the data itself."""
        from auxtune.data.experiment import data_key

        def plain(c: TrainConfig) -> dict[str, Any]:
            return flatten({k: to_dict(v) for k, v in data_key(c).items()})

        mine, theirs = plain(self), plain(cfg)
        changed = [f"{k} {mine[k]} -> {theirs[k]}" for k in mine if mine[k] != theirs[k]]
        check(
            not changed,
            f"compare.variants.{row} changes the data every row shares ({'; '.join(changed)}): "
            "a comparison trains all rows on one noisy/held-out split, so set it in the "
            "experiment and run one comparison per setting",
        )

    def _check_metrics(self, rows: tuple[TrainConfig, ...] = ()) -> None:
        from auxtune.trainables.metrics import epoch_metrics, higher_is_better, reported_metrics

        valid = epoch_metrics(self)
        check(
            self.search.metric in valid,
            f"search.metric = {self.search.metric!r} is not reported every epoch by these trials; "
            f"choose one of {', '.join(valid)}",
        )
        for name in self.search.objectives:
            check(
                name in valid,
                f"search.objectives: {name!r} is not reported every epoch by these trials; "
                f"choose from {', '.join(valid)}",
            )
        check(
            not self.search.objectives or self.search.metric in self.search.objectives,
            f"search.metric = {self.search.metric!r} must be one of search.objectives = "
            f"{list(self.search.objectives)} (it picks the member of their front that is retrained)",
        )
        check(
            higher_is_better(self.compare.metric),
            f"compare.metric = {self.compare.metric!r} is lower-is-better and cannot rank the "
            "rows; rank by a higher-is-better metric (e.g. ood_auroc) and keep it as a column "
            "of compare.metrics",
        )
        ranking = reported_metrics(self)  # the experiment's own trials (what searches train)
        columns = dict(ranking)
        for cfg in rows:  # a variant's own heads add detectors: columns (n/a in other rows)
            columns.update(reported_metrics(cfg))
        for key, names, reported in (
            ("metric", (self.compare.metric,), ranking),
            ("metrics", self.compare.metrics, columns),
        ):
            for name in names:
                check(
                    name in reported,
                    f"compare.{key}: {name!r} is not a metric these trials report; "
                    f"choose from {', '.join(reported)}",
                )

    def row_config(self, row: str) -> TrainConfig:
        """The training config of a comparison row that is not searched (baseline, a variant)."""
        data = to_dict(self.train_config())
        overrides = self.compare.overrides(row)
        if row == BASELINE and OOD_DETECTOR_TASKS.get(self.ood.detector):
            overrides["ood.detector"] = "msp"  # the control has no head to score with
        for key, value in overrides.items():
            set_dotted(data, key, value)
        try:
            return from_dict(TrainConfig, data)
        except ConfigError as err:
            raise ConfigError(f"compare.variants.{row}: {err}") from None

    def train_config(self) -> TrainConfig:
        """The training-run part of the experiment."""
        return TrainConfig(**{f.name: getattr(self, f.name) for f in fields(TrainConfig)})

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)


def load_experiment(path: str | Path | None, overrides: Sequence[str] = ()) -> ExperimentConfig:
    """Experiment from a YAML file (or the defaults when ``path`` is None) plus ``key=value`` overrides."""
    data = load_yaml(path) if path is not None else {}
    return from_dict(ExperimentConfig, apply_overrides(data, overrides))
