"""MLflow tracking of searches: one experiment per search, a parent run, one nested run per trial.

Every MLflow write happens on the Ray *driver*, in :class:`MlflowTrialCallback` (a ``tune.Callback``):
trials never talk to MLflow, so a search survives PBT mutating a trial's config (MLflow params are
immutable: initial values go to params, the values over time to metrics), trials on other nodes
(no tracking credentials or network needed there) and ``--resume`` (the trial id -> run id map is
persisted in the Tune experiment directory, so resumed trials reuse their run).

Trials report synchronously (a trial waits while the driver handles its result), so the callback's
hooks only queue work for one background writer thread: a run gets one ``MlflowClient.log_batch``
at its first result, then at most one every ``WRITE_EVERY_S`` seconds holding every epoch since
(each at its own step), and a last one when the trial ends, with its artifacts. The default store
is ``sqlite:///<abs workdir>/mlflow.db`` with artifacts in ``<workdir>/mlartifacts``; an
``http://`` tracking server is probed (``/health``, short timeout) before any trial starts.
"""

from __future__ import annotations

import atexit
import json
import math
import os
import platform
import queue
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ray import tune

from auxtune import __version__
from auxtune.config import flatten
from auxtune.errors import UserError

STATE_FILE = "auxtune_search.json"  # in the Tune experiment directory
PARENT_TAG = "mlflow.parentRunId"
PROBE_TIMEOUT_S = 5.0
WRITE_EVERY_S = 30.0  # a run's metrics are written at most this often (several epochs per write)
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


# ---------------------------------------------------------------------------------- the store
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
        path = Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise UserError(
                    f"cannot create the MLflow store directory {path.parent}: {err}"
                ) from err
            if not os.access(path.parent, os.W_OK):
                raise UserError(f"the MLflow store directory {path.parent} is not writable")
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


def client(uri: str) -> Any:
    """An ``MlflowClient`` that fails fast on an unreachable server instead of retrying for minutes."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri)


def ensure_experiment(mlflow_client: Any, name: str, target: TrackingTarget) -> str:
    """The id of MLflow experiment ``name``, created on the driver when missing (no trial races)."""
    from mlflow.exceptions import MlflowException

    found = mlflow_client.get_experiment_by_name(name)
    if found is not None:
        if found.lifecycle_stage == "deleted":
            mlflow_client.restore_experiment(found.experiment_id)
        return str(found.experiment_id)
    location = None
    if target.artifact_root is not None:
        location = Path(target.artifact_root, name).as_uri()
    try:
        return str(mlflow_client.create_experiment(name, artifact_location=location))
    except MlflowException:  # created meanwhile by another driver
        found = mlflow_client.get_experiment_by_name(name)
        if found is None:
            raise
        return str(found.experiment_id)


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


def start_parent_run(
    mlflow_client: Any,
    experiment_id: str,
    *,
    run_name: str,
    params: Mapping[str, str],
    tags: Mapping[str, str],
    parent_run_id: str | None = None,
) -> str:
    """Create the search's parent run (nested under ``parent_run_id`` when given)."""
    all_tags = {"auxtune.kind": "search", **tags}
    if parent_run_id:
        all_tags[PARENT_TAG] = parent_run_id
    run = mlflow_client.create_run(experiment_id, tags=all_tags, run_name=run_name)
    log_batch(mlflow_client, run.info.run_id, params=params)
    return str(run.info.run_id)


