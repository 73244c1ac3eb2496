"""What a finished Tune run leaves: one :class:`TrialSummary` per trial, and the best of them.

Summaries are read from two records, never from Tune's private objects: Tune's saved experiment
state (``ray.tune.ExperimentAnalysis``: each trial's id, config, status and error) and the
driver's own ledger (:class:`~auxtune.platform.tracking.SearchState`: every result of every trial
in the order the driver saw it, complete across PBT restores, and each trial's MLflow run).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from auxtune.platform import tracking


@dataclass(frozen=True)
class TrialSummary:
    trial_id: str
    params: dict[str, float | str]  # what the strategy chose: lambda/<task>, meta_lr, ...
    metrics: dict[str, float]  # last reported metrics (val_corrupt_accuracy, c15/c19 at the end)
    history: list[dict[str, float]]  # per-epoch metrics (losses, lambda/<task>, accuracies, time)
    epochs: int  # epochs this trial trained (trial-epochs spent)
    seconds: float  # wall time the trial was busy
    status: str  # TERMINATED | ERROR | ...
    error: str | None
    mlflow_run_id: str | None
    node_id: str | None  # Ray node the trial last ran on
    # PBT exploits, in order: (donor trial id, epochs of the donor's model copied)
    exploits: tuple[tuple[str, int], ...] = ()

    @property
    def finished(self) -> bool:
        return self.status == "TERMINATED"


def collect_trials(exp_dir: str, state_path: str | Path) -> list[TrialSummary]:
    """One summary per trial of the Tune run in ``exp_dir`` whose ledger is ``state_path``."""
    from ray.tune import ExperimentAnalysis

    from auxtune.trainables.config import chosen_params

    state = tracking.SearchState(state_path)
    histories, runs = state.histories(), state.runs
    summaries = []
    for trial in ExperimentAnalysis(exp_dir).trials:
        rows = histories.get(trial.trial_id) or _result_json(trial)
        history = [
            {k: float(v) for k, v in row.items() if isinstance(v, (int, float))} for row in rows
        ]
        last = history[-1] if history else {}
        error = tracking.trial_error_message(trial) if trial.status == "ERROR" else None
        node = (trial.last_result or {}).get("node_id")
        summaries.append(
            TrialSummary(
                trial_id=trial.trial_id,
                params=chosen_params(trial.config),
                metrics={k: v for k, v in last.items() if k not in ("step", "training_iteration")},
                history=history,
                epochs=len(history),
                seconds=float(sum(row.get("time/iter_s", 0.0) for row in history)),
                status=str(trial.status),
                error=error,
                mlflow_run_id=runs.get(trial.trial_id),
                node_id=str(node) if node else None,
                exploits=tuple(
                    (str(row["restored_from"]), int(row.get("epoch", 1)) - 1)
                    for row in rows
                    if row.get("restored_from")
                ),
            )
        )
    return summaries


def _result_json(trial: Any) -> list[dict[str, Any]]:
    """Fallback history: the trial's ``result.json`` (incomplete after PBT restores)."""
    path = Path(trial.local_path or trial.path or "", "result.json")
    if not path.is_file():
        return []
    rows: list[dict[str, Any]] = []
    for line in path.read_text().splitlines():
        if line.strip():
            result = json.loads(line)
            row: dict[str, Any] = {"step": len(rows) + 1, **tracking.numeric_metrics(result)}
            row["time/iter_s"] = float(result.get("time_this_iter_s") or 0.0)
            row["training_iteration"] = int(result.get("training_iteration") or 0)
            rows.append(row)
    return rows


def pick_best(trials: list[TrialSummary], metric: str) -> TrialSummary | None:
    """Highest final ``metric`` among trials that trained every epoch (else among all that have it)."""
    scored = [t for t in trials if t.status != "ERROR" and _finite(t.metrics.get(metric))]
    if not scored:
        return None
    longest = max(t.epochs for t in scored)
    full = [t for t in scored if "c15_accuracy" in t.metrics or t.epochs == longest]
    return max(full or scored, key=lambda t: t.metrics[metric])


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)
