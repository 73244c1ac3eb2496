"""What ``auxtune compare`` measured, as plain data: the report, the figures and MLflow read this.

A :class:`Comparison` holds one :class:`Row` per strategy (searched, then retrained) or fixed
configuration (the baseline, variants: only retrained). Every row is retrained with the same
seeds, so each row's accuracy at seed k can be compared with the reference row's at seed k
(:mod:`auxtune.platform.stats`).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from auxtune.platform import stats

if TYPE_CHECKING:
    from auxtune.platform.search_result import SearchResult


@dataclass(frozen=True)
class Retrain:
    """One seeded retrain of a row's configuration, with the metrics of its last epoch."""

    strategy: str
    seed: int
    metrics: dict[str, float]  # clean_test_accuracy, c15_accuracy, c/<corruption>, ...
    history: list[dict[str, float]]  # per-epoch metrics (lambda/<task> for the trajectories)
    epochs: int
    seconds: float
    status: str
    error: str | None = None
    mlflow_run_id: str | None = None

    def value(self, metric: str) -> float | None:
        value = self.metrics.get(metric)
        return float(value) if value is not None and math.isfinite(value) else None


@dataclass(frozen=True)
class Row:
    """A strategy's search (None for a fixed configuration), what was retrained, the retrains."""

    strategy: str
    search: SearchResult | None
    retrained: dict[str, Any]  # the trial config every seed retrained (lambda, overrides, ...)
    how: str  # what was retrained, in words
    retrains: tuple[Retrain, ...]
    budget_trial_epochs: int  # what its search could spend (0: not searched)
    mlflow_run_id: str | None = None  # the row's run under the comparison run

    def by_seed(self, metric: str) -> dict[int, float]:
        """``metric`` of every retrain that reported it, by seed."""
        found = {r.seed: r.value(metric) for r in self.retrains}
        return {seed: value for seed, value in found.items() if value is not None}

    def estimate(self, metric: str) -> stats.Estimate | None:
        return stats.estimate(list(self.by_seed(metric).values()))

    def mean(self, metric: str) -> float | None:
        found = self.estimate(metric)
        return None if found is None else found.mean

    @property
    def trial_epochs(self) -> int:
        return self.search.trial_epochs if self.search else 0

    @property
    def trials(self) -> int:
        return len(self.search.trials) if self.search else 0

    @property
    def trial_seconds(self) -> float:
        """Seconds the search's trials were busy, summed (compute spent, unlike wall time)."""
        return float(sum(t.seconds for t in self.search.trials)) if self.search else 0.0

    def step_seconds(self, batch_size: int) -> float | None:
        """Median seconds per training step of this row's retrains (same steps for every row)."""
        rates = [
            row["images_per_s"]
            for retrain in self.retrains
            for row in retrain.history
            if row.get("images_per_s", 0) > 0
        ]
        return batch_size / float(np.median(rates)) if rates else None

    def corruption_names(self) -> list[str]:
        return sorted({k[2:] for r in self.retrains for k in r.metrics if k.startswith("c/")})


