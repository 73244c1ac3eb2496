"""The MLflow store: where records go, whether it answers, experiments, runs and batched writes.

The default store is ``sqlite:///<abs workdir>/mlflow.db`` with artifacts in
``<workdir>/mlartifacts``; an ``http://`` tracking server is probed (``/health``, short timeout)
before any trial starts. Every experiment auxtune creates opens on MLflow's runs table.
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from auxtune import __version__
from auxtune.config import flatten
from auxtune.errors import UserError
from auxtune.platform.outputs import check_writable

PARENT_TAG = "mlflow.parentRunId"
NOTE_TAG = "mlflow.note.content"  # a run's or an experiment's description in the UI
EXPERIMENT_KIND_TAG, EXPERIMENT_KIND = "mlflow.experimentKind", "custom_model_development"
PROBE_TIMEOUT_S = 5.0
MAX_PARAM_CHARS = 6000  # MLflow's limit on a param value
# keys Tune adds to every result: bookkeeping, not metrics of the model
TUNE_KEYS = frozenset(
    {
        "timestamp",
        "time_this_iter_s",
        "time_total_s",
        "time_since_restore",
        "iterations_since_restore",
        "training_iteration",
        "pid",
        "date",
        "hostname",
        "node_ip",
        "done",
        "trial_id",
        "experiment_tag",
        "checkpoint_dir_name",
        "should_checkpoint",
        "config",
        "experiment_id",
    }
)


@dataclass(frozen=True)
class TrackingTarget:
    """Where MLflow records go: a tracking URI and, for the local default, the artifact root."""

    uri: str
    artifact_root: str | None  # None: the tracking server decides

    @property
    def is_local(self) -> bool:
        return self.uri.startswith("sqlite:")


def resolve_tracking(workdir: str | Path, tracking_uri: str | None = None) -> TrackingTarget:
    """``tracking_uri`` as given, else ``sqlite:///<abs workdir>/mlflow.db`` + ``<workdir>/mlartifacts``."""
    root = Path(workdir).expanduser().resolve()
    if tracking_uri:
        uri = tracking_uri.rstrip("/")
        if uri.startswith("file:") or ("://" not in uri and not uri.startswith("sqlite:")):
            raise UserError(
                f"tracking URI {tracking_uri!r}: use sqlite:///ABS/PATH/mlflow.db or http://HOST:PORT "
                "(MLflow 3 refuses the file store)"
            )
        artifacts = str(root / "mlartifacts") if uri.startswith("sqlite:") else None
        return TrackingTarget(uri, artifacts)
    return TrackingTarget(f"sqlite:///{root / 'mlflow.db'}", str(root / "mlartifacts"))


def check_reachable(target: TrackingTarget, timeout: float = PROBE_TIMEOUT_S) -> None:
    """Fail fast with one clear line when the tracking store cannot be used (before Ray starts)."""
    uri = target.uri
    if uri.startswith("sqlite:"):
        path = sqlite_path(uri)
        if path is not None:  # checked, not created: a refused command leaves nothing behind
            check_writable(path.parent, "the MLflow store directory", directory=True)
        return
    if uri.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=timeout) as response:
                if response.status >= 400:
                    raise UserError(f"MLflow tracking server {uri} answered HTTP {response.status}")
        except urllib.error.HTTPError as err:
            raise UserError(
                f"MLflow tracking server {uri} answered HTTP {err.code} on /health"
            ) from err
        except (urllib.error.URLError, OSError, TimeoutError) as err:
            reason = getattr(err, "reason", err)
            raise UserError(
                f"cannot reach the MLflow tracking server {uri} ({reason}); start it "
                "(`mlflow server --host 127.0.0.1 --port 5000`) or leave --tracking-uri out "
                "for the local store"
            ) from None


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///ABS/PATH`` URI, else None."""
    return Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None


