"""Exactly-once MLflow metrics: what the ledger holds and MLflow lacks is written, nothing twice.

Every result of a trial is one ledger row with its MLflow ``step`` (the trial's n-th result).
Rows are written to MLflow whole: a ``log_batch`` call holds whole rows only, and MLflow's SQL
store commits a call's metrics in one transaction, so a row's :data:`MARKER` metric at its step
says the whole row is there. After a driver died (its write buffer and queue lost with it),
:func:`write_missing` compares the ledger with MLflow per run and writes exactly the missing rows.

    >>> rows = [{"step": 1, "loss": 2.0, MARKER: 0.5}, {"step": 2, "loss": 1.5, MARKER: 0.5}]
    >>> [row["step"] for row in missing_rows(rows, logged={1})]
    [2]
    >>> row_metrics(rows[1])
    [('loss', 1.5, 2), ('time/iter_s', 0.5, 2)]
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from auxtune.platform.tracking.store import log_batch, trial_runs

#: every row has it (the callback adds it to each result); its steps are the rows MLflow has
MARKER = "time/iter_s"
#: ledger bookkeeping that is not a metric
NOT_METRICS = frozenset({"step", "restored_from", "training_iteration"})
#: MLflow's limit on metrics per ``log_batch`` call
MAX_METRICS_PER_CALL = 1000


def row_metrics(row: Mapping[str, Any]) -> list[tuple[str, float, int]]:
    """``(key, value, step)`` of a ledger row, its :data:`MARKER` last."""
    step = int(row["step"])
    found = [
        (key, float(value), step)
        for key, value in row.items()
        if key not in NOT_METRICS and key != MARKER and isinstance(value, (int, float))
    ]
    if MARKER in row:
        found.append((MARKER, float(row[MARKER]), step))
    return found


def row_batches(rows: Iterable[Mapping[str, Any]]) -> Iterator[list[tuple[str, float, int]]]:
    """Metrics of whole rows, at most :data:`MAX_METRICS_PER_CALL` a batch (a row with more
    than that is split, its marker in its last batch)."""
    batch: list[tuple[str, float, int]] = []
    for row in rows:
        metrics = row_metrics(row)
        if batch and len(batch) + len(metrics) > MAX_METRICS_PER_CALL:
            yield batch
            batch = []
        while len(metrics) > MAX_METRICS_PER_CALL:
            yield metrics[:MAX_METRICS_PER_CALL]
            metrics = metrics[MAX_METRICS_PER_CALL:]
        batch += metrics
    if batch:
        yield batch


def write_rows(
    client: Any,
    run_id: str,
    rows: Iterable[Mapping[str, Any]],
    params: Mapping[str, str] | None = None,
    tags: Mapping[str, str] | None = None,
) -> None:
    """Write ledger rows to ``run_id`` in as few calls as whole rows allow; ``params`` and
    ``tags`` ride along with the first call."""
    params, tags = dict(params or {}), dict(tags or {})
    for steps in row_batches(rows):
        log_batch(client, run_id, params=params, tags=tags, steps=steps)
        params, tags = {}, {}
    if params or tags:  # no rows: the params and tags alone
        log_batch(client, run_id, params=params, tags=tags)


def logged_steps(client: Any, run_id: str) -> set[int]:
    """The steps of ``run_id``'s rows that MLflow has."""
    return {int(m.step) for m in client.get_metric_history(run_id, MARKER)}


def missing_rows(rows: Iterable[Mapping[str, Any]], logged: set[int]) -> list[Mapping[str, Any]]:
    """The rows whose step MLflow does not have, each step once."""
    missing: dict[int, Mapping[str, Any]] = {}
    for row in rows:
        step = int(row["step"])
        if step not in logged:
            missing.setdefault(step, row)
    return list(missing.values())


def write_missing(client: Any, run_id: str, rows: Iterable[Mapping[str, Any]]) -> int:
    """Write the ledger rows ``run_id`` lacks; returns how many."""
    missing = missing_rows(rows, logged_steps(client, run_id))
    write_rows(client, run_id, missing)
    return len(missing)


def write_missing_runs(
    client: Any, runs: Mapping[str, str], rows: Mapping[str, Iterable[Mapping[str, Any]]]
) -> None:
    """:func:`write_missing` for every trial of ``rows`` (trial id -> its ledger rows) that has a
    run in ``runs`` (trial id -> run id)."""
    for trial_id, trial_rows in rows.items():
        if trial_id in runs:
            write_missing(client, runs[trial_id], trial_rows)


def adopt_runs(
    client: Any, experiment_id: str, parents: Iterable[str], known: Mapping[str, str]
) -> dict[str, str]:
    """Trial runs under ``parents`` that the ledger does not know (created just before the
    driver died, before the ledger saved their id): trial id -> run id."""
    found: dict[str, str] = {}
    for parent in dict.fromkeys(parents):
        for trial_id, run_id in trial_runs(client, experiment_id, parent).items():
            if trial_id not in known:
                found.setdefault(trial_id, run_id)
    return found


__all__ = [
    "MARKER",
    "adopt_runs",
    "logged_steps",
    "missing_rows",
    "row_batches",
    "row_metrics",
    "write_missing",
    "write_missing_runs",
    "write_rows",
]
