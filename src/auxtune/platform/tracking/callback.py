"""Driver-side MLflow logging of Tune trials: one nested run per trial, written in the background.

Every MLflow write happens on the Ray *driver*, in :class:`MlflowTrialCallback` (a ``tune.Callback``):
trials never talk to MLflow, so a search survives PBT mutating a trial's config (MLflow params are
immutable: initial values go to params, the values over time to metrics), trials on other nodes
(no tracking credentials or network needed there) and ``--resume`` (the trial id -> run id map is
persisted in the Tune experiment directory, so resumed trials reuse their run).

Trials report synchronously (a trial waits while the driver handles its result), so the callback's
hooks only queue work for one background writer thread (:mod:`.writer`): a run gets one
``MlflowClient.log_batch`` at its first result, then at most one every ``WRITE_EVERY_S`` seconds
holding every epoch since (each at its own step), and a last one when the trial ends, with its
artifacts.

Exactly once: a result goes to the ledger (:class:`~.ledger.SearchState`) in the hook, before
anything is queued, so the ledger always holds at least what MLflow holds. What a dead driver
still had buffered or queued is written when the search is resumed, and at the end of every
Tune run MLflow is checked against the ledger (:mod:`.recovery`); a step MLflow has is never
written again.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any

from ray import tune

from auxtune.platform.tracking import recovery
from auxtune.platform.tracking.ledger import SearchState, add_row, result_row
from auxtune.platform.tracking.store import (
    PARENT_TAG,
    client,
    log_batch,
    log_files,
)
from auxtune.platform.tracking.trial_errors import trial_error_message
from auxtune.platform.tracking.writer import WRITE_EVERY_S, HookTimer, Writer


class MlflowTrialCallback(tune.Callback):
    """Driver-side MLflow logging: one nested run per trial, one ``log_batch`` per trial-epoch.

    Tune reports synchronously (a trial waits until the driver has handled its result), so the
    hooks only queue work; one background writer thread does every MLflow call, in order. The
    queue is drained at the end of the experiment (and at interpreter exit).

    The MLflow step of a metric is the trial's result count (1, 2, ...), monotonic even when PBT
    restores another trial's checkpoint or Tune replays epochs after a restore; the model's own
    epoch is the ``epoch`` metric.
    ``trial_params(config)`` gives the params of a trial (strategy, initial lambdas, trainer
    config) and ``trial_artifacts(config, history)`` its end-of-trial artifacts as
    ``{file name: bytes}``; ``trial_records(client, run_id, config, history, checkpoint)``, when
    given, writes what else a finished run records (its datasets, where its last checkpoint is, a
    retrain's model; ``checkpoint``: the trial's latest ``ray.tune.Checkpoint`` or None). Hook
    and writer time are summed into the state file (``hook_s``,
    ``logging_s``). A trial nests under ``parent_run_id``, or under ``parents[strategy]`` when its
    config names a ``strategy`` there (a comparison's retrains nest under their row's run).
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
        parents: Mapping[str, str] | None = None,
        trial_records: Any = None,
    ) -> None:
        self.tracking_uri = tracking_uri
        self.experiment_id = experiment_id
        self.parent_run_id = parent_run_id
        self.parents = dict(parents or {})
        self.state_path = state_path
        self.trial_params = trial_params
        self.trial_artifacts = trial_artifacts
        self.trial_records = trial_records
        self.tags = dict(tags or {})
        self._reset()

    def _reset(self) -> None:
        self._client: Any = None
        self._state: SearchState | None = None
        self._writer: Writer | None = None
        self._history: dict[str, list[dict[str, Any]]] | None = None
        self._pending_params: dict[str, dict[str, str]] = {}
        self._known: set[str] = set()  # runs this session created or checked
        self._buffer: dict[str, dict[str, Any]] = {}  # run id -> rows/params/tags to write
        self._last_write: dict[str, float] = {}  # run id -> time.monotonic() of its last write
        self._earlier: dict[str, list[dict[str, Any]]] = {}  # ledger rows of earlier sessions
        self._steps: dict[str, int] | None = None  # trial id -> step of its last result
        self._started: set[str] = set()  # trials this session started
        self._ended: set[str] = set()  # trials whose end this session queued

    # the callback is pickled into Tune's tuner.pkl: keep only plain settings
    def __getstate__(self) -> dict[str, Any]:
        keep = (
            "tracking_uri",
            "experiment_id",
            "parent_run_id",
            "parents",
            "state_path",
            "trial_params",
            "trial_artifacts",
            "trial_records",
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
    def writer(self) -> Writer:
        if self._writer is None:
            self._writer = Writer(self.state, idle=lambda: self._write_all(WRITE_EVERY_S))
        return self._writer

    @property
    def steps(self) -> dict[str, int]:
        if self._steps is None:
            self._steps = {
                trial_id: max((int(r.get("step", 0)) for r in rows), default=0)
                for trial_id, rows in self.state.rows().items()
            }
        return self._steps

    def setup(self, *args: Any, **info: Any) -> None:
        self._state = SearchState(self.state_path)  # the files are the truth after a resume
        self._history = self._steps = None
        self._earlier = self.state.rows()
        if self._earlier or self.state.runs:  # a resumed Tune run: first repair MLflow
            self.writer.put(self._recover)

    # -- Tune hooks: measure, queue, return ------------------------------------------------
    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        with self._hook():
            self._started.add(trial.trial_id)
            self.writer.put(self._start, trial.trial_id, str(trial), dict(trial.config))

    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
    ) -> None:
        with self._hook():
            rows = self.history.setdefault(trial.trial_id, [])
            step = self.steps[trial.trial_id] = self.steps.get(trial.trial_id, 0) + 1
            row, tags = result_row(result, step, rows, trial.config)
            # the ledger first: MLflow never holds a result the ledger lacks
            self.state.append_history({"trial_id": trial.trial_id, **row})
            add_row(rows, dict(row))
            self.writer.put(self._log, trial.trial_id, str(trial), dict(trial.config), row, tags)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        with self._hook():
            self._queue_finish(trial, "FINISHED", None)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        with self._hook():
            self._queue_finish(trial, "FAILED", trial_error_message(trial))

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        """Every trial's run ends in a state that tells the truth, then MLflow is checked
        against the ledger.

        A trial this session did not start but Tune restored as ended had its end seen by a
        driver that died before writing it: it is finished now. Any other trial whose end no
        hook reported was interrupted (Tune marks the trials it stops at the end of a failed or
        interrupted run TERMINATED, without calling ``on_trial_complete``): its run is KILLED
        until ``--resume`` continues it.
        """
        finished = set(self.state.data["finished"])
        for trial in trials:
            if trial.trial_id in self._ended | finished:
                continue
            restored_ended = trial.trial_id not in self._started and trial.status in (
                "TERMINATED",
                "ERROR",
            )
            if restored_ended:
                self.writer.put(self._first_sight, trial.trial_id, str(trial), dict(trial.config))
                status = "FINISHED" if trial.status == "TERMINATED" else "FAILED"
                error = trial_error_message(trial) if trial.status == "ERROR" else None
                self._queue_finish(trial, status, error)
            else:
                self.writer.put(self._interrupted, trial.trial_id)
        self.writer.put(self._write_all)
        self.writer.put(self._reconcile)
        self.flush()

    def flush(self) -> None:
        """Write everything buffered and wait for the writer, then save the state file."""
        if self._writer is not None:
            self._writer.put(self._write_all)
            self._writer.drain()
        self.state.save()

    def _queue_finish(self, trial: Any, status: str, error: str | None) -> None:
        self._ended.add(trial.trial_id)
        history = list(self.history.get(trial.trial_id, []))
        checkpoint = getattr(trial, "checkpoint", None)  # the latest one Tune registered
        args = (trial.trial_id, str(trial), dict(trial.config), history, status, error, checkpoint)
        self.writer.put(self._finish, *args)

    # -- the writer's work (background thread) ----------------------------------------------
    def _run_id(self, trial_id: str, name: str, config: dict[str, Any]) -> str:
        runs = self.state.runs
        if trial_id in runs:
            return runs[trial_id]
        parent = self.parents.get(str(config.get("strategy")), self.parent_run_id)
        tags = {
            PARENT_TAG: parent,
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
        self._known.add(run_id)
        # results of an earlier session that died before this trial's run existed
        recovery.write_rows(self.client, run_id, self._earlier.get(trial_id, []))
        return run_id

    def _start(self, trial_id: str, name: str, config: dict[str, Any]) -> None:
        run = self._first_sight(trial_id, name, config)
        run_id = self.state.runs[trial_id]
        finished = self.state.data["finished"]
        # an earlier session left the run KILLED or FAILED, or this one saw the trial fail
        was_ended = run.info.status != "RUNNING" if run is not None else trial_id in finished
        if was_ended:
            self.client.update_run(run_id, status="RUNNING")
        if trial_id in finished:
            finished.remove(trial_id)

    def _first_sight(self, trial_id: str, name: str, config: dict[str, Any]) -> Any:
        """A run of an earlier session, seen for the first time in this one: its MLflow run
        (its params are logged again if its first write died with the driver); else None."""
        run_id = self._run_id(trial_id, name, config)
        if run_id in self._known:
            return None
        self._known.add(run_id)
        run = self.client.get_run(run_id)
        if not run.data.params:
            self._pending_params[run_id] = self.trial_params(config)
        return run

    def _log(
        self,
        trial_id: str,
        name: str,
        config: dict[str, Any],
        row: dict[str, Any],
        tags: dict[str, str],
    ) -> None:
        run_id = self._run_id(trial_id, name, config)
        buffer = self._buffer.setdefault(run_id, {"rows": [], "params": {}, "tags": {}})
        buffer["rows"].append(row)
        buffer["params"].update(self._pending_params.pop(run_id, {}))
        buffer["tags"].update(tags)
        if time.monotonic() - self._last_write.get(run_id, -math.inf) >= WRITE_EVERY_S:
            self._write(run_id)

    def _write(self, run_id: str) -> None:
        """One ``log_batch`` with everything buffered for ``run_id`` (possibly several epochs;
        whole rows per call, see :mod:`.recovery`)."""
        buffer = self._buffer.pop(run_id, None)
        if buffer:
            recovery.write_rows(
                self.client, run_id, buffer["rows"], params=buffer["params"], tags=buffer["tags"]
            )
        self._last_write[run_id] = time.monotonic()

    # -- exactly once across driver deaths (background thread) ------------------------------
    def _recover(self) -> None:
        """A resumed Tune run: adopt the trial runs created just before the driver died, and
        write every run the ledger rows of earlier sessions that MLflow lacks."""
        runs = self.state.runs
        parents = [self.parent_run_id, *self.parents.values()]
        adopted = recovery.adopt_runs(self.client, self.experiment_id, parents, runs)
        if adopted:
            runs.update(adopted)
            self.state.save()
        recovery.write_missing_runs(self.client, runs, self._earlier)

    def _reconcile(self) -> None:
        """End of a Tune run: MLflow gets whatever the ledger has that it lacks (a write that
        failed earlier in the session), so every result is in MLflow exactly once."""
        recovery.write_missing_runs(self.client, self.state.runs, self.state.rows())

    def _interrupted(self, trial_id: str) -> None:
        """A trial left unfinished (Ctrl-C, a failed search): KILLED until ``--resume``."""
        run_id = self.state.runs.get(trial_id)
        if run_id is not None and self.client.get_run(run_id).info.status == "RUNNING":
            self.client.set_terminated(run_id, "KILLED")

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
        checkpoint: Any = None,
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
            log_files(self.client, run_id, self.trial_artifacts(config, history))
        except Exception as err:  # artifacts are a convenience: never fail the search for them
            log_batch(self.client, run_id, tags={"artifact_error": repr(err)[:1000]})
        if self.trial_records is not None:
            try:
                self.trial_records(self.client, run_id, config, history, checkpoint)
            except Exception as err:  # neither for datasets nor models
                log_batch(self.client, run_id, tags={"records_error": repr(err)[:1000]})
        self.client.set_terminated(run_id, status)
        self.state.data["finished"].append(trial_id)
        self.state.save()

    def _hook(self) -> HookTimer:
        return HookTimer(self.state, "hook_s")
