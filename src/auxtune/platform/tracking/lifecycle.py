"""Store and runs that concurrent drivers and failures cannot leave half made.

* :func:`prepare_store`: a fresh SQLite store gets MLflow's schema from one process at a time
  (two drivers creating it at once crash with ``duplicate column name: step``: both run the
  migrations), under a file lock beside the database.
* :func:`open_run`: a run that is closed FAILED (KILLED when stopped) together with every run
  nested under it that is still RUNNING, when anything fails after its creation (its own params
  included), so no failure path leaves it RUNNING.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from typing import Any

from auxtune.platform.locks import file_lock
from auxtune.platform.tracking.store import (
    PARENT_TAG,
    TrackingTarget,
    client,
    log_batch,
    sqlite_path,
)


def prepare_store(target: TrackingTarget) -> None:
    """Create the SQLite store's schema now, one process at a time (no-op for a server)."""
    database = sqlite_path(target.uri)
    if database is None:
        return
    with file_lock(database.with_name(f".{database.name}.lock")):
        # the first query builds the store: MLflow creates (or checks) the schema here
        client(target.uri).search_experiments(max_results=1)


@contextmanager
def open_run(
    mlflow_client: Any,
    experiment_id: str,
    *,
    run_name: str,
    tags: Mapping[str, str],
    params: Mapping[str, str] | None = None,
    run_id: str | None = None,
) -> Iterator[str]:
    """A new MLflow run (or ``run_id`` again, RUNNING) for the block; when the block raises, it
    and its RUNNING descendants end FAILED (KILLED on Ctrl-C or SIGTERM) before the error
    propagates.

    The run's params are written inside the guard: a store that fails right after creating the
    run cannot leave it RUNNING either.
    """
    resumed = run_id is not None
    if run_id is None:
        run = mlflow_client.create_run(experiment_id, tags=dict(tags), run_name=run_name)
        run_id = str(run.info.run_id)
    try:
        if resumed:
            mlflow_client.update_run(run_id, status="RUNNING")
        if params:
            log_batch(mlflow_client, run_id, params=params)
        yield run_id
    except BaseException as err:
        # Ctrl-C, or SIGTERM (Ray's driver handler turns it into SystemExit): stopped, not failed
        status = "KILLED" if isinstance(err, (KeyboardInterrupt, SystemExit)) else "FAILED"
        # the store itself may be what failed: the original error is the one to report
        with suppress(Exception):
            close_tree(mlflow_client, experiment_id, run_id, status)
        raise


def close_tree(mlflow_client: Any, experiment_id: str, run_id: str, status: str) -> list[str]:
    """End ``run_id`` and every RUNNING run nested under it (at any depth, same experiment)
    with ``status``; returns the ids ended."""
    running = mlflow_client.search_runs(
        [experiment_id], filter_string="attributes.status = 'RUNNING'", max_results=50_000
    )
    children: dict[str, list[str]] = {}
    for run in running:
        parent = run.data.tags.get(PARENT_TAG)
        if parent:
            children.setdefault(parent, []).append(run.info.run_id)
    ended, todo = [], [run_id]
    while todo:
        current = todo.pop()
        todo += children.get(current, [])
        with suppress(Exception):  # one run the store refuses must not keep the others RUNNING
            mlflow_client.set_terminated(current, status)
            ended.append(current)
    return ended


__all__ = ["close_tree", "open_run", "prepare_store"]
