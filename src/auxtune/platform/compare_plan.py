"""What a comparison runs: its rows, budget and seeds, and the configuration each row retrains.

A fixed row (``baseline``, a ``compare.variants`` entry) retrains its overrides. A searched
strategy retrains its best trial's configuration (lambdas and any searched hyperparameter, with the
strategy's weighting: ``meta`` learns its lambdas online again); a population (PBT, PB2) its best
trial's lambda *schedule* as it was trained, exploits included (:func:`lambda_schedule`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from auxtune.config import ConfigError
from auxtune.platform.config import ExperimentConfig, strategy_names
from auxtune.platform.search_result import SearchResult
from auxtune.platform.trials import TrialSummary

SCHEDULE_KEY = "weighting.schedule.per_epoch"  # the schedule weighting's lambdas, one per epoch


@dataclass(frozen=True)
class ComparePlan:
    rows: tuple[str, ...]  # the reference first
    budget: int  # trial-epochs per searched strategy
    seeds: tuple[int, ...]

    @property
    def searched(self) -> tuple[str, ...]:
        return tuple(r for r in self.rows if r in strategy_names())


def plan_compare(exp: ExperimentConfig) -> ComparePlan:
    """Rows, budget and seeds from ``exp.compare``; fails when no trial fits the budget."""
    epochs = exp.optim.epochs
    budget = exp.compare.budget or exp.search.num_trials * epochs
    if budget < epochs:
        raise ConfigError(
            f"compare.budget = {budget} trial-epochs is less than one trial (optim.epochs = {epochs}); "
            f"give at least {epochs}, e.g. {exp.search.num_trials * epochs} for "
            f"search.num_trials = {exp.search.num_trials}"
        )
    seeds = tuple(exp.seed + i for i in range(exp.compare.seeds))
    return ComparePlan(exp.compare.rows(), budget, seeds)


def row_choice(
    exp: ExperimentConfig, row: str, search: SearchResult | None
) -> tuple[dict[str, Any], str]:
    """What ``row`` retrains and how, in words: a fixed row its overrides, a searched one
    :func:`retrain_choice` of its search."""
    if search is None:
        overrides = exp.compare.overrides(row)
        shown = ", ".join(f"{k}={v}" for k, v in overrides.items()) or "the experiment as it is"
        return {"overrides": overrides}, f"fixed configuration ({shown})"
    return retrain_choice(search, exp.tasks.names, exp.optim.epochs)


def retrain_choice(
    search: SearchResult, tasks: Sequence[str], epochs: int
) -> tuple[dict[str, Any], str]:
    """The trial config every seed of a searched strategy retrains, and what it is in words."""
    best = search.best
    if search.population:
        schedule = lambda_schedule(best, search.trials, tasks, epochs)
        overrides = {"weighting.name": "schedule", SCHEDULE_KEY: schedule}
        how = (
            f"lambda schedule of best trial {best.trial_id} replayed epoch by epoch "
            f"({len(best.exploits)} exploit(s) in its lineage)"
        )
        return {"overrides": overrides}, how
    config: dict[str, Any] = {k: v for k, v in best.params.items() if k != "seed"}
    config["overrides"] = {"weighting.name": search.weighting}
    return config, f"best trial {best.trial_id} ({search.weighting} weighting)"


def lambda_schedule(
    trial: TrialSummary, trials: Sequence[TrialSummary], tasks: Sequence[str], epochs: int
) -> list[dict[str, float]]:
    """The lambdas each of ``epochs`` epochs of ``trial``'s final model was trained with.

    A PBT exploit copies a donor's model after ``k`` epochs: the first ``k`` epochs of the final
    model are the donor's (recursively, its own lineage up to then), the rest this trial's.
    """
    by_id = {t.trial_id: t for t in trials}

    def lineage(t: TrialSummary, upto: int) -> dict[int, dict[str, float]]:
        rows: dict[int, dict[str, float]] = {}
        for position, row in enumerate(t.history):
            epoch = int(row.get("epoch", position + 1))
            if epoch > upto:
                continue
            donor = _donor_at(t, position)
            if donor is not None and donor[0] in by_id:  # epochs before this one came from it
                rows = {e: v for e, v in lineage(by_id[donor[0]], donor[1]).items()}
            rows[epoch] = {task: float(row[f"lambda/{task}"]) for task in tasks}
        return rows

    found = lineage(trial, epochs)
    missing = [e for e in range(1, epochs + 1) if e not in found]
    if missing:
        raise ValueError(f"trial {trial.trial_id}: no lambdas recorded for epochs {missing}")
    return [found[e] for e in range(1, epochs + 1)]


def _donor_at(trial: TrialSummary, position: int) -> tuple[str, int] | None:
    """The exploit recorded at history row ``position`` of ``trial``, if any."""
    row = trial.history[position]
    if not row.get("pbt/exploit"):
        return None
    before = sum(1 for r in trial.history[:position] if r.get("pbt/exploit"))
    return trial.exploits[before] if before < len(trial.exploits) else None