def client(uri: str) -> Any:
    """An ``MlflowClient`` that fails fast on an unreachable server instead of retrying for minutes."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    from mlflow import MlflowClient

    path = sqlite_path(uri)
    if path is not None:  # the local store's directory is made when it is first used
        path.parent.mkdir(parents=True, exist_ok=True)

    return MlflowClient(tracking_uri=uri)


def ensure_experiment(
    mlflow_client: Any, name: str, target: TrackingTarget, description: str | None = None
) -> str:
    """The id of MLflow experiment ``name``, created on the driver when missing (no trial races).

    Every experiment auxtune touches opens on the runs table (``mlflow.experimentKind``: MLflow 3
    otherwise opens on its GenAI overview) and carries ``description`` as its note.
    """
    from mlflow.exceptions import MlflowException

    found = mlflow_client.get_experiment_by_name(name)
    if found is not None:
        if found.lifecycle_stage == "deleted":
            mlflow_client.restore_experiment(found.experiment_id)
        experiment_id = str(found.experiment_id)
    else:
        location = None
        if target.artifact_root is not None:
            location = Path(target.artifact_root, name).as_uri()
        try:
            experiment_id = str(mlflow_client.create_experiment(name, artifact_location=location))
        except MlflowException:  # created meanwhile by another driver
            found = mlflow_client.get_experiment_by_name(name)
            if found is None:
                raise
            experiment_id = str(found.experiment_id)
    mlflow_client.set_experiment_tag(experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
    if description:
        mlflow_client.set_experiment_tag(experiment_id, NOTE_TAG, description)
    return experiment_id


@contextmanager
def closes_run_on_failure(mlflow_client: Any, run_id: str) -> Iterator[str]:
    """Leave ``run_id`` FAILED (KILLED on Ctrl-C) when the block raises: never RUNNING forever."""
    try:
        yield run_id
    except BaseException as err:
        status = "KILLED" if isinstance(err, KeyboardInterrupt) else "FAILED"
        # the store itself may be what failed: the original error is the one to report
        with suppress(Exception):
            mlflow_client.set_terminated(run_id, status)
        raise


def library_versions() -> dict[str, str]:
    """Versions recorded on every parent run."""
    import mlflow
    import optuna
    import ray
    import torch

    return {
        "auxtune": __version__,
        "torch": str(torch.__version__),
        "ray": ray.__version__,
        "mlflow": mlflow.__version__,
        "optuna": optuna.__version__,
        "python": platform.python_version(),
    }


def as_params(values: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Flatten nested plain data into MLflow params (strings, at most 6000 characters)."""
    params = {}
    for key, value in flatten(values, prefix).items():
        text = json.dumps(value) if isinstance(value, (list, tuple, dict)) else str(value)
        params[key] = text[:MAX_PARAM_CHARS]
    return params


def numeric_metrics(result: Mapping[str, Any]) -> dict[str, float]:
    """The finite numeric metrics of a Tune result, without Tune's bookkeeping keys."""
    metrics = {}
    for key, value in result.items():
        if key in TUNE_KEYS or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if math.isfinite(value):
            metrics[key] = float(value)
    return metrics


def log_batch(
    mlflow_client: Any,
    run_id: str,
    metrics: Mapping[str, float] = {},
    params: Mapping[str, str] = {},
    tags: Mapping[str, str] = {},
    step: int = 0,
    *,
    steps: Iterable[tuple[str, float, int]] = (),
) -> None:
    """As few ``log_batch`` calls as MLflow's limits allow (1000 metrics / 100 params / 100 tags).

    ``metrics`` are logged at ``step``; ``steps`` adds ``(key, value, step)`` triples (several
    epochs of a run in one call).
    """
    from mlflow.entities import Metric, Param, RunTag

    now = int(time.time() * 1000)
    metric_list = [Metric(k, float(v), now, step) for k, v in metrics.items()]
    metric_list += [Metric(k, float(v), now, int(s)) for k, v, s in steps]
    param_list = [Param(k, str(v)) for k, v in params.items()]
    tag_list = [RunTag(k, str(v)[:5000]) for k, v in tags.items()]
    batches = max(
        -(-len(metric_list) // 1000), -(-len(param_list) // 100), -(-len(tag_list) // 100)
    )
    for i in range(batches):
        mlflow_client.log_batch(
            run_id,
            metrics=metric_list[i * 1000 : (i + 1) * 1000],
            params=param_list[i * 100 : (i + 1) * 100],
            tags=tag_list[i * 100 : (i + 1) * 100],
        )


def log_files(mlflow_client: Any, run_id: str, files: Mapping[str, bytes | str]) -> None:
    """``{file name: content}`` as the run's artifacts, in one ``log_artifacts`` upload."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        for name, content in files.items():
            Path(tmp, name).write_bytes(content.encode() if isinstance(content, str) else content)
        mlflow_client.log_artifacts(run_id, tmp)


def trial_runs(mlflow_client: Any, experiment_id: str, parent_run_id: str) -> dict[str, str]:
    """Ray trial id -> MLflow run id of the nested runs under ``parent_run_id`` (one query)."""
    runs = mlflow_client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{PARENT_TAG}` = '{parent_run_id}'",
        max_results=10_000,
    )
    return {
        run.data.tags["ray.trial_id"]: run.info.run_id
        for run in runs
        if "ray.trial_id" in run.data.tags
    }
