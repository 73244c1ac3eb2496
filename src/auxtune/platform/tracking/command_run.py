"""One MLflow run for one local command (``auxtune train``, ``auxtune evaluate``).

The store is resolved and probed before any work (:func:`open_store`: an unreachable server is one
line, exit 2, before training starts); the run is created once the data is known, in the
experiment ``<name>-<command>``, with the command as its Source, and closed FAILED (KILLED on
Ctrl-C) when the command fails::

    store = open_store(workdir, tracking_uri)              # None with --no-mlflow
    with start_run(store, "demo-train", "train-fixed-seed0", kind="train",
                   description="...", params={...}, datasets=records) as run:
        run.log_metrics({"val_accuracy": 0.9}, step=1)     # once per epoch: one write

Without a store (``--no-mlflow``) :func:`start_run` gives a :class:`NoRun`, whose methods do nothing.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from auxtune.platform.tracking.datasets import DatasetRecord, log_datasets
from auxtune.platform.tracking.links import experiment_url
from auxtune.platform.tracking.models import CHECKPOINT_TAG, log_checkpoint_model
from auxtune.platform.tracking.store import (
    NOTE_TAG,
    TrackingTarget,
    check_reachable,
    client,
    closes_run_on_failure,
    ensure_experiment,
    log_batch,
    log_files,
    numeric_metrics,
    resolve_tracking,
)

UI_PORT = 5000  # `auxtune ui`'s default


def open_store(workdir: str | Path, tracking_uri: str | None) -> TrackingTarget:
    """The MLflow store of a command, checked now (a :class:`UserError` when unusable)."""
    target = resolve_tracking(workdir, tracking_uri)
    check_reachable(target)
    return target


class CommandRun:
    """An MLflow run being written by this process (every write is one ``log_batch``)."""

    def __init__(self, mlflow_client: Any, run_id: str, experiment_id: str) -> None:
        self.client, self.run_id, self.experiment_id = mlflow_client, run_id, experiment_id

    def log_metrics(self, metrics: Mapping[str, Any], step: int = 0) -> None:
        """The finite numbers of ``metrics`` at ``step`` (an epoch), in one write."""
        log_batch(self.client, self.run_id, metrics=numeric_metrics(metrics), step=step)

    def log_artifacts(self, files: Mapping[str, bytes | str]) -> None:
        """``{file name: content}`` as the run's artifacts, in one upload."""
        log_files(self.client, self.run_id, files)

    def log_model(self, checkpoint: str | Path, **kwargs: Any) -> str:
        """The checkpoint's classifier as the run's logged model (see :mod:`.models`)."""
        log_batch(self.client, self.run_id, tags={CHECKPOINT_TAG: str(Path(checkpoint).resolve())})
        return log_checkpoint_model(self.client, self.run_id, checkpoint, **kwargs)

    def tag(self, tags: Mapping[str, str]) -> None:
        log_batch(self.client, self.run_id, tags=tags)

    def describe(self) -> str:
        """Where the run is and how to browse it, for the command's last line."""
        uri = str(self.client.tracking_uri)
        if uri.startswith(("http://", "https://")):
            return f"MLflow run {self.run_id}: {experiment_url(uri, self.experiment_id)}"
        url = experiment_url(f"http://127.0.0.1:{UI_PORT}", self.experiment_id)
        return (
            f"MLflow run {self.run_id} in {uri}: browse with "
            f"`auxtune ui --tracking-uri {uri}`, then {url}"
        )


class NoRun:
    """What a command records with ``--no-mlflow``: nothing."""

    run_id = ""

    def log_metrics(self, metrics: Mapping[str, Any], step: int = 0) -> None:
        pass

    def log_artifacts(self, files: Mapping[str, bytes | str]) -> None:
        pass

    def log_model(self, checkpoint: str | Path, **kwargs: Any) -> str:
        return ""

    def tag(self, tags: Mapping[str, str]) -> None:
        pass

    def describe(self) -> str:
        return ""


@contextmanager
def start_run(
    target: TrackingTarget | None,
    experiment: str,
    run_name: str,
    *,
    kind: str,
    description: str,
    params: Mapping[str, str],
    datasets: Sequence[DatasetRecord] = (),
    tags: Mapping[str, str] | None = None,
) -> Iterator[CommandRun | NoRun]:
    """A run in ``experiment`` (created when missing, described by ``description``), FINISHED
    when the block ends, FAILED (KILLED on Ctrl-C) when it raises; a :class:`NoRun` without a
    store."""
    if target is None:
        yield NoRun()
        return
    from auxtune.platform.invocation import source_tags

    mlflow_client = client(target.uri)
    experiment_id = ensure_experiment(mlflow_client, experiment, target, description=description)
    all_tags = {"auxtune.kind": kind, NOTE_TAG: description, **source_tags(), **(tags or {})}
    run = mlflow_client.create_run(experiment_id, run_name=run_name, tags=all_tags)
    run_id = str(run.info.run_id)
    with closes_run_on_failure(mlflow_client, run_id):
        log_batch(mlflow_client, run_id, params=params)
        log_datasets(mlflow_client, run_id, datasets)
        yield CommandRun(mlflow_client, run_id, experiment_id)
    mlflow_client.set_terminated(run_id, "FINISHED")
