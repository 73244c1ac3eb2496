"""What one search gives back (:class:`SearchResult`): its best trial, every trial, its spend and
where it is recorded, built from the trials Tune finished.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

from auxtune.errors import UserError
from auxtune.platform import tracking
from auxtune.platform.config import ExperimentConfig
from auxtune.platform.pareto import ParetoFront, front_of
from auxtune.platform.trials import TrialSummary, pick_best


@dataclass(frozen=True)
class SearchResult:
    strategy: str
    experiment_name: str  # MLflow experiment holding the search
    parent_run_id: str  # MLflow parent run of this search
    best: TrialSummary
    trials: list[TrialSummary]
    trial_epochs: int  # sum of epochs over trials (compute spent)
    wall_s: float
    results_path: str  # Ray Tune experiment directory
    logging_s: float = 0.0  # driver time spent writing to MLflow
    tracking_uri: str = ""
    phases: dict[str, float] = dataclasses.field(default_factory=dict)  # driver seconds by phase
    budget_trial_epochs: int | None = None  # what the search was allowed to spend (None: no cap)
    experiment_id: str = ""  # MLflow's id of the experiment holding the search
    weighting: str = "fixed"  # the weighting its trials trained with
    population: bool = False  # PBT/PB2: lambdas change within a trial (a schedule, not a value)
    front: ParetoFront | None = None  # the trials' Pareto front on search.objectives (if set)

    @property
    def failed(self) -> list[TrialSummary]:
        return [t for t in self.trials if t.status == "ERROR"]

    @property
    def unfinished(self) -> list[TrialSummary]:
        return [t for t in self.trials if t.status not in ("TERMINATED", "ERROR")]


class SearchError(UserError):
    """The search produced no finished trial."""


def collect_result(
    exp: ExperimentConfig,
    strategy: str,
    name: str,
    parent: str,
    trials: list[TrialSummary],
    exp_dir: str,
    start: float,
    ledger: str,
    target: tracking.TrackingTarget,
) -> SearchResult:
    """The search's result: its best trial on ``search.metric`` (with ``search.objectives``, the
    best of its Pareto front), its spend and where it is recorded; no finished trial is an error."""
    best = pick_best(trials, exp.search.metric)
    front = front_of(trials, exp.search.objectives)
    if front is not None:  # of the trials tied on search.metric, one no other trial dominates
        best = max(front.members, key=lambda t: t.metrics[exp.search.metric])
    if best is None:
        errors = "; ".join(f"{t.trial_id}: {t.error}" for t in trials if t.error)
        raise SearchError(
            f"search {name!r} finished no trial ({len(trials)} trials)"
            + (f"; errors: {errors}" if errors else "")
        )
    state = tracking.SearchState(ledger)
    return SearchResult(
        strategy=strategy,
        experiment_name=name,
        parent_run_id=parent,
        best=best,
        trials=trials,
        trial_epochs=sum(t.epochs for t in trials),
        wall_s=time.perf_counter() - start,
        results_path=exp_dir,
        logging_s=float(state.data.get("logging_s", 0.0)),
        tracking_uri=target.uri,
        front=front,
    )