# ------------------------------------------------------------------------------ persisted state
class SearchState:
    """``auxtune_search.json`` in the Tune experiment directory: run ids and logging time.

    Written atomically whenever a trial gets its MLflow run, so an interrupted search resumes
    into the same runs. Beside it, :attr:`history_path` keeps every result of every trial.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.data: dict[str, Any] = {
            "runs": {},
            "finished": [],
            "logging_s": 0.0,  # writer thread: every MLflow call, artifacts included
            "hook_s": 0.0,  # Tune hooks: what a reporting trial may wait for
            "logging_by_op": {},  # logging_s by operation: start (run creation), log, finish
        }
        if self.path.is_file():
            self.data.update(json.loads(self.path.read_text()))

    @property
    def runs(self) -> dict[str, str]:
        return self.data["runs"]

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.data, indent=1, sort_keys=True))
        os.replace(tmp, self.path)

    @property
    def history_path(self) -> Path:
        """Every result of every trial in the order the driver saw them (JSON lines).

        Tune rewrites a trial's own ``result.json`` when it restores a checkpoint (a PBT exploit
        drops the rows after the donor's epoch), so this file is the complete record.
        """
        return self.path.with_suffix(".history.jsonl")

    def append_history(self, row: Mapping[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.history_path.open("a") as f:
            f.write(json.dumps(row) + "\n")

    def histories(self) -> dict[str, list[dict[str, Any]]]:
        """trial id -> its rows (``step`` counts the trial's results from 1), replays rewound."""
        by_trial: dict[str, list[dict[str, Any]]] = {}
        if self.history_path.is_file():
            for line in self.history_path.read_text().splitlines():
                if line.strip():
                    row = json.loads(line)
                    add_row(by_trial.setdefault(row.pop("trial_id"), []), row)
        return by_trial


def add_row(rows: list[dict[str, Any]], row: dict[str, Any]) -> None:
    """Append a trial's result to its rows, first dropping the rows it replays.

    A resumed trial restarts from its last *registered* checkpoint, so a result Tune had shown
    the driver just before an interruption can come again: a result whose ``training_iteration``
    is not past the previous row's (and that is not a PBT exploit, which restores another trial's
    checkpoint on purpose) replaces the rows it repeats.
    """
    if not row.get("restored_from"):
        iteration = row.get("training_iteration", math.inf)
        while rows and rows[-1].get("training_iteration", -math.inf) >= iteration:
            rows.pop()
    rows.append(row)


# ------------------------------------------------------------------------------- the callback
class MlflowTrialCallback(tune.Callback):
    """Driver-side MLflow logging: one nested run per trial, one ``log_batch`` per trial-epoch.

    Tune reports synchronously (a trial waits until the driver has handled its result), so the
    hooks only queue work; one background writer thread does every MLflow call, in order. The
    queue is drained at the end of the experiment (and at interpreter exit).

    The MLflow step of a metric is the trial's result count (1, 2, ...), monotonic even when PBT
    restores another trial's checkpoint; the model's own epoch is the ``epoch`` metric.
    ``trial_params(config)`` gives the params of a trial (strategy, initial lambdas, trainer
    config) and ``trial_artifacts(config, history)`` its end-of-trial artifacts as
    ``{file name: bytes}``. Hook and writer time are summed into the state file (``hook_s``,
    ``logging_s``).
    """

    def __init__(
        self,
        *,
        tracking_uri: str,
        experiment_id: str,
        parent_run_id: str,
        state_path: str,
        trial_params: Any,
        trial_artifacts: Any,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        self.tracking_uri = tracking_uri
        self.experiment_id = experiment_id
        self.parent_run_id = parent_run_id
        self.state_path = state_path
        self.trial_params = trial_params
        self.trial_artifacts = trial_artifacts
        self.tags = dict(tags or {})
        self._reset()

    def _reset(self) -> None:
        self._client: Any = None
        self._state: SearchState | None = None
        self._writer: _Writer | None = None
        self._history: dict[str, list[dict[str, Any]]] | None = None
        self._pending_params: dict[str, dict[str, str]] = {}
        self._known: set[str] = set()  # runs this session created or checked
        self._buffer: dict[str, dict[str, Any]] = {}  # run id -> metrics/params/tags to write
        self._last_write: dict[str, float] = {}  # run id -> time.monotonic() of its last write

    # the callback is pickled into Tune's tuner.pkl: keep only plain settings
    def __getstate__(self) -> dict[str, Any]:
        keep = (
            "tracking_uri",
            "experiment_id",
            "parent_run_id",
            "state_path",
            "trial_params",
            "trial_artifacts",
            "tags",
        )
        return {k: self.__dict__[k] for k in keep}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._reset()

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = client(self.tracking_uri)
        return self._client

    @property
    def state(self) -> SearchState:
        if self._state is None:
            self._state = SearchState(self.state_path)
        return self._state

    @property
    def history(self) -> dict[str, list[dict[str, Any]]]:
        if self._history is None:  # after a resume: the rows logged before the interruption
            self._history = self.state.histories()
        return self._history

    @property
    def writer(self) -> _Writer:
        if self._writer is None:
            self._writer = _Writer(self.state, idle=lambda: self._write_all(WRITE_EVERY_S))
        return self._writer

    def setup(self, *args: Any, **info: Any) -> None:
        self._state = SearchState(self.state_path)  # the files are the truth after a resume
        self._history = None

    # -- Tune hooks: measure, queue, return ------------------------------------------------
    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        with self._hook():
            self.writer.put(self._start, trial.trial_id, str(trial), dict(trial.config))

    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
    ) -> None:
        with self._hook():
            rows = self.history.setdefault(trial.trial_id, [])
            metrics = numeric_metrics(result)
            # wall time of this result inside the trial (train + eval + checkpoint)
            metrics["time/iter_s"] = float(result.get("time_this_iter_s") or 0.0)
            tags = {}
            donor = result.get("restored_from")
            if donor:
                metrics["pbt/exploit"] = 1.0
                tags = {
                    "pbt.last_donor": str(donor),
                    "pbt.exploits": str(1 + sum(1 for r in rows if r.get("restored_from"))),
                    "pbt.current_config": json.dumps(_plain(trial.config), sort_keys=True),
                }
            row: dict[str, Any] = {
                "training_iteration": int(result.get("training_iteration") or 0),
                **metrics,
            }
            if donor:
                row["restored_from"] = str(donor)
            add_row(rows, row)
            row["step"] = len(rows)  # the trial's n-th result: monotonic across PBT restores
            self.writer.put(self._log, trial.trial_id, str(trial), dict(trial.config), row, tags)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        with self._hook():
            self._queue_finish(trial, "FINISHED", None)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        with self._hook():
            self._queue_finish(trial, "FAILED", trial_error_message(trial))

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self.flush()

    def flush(self) -> None:
        """Write everything buffered and wait for the writer, then save the state file."""
        if self._writer is not None:
            self._writer.put(self._write_all)
            self._writer.drain()
        self.state.save()

    def _queue_finish(self, trial: Any, status: str, error: str | None) -> None:
        history = list(self.history.get(trial.trial_id, []))
        args = (trial.trial_id, str(trial), dict(trial.config), history, status, error)
        self.writer.put(self._finish, *args)

    # -- the writer's work (background thread) ----------------------------------------------
    def _run_id(self, trial_id: str, name: str, config: dict[str, Any]) -> str:
        runs = self.state.runs
        if trial_id in runs:
            return runs[trial_id]
        tags = {
            PARENT_TAG: self.parent_run_id,
            "auxtune.kind": "trial",
            "ray.trial_id": trial_id,
            "ray.trial_name": name,
            **self.tags,
        }
        run = self.client.create_run(self.experiment_id, tags=tags, run_name=name)
        run_id = str(run.info.run_id)
        runs[trial_id] = run_id
        self.state.save()  # before anything else: a resumed search must find this run
        # the params ride along with the first metrics (one write less per trial)
        self._pending_params[run_id] = self.trial_params(config)
        return run_id

    def _start(self, trial_id: str, name: str, config: dict[str, Any]) -> None:
        existed = trial_id in self.state.runs
        run_id = self._run_id(trial_id, name, config)
        if existed and run_id not in self._known:  # first sight since a resume: params logged?
            self._known.add(run_id)
            if not self.client.get_run(run_id).data.params:
                self._pending_params[run_id] = self.trial_params(config)
        self._known.add(run_id)
        finished = self.state.data["finished"]
        if trial_id in finished:  # an errored trial resumed: its run is live again
            finished.remove(trial_id)
            self.client.update_run(run_id, status="RUNNING")

    def _log(
        self,
        trial_id: str,
        name: str,
        config: dict[str, Any],
        row: dict[str, Any],
        tags: dict[str, str],
    ) -> None:
        skip = ("step", "restored_from", "training_iteration")
        step = int(row["step"])
        run_id = self._run_id(trial_id, name, config)
        buffer = self._buffer.setdefault(run_id, {"steps": [], "params": {}, "tags": {}})
        buffer["steps"] += [(k, v, step) for k, v in row.items() if k not in skip]
        buffer["params"].update(self._pending_params.pop(run_id, {}))
        buffer["tags"].update(tags)
        self.state.append_history({"trial_id": trial_id, **row})
        if time.monotonic() - self._last_write.get(run_id, -math.inf) >= WRITE_EVERY_S:
            self._write(run_id)

    def _write(self, run_id: str) -> None:
        """One ``log_batch`` with everything buffered for ``run_id`` (possibly several epochs)."""
        buffer = self._buffer.pop(run_id, None)
        if buffer:
            log_batch(
                self.client,
                run_id,
                params=buffer["params"],
                tags=buffer["tags"],
                steps=buffer["steps"],
            )
        self._last_write[run_id] = time.monotonic()

    def _write_all(self, older_than: float = 0.0) -> None:
        now = time.monotonic()
        for run_id in list(self._buffer):
            if now - self._last_write.get(run_id, -math.inf) >= older_than:
                self._write(run_id)

    def _finish(
        self,
        trial_id: str,
        name: str,
        config: dict[str, Any],
        history: list[dict[str, Any]],
        status: str,
        error: str | None,
    ) -> None:
        if trial_id in self.state.data["finished"]:
            return
        run_id = self._run_id(trial_id, name, config)
        self._write(run_id)
        params = self._pending_params.pop(run_id, {})  # a trial that failed before any result
        tags = {"error": error} if error else {}
        if params or tags:
            log_batch(self.client, run_id, params=params, tags=tags)
        try:
            self._log_files(run_id, self.trial_artifacts(config, history))
        except Exception as err:  # artifacts are a convenience: never fail the search for them
            log_batch(self.client, run_id, tags={"artifact_error": repr(err)[:1000]})
        self.client.set_terminated(run_id, status)
        self.state.data["finished"].append(trial_id)
        self.state.save()

    def _log_files(self, run_id: str, files: Mapping[str, bytes]) -> None:
        """Every artifact of a run in one ``log_artifacts`` call."""
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            for name, payload in files.items():
                Path(tmp, name).write_bytes(payload)
            self.client.log_artifacts(run_id, tmp)

    def _hook(self) -> _Timer:
        return _Timer(self.state, "hook_s")


class _Timer:
    def __init__(self, state: SearchState, key: str) -> None:
        self.state, self.key = state, key

    def __enter__(self) -> None:
        self.start = time.perf_counter()

    def __exit__(self, *exc: Any) -> None:
        data = self.state.data
        data[self.key] = data.get(self.key, 0.0) + time.perf_counter() - self.start


class _Writer:
    """One daemon thread running queued MLflow writes in order; errors are reported, not raised.

    ``idle()`` runs whenever the queue has been empty for ``WRITE_EVERY_S`` (buffered metrics
    of quiet trials get written).
    """

    def __init__(self, state: SearchState, idle: Any = None) -> None:
        self.state = state
        self.idle = idle
        self.queue: queue.Queue[Any] = queue.Queue()
        self.warned = False
        self.thread = threading.Thread(target=self._loop, name="auxtune-mlflow", daemon=True)
        self.thread.start()
        self.put(_warm_up)  # one-time imports, while the first trials start
        atexit.register(self.drain)

    def put(self, fn: Any, *args: Any) -> None:
        self.queue.put((fn, args))

    def drain(self) -> None:
        if self.thread.is_alive():
            self.queue.join()

    def _loop(self) -> None:
        while True:
            try:
                fn, args = self.queue.get(timeout=WRITE_EVERY_S)
            except queue.Empty:
                if self.idle is not None:
                    self._run(self.idle, ())
                continue
            try:
                self._run(fn, args)
            finally:
                self.queue.task_done()

    def _run(self, fn: Any, args: tuple[Any, ...]) -> None:
        start, start_cpu = time.perf_counter(), time.thread_time()
        try:
            fn(*args)
        except Exception as err:  # MLflow trouble must not stop the search
            if not self.warned:
                print(
                    f"auxtune: MLflow logging failed ({err!r}); the search goes on",
                    file=sys.stderr,
                )
                self.warned = True
        finally:
            # wall seconds include waits for the CPU (the trials share it) and for the disk;
            # the thread's CPU seconds are what logging takes away from the trials
            seconds, cpu_seconds = time.perf_counter() - start, time.thread_time() - start_cpu
            data = self.state.data
            data["logging_s"] = data.get("logging_s", 0.0) + seconds
            data["logging_cpu_s"] = data.get("logging_cpu_s", 0.0) + cpu_seconds
            op = getattr(fn, "__name__", "other").strip("_")
            for key, value in (("logging_by_op", seconds), ("logging_cpu_by_op", cpu_seconds)):
                by_op = data.setdefault(key, {})
                by_op[op] = by_op.get(op, 0.0) + value


def _warm_up() -> None:
    """Import what the writer needs once (timed as op ``warm_up``, apart from per-trial work)."""
    import mlflow.entities  # noqa: F401


def trial_error_message(trial: Any) -> str:
    """The last meaningful line of a failed trial's error (e.g. ``DivergenceError: ...``)."""
    text = ""
    path = getattr(trial, "error_file", None)
    if path and Path(path).is_file():
        text = Path(path).read_text(errors="replace")
    return error_line(text) or "trial failed (no error file)"


def error_line(text: str) -> str:
    """Pick the exception line out of a traceback (the last ``SomethingError: ...`` line)."""
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    for line in reversed(lines):
        head = line.split(":", 1)[0]
        if head.endswith(("Error", "Exception")) and " " not in head:
            return line[:1000]
    return lines[-1][:1000] if lines else ""


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (int, float, str, bool)) or value is None:
        return value
    return str(value)