@dataclass(frozen=True)
class Comparison:
    """Everything ``auxtune compare`` measured; the report is drawn from this alone."""

    name: str
    created: str  # ISO 8601, UTC
    budget_trial_epochs: int
    seeds: tuple[int, ...]
    rows: tuple[Row, ...]
    reference: str  # the row every other is compared with, paired by seed
    metric: str  # what ranks the rows (higher is better: the config refuses others)
    metrics: tuple[str, ...]  # the table's columns (accuracies, OOD AUROC/FPR95, ...)
    config: dict[str, Any]  # the resolved experiment (reproduces the comparison)
    command: str  # the command line that ran it ("" when called from Python)
    versions: dict[str, str]
    tracking_uri: str
    experiment_name: str
    mlflow_run_id: str | None
    wall_s: float  # the whole comparison
    retrain_wall_s: float
    experiment_id: str | None = None  # MLflow's id of ``experiment_name``

    @property
    def protocol(self) -> str:
        """Where meta-validation images came from (``holdout`` unless a weighting section says
        ``paper``: every row is then evaluated without those images)."""
        sections = self.config["weighting"].values()
        found = {s.get("protocol") for s in sections if isinstance(s, Mapping)}
        return "paper" if "paper" in found else "holdout"

    @property
    def dataset(self) -> str:
        return str(self.config["data"]["dataset"])

    def row(self, name: str) -> Row:
        return next(r for r in self.rows if r.strategy == name)

    def versus_reference(self, row: Row, metric: str) -> stats.PairedDifference | None:
        """``row - reference`` on ``metric``, paired by seed (None for the reference itself)."""
        if row.strategy == self.reference:
            return None
        return oriented(
            stats.paired_difference(row.by_seed(metric), self.row(self.reference).by_seed(metric)),
            metric,
        )

    def ranking(self) -> list[Row]:
        """Rows by mean ``metric``, best first (rows without it last)."""
        return sorted(self.rows, key=lambda r: -(r.mean(self.metric) or -math.inf))

    def leader(self) -> tuple[Row, Row | None, stats.PairedDifference | None] | None:
        """(best row, runner-up, best - runner-up paired by seed) by mean ``metric``."""
        ranked = [r for r in self.ranking() if r.mean(self.metric) is not None]
        if not ranked:
            return None
        if len(ranked) == 1:
            return ranked[0], None, None
        first, second = ranked[:2]
        diff = stats.paired_difference(first.by_seed(self.metric), second.by_seed(self.metric))
        return first, second, diff

    def severities(self, metric_prefix: str = "c15") -> dict[str, dict[int, stats.Estimate]]:
        """Each row's accuracy over the 15 standard corruptions at severity 1..5 (with intervals)."""
        table: dict[str, dict[int, stats.Estimate]] = {}
        for row in self.rows:
            by_severity = {}
            for severity in range(1, 6):
                found = row.estimate(f"{metric_prefix}_s{severity}_accuracy")
                if found is not None:
                    by_severity[severity] = found
            table[row.strategy] = by_severity
        return table


def oriented(diff: stats.PairedDifference | None, metric: str) -> stats.PairedDifference | None:
    """``diff`` with a verdict that says which row is *better* on ``metric``: for a lower-is-better
    metric (FPR at 95 % TPR) an interval below zero is the improvement.

    >>> d = stats.paired_difference({0: 0.30, 1: 0.32, 2: 0.31}, {0: 0.40, 1: 0.41, 2: 0.42})
    >>> d.verdict, oriented(d, "ood_fpr95").verdict, oriented(d, "ood_auroc").verdict
    ('worse', 'better', 'worse')
    """
    from auxtune.trainables.metrics import higher_is_better

    if diff is None or diff.ci95 is None or higher_is_better(metric):
        return diff
    low, high = diff.ci95
    return dataclasses.replace(diff, verdict=stats.verdict((-high, -low)))


def describe_choice(config: Mapping[str, Any]) -> str:
    """What a row retrained, short, for tables: ``rotation=0.31 blur_reconstruction=0.12
    meta_lr=0.02``; a replayed schedule as its length and last epoch's lambdas.

    >>> describe_choice({"lambda": {"rotation": 0.5}, "overrides": {"weighting.name": "dwa"}})
    'rotation=0.5 (dwa)'
    """
    from auxtune.trainables.config import trial_lambdas

    overrides = dict(config.get("overrides") or {})
    weighting = overrides.pop("weighting.name", None)
    parts = [f"{task}={value:.3g}" for task, value in trial_lambdas(config).items()]
    schedule = overrides.pop("weighting.schedule.per_epoch", None)
    if isinstance(schedule, list) and schedule:
        last = " ".join(f"{t}={v:.3g}" for t, v in schedule[-1].items())
        parts.append(f"schedule of {len(schedule)} epochs, last {last}")
    scalars = {
        k: v
        for k, v in config.items()
        if k not in ("lambda", "lambdas", "overrides", "strategy", "seed")
        and not k.startswith("lambda/")
    }
    for key, value in {**scalars, **overrides}.items():
        shown = f"{value:.3g}" if isinstance(value, float) else json.dumps(value)
        parts.append(f"{key}={shown.strip(chr(34))}")
    text = " ".join(parts) or "-"
    return f"{text} ({weighting})" if weighting and weighting != "fixed" else text


def mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    """(mean, sample std); std is None with fewer than two values."""
    if not values:
        return None, None
    std = float(np.std(values, ddof=1)) if len(values) > 1 else None
    return float(np.mean(values)), std
