"""A search's records outside Tune: its MLflow parent run, opened with the experiment (the same
run again on ``--resume``) and closed with the best trial's metrics, and the ledger's note of
whether every trial ended.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from auxtune.platform import invocation, tracking
from auxtune.platform.config import ExperimentConfig
from auxtune.platform.search_result import SearchResult
from auxtune.platform.tracking.lifecycle import open_run
from auxtune.search_spaces import SearchPlan


@dataclass(frozen=True)
class Nesting:
    """Where a search records itself when it is part of something larger (a comparison):
    its parent run goes into ``experiment_id`` under ``parent_run_id``."""

    experiment_id: str
    parent_run_id: str


def open_parent_run(
    client: Any,
    experiment_id: str,
    exp: ExperimentConfig,
    strategy: str,
    name: str,
    plan: SearchPlan,
    state: tracking.SearchState,
    nesting: Nesting | None,
    exp_dir: str,
) -> AbstractContextManager[str]:
    """The search's parent run for the block (on resume the same one, RUNNING again); ended
    FAILED or KILLED with its trials' runs when the block fails."""
    run_name = f"{strategy} search" if nesting else name
    if state.data.get("parent_run_id"):  # resume: the same parent run
        run_id = str(state.data["parent_run_id"])
        return open_run(client, experiment_id, run_name=run_name, tags={}, run_id=run_id)
    params = {
        "strategy": strategy,
        "search_name": name,
        "trials": str(plan.trials),
        "seed": str(exp.seed),
    }
    params.update(tracking.as_params(exp.to_dict(), "config."))
    params.update({f"version.{k}": v for k, v in tracking.library_versions().items()})
    tags = {
        "auxtune.kind": "search",
        "auxtune.strategy": strategy,
        "ray.experiment_dir": exp_dir,
        **invocation.source_tags(),
    }
    if nesting is not None:
        tags[tracking.PARENT_TAG] = nesting.parent_run_id
    return open_run(client, experiment_id, run_name=run_name, tags=tags, params=params)


def mark_complete(ledger: str, result: SearchResult) -> None:
    """Record in the ledger whether every trial ended (``--resume`` prefers unfinished searches)."""
    state = tracking.SearchState(ledger)
    state.data["complete"] = not result.unfinished
    state.save()


def close_parent_run(client: Any, parent: str, result: SearchResult, metric: str) -> None:
    """The best trial's metrics (``best/...``) and the spend on the parent run, then its status."""
    metrics: dict[str, float] = {
        f"best/{metric}": result.best.metrics[metric],
        "trial_epochs": float(result.trial_epochs),
        "wall_s": result.wall_s,
        "trials": float(len(result.trials)),
        "failed_trials": float(len(result.failed)),
    }
    if result.budget_trial_epochs is not None:
        metrics["budget_trial_epochs"] = float(result.budget_trial_epochs)
    for key, value in result.best.metrics.items():
        if not key.startswith(("time/", "lr", "images_per_s")):
            metrics[f"best/{key}"] = value
    for key, param in result.best.params.items():
        if isinstance(param, (int, float)):
            metrics[f"best/{key}"] = float(param)
    tags = {"best.trial_id": result.best.trial_id, "best.run_id": result.best.mlflow_run_id or ""}
    if result.front is not None:  # the front's members, best on the first objective first
        tags["pareto.objectives"] = ",".join(result.front.objectives)
        tags["pareto.trial_ids"] = ",".join(t.trial_id for t in result.front.members)
        metrics["pareto_front_size"] = float(len(result.front.members))
    tracking.log_batch(client, parent, metrics=metrics, tags=tags)
    client.set_terminated(parent, "KILLED" if result.unfinished else "FINISHED")
