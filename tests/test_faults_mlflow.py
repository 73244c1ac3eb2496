"""Faults against a real SQLite MLflow store, without Ray: a driver's death between two sessions
of the MLflow callback, concurrent schema creation, runs closed when a search fails."""

from __future__ import annotations

import json
import multiprocessing
import pickle
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from auxtune.platform import tracking

pytestmark = pytest.mark.slow


class FakeTrial:
    """What the callback reads of a Tune trial."""

    def __init__(self, trial_id: str, status: str = "RUNNING") -> None:
        self.trial_id, self.status = trial_id, status
        self.config = {"lambda": {"rotation": 0.5}}
        self.error_file = None

    def __str__(self) -> str:
        return f"trial-{self.trial_id}"


def trial_params(config: dict[str, Any]) -> dict[str, str]:
    return {"strategy": "pbt", "lambda/rotation": str(config["lambda"]["rotation"])}


def trial_artifacts(config: dict[str, Any], history: list[dict[str, Any]]) -> dict[str, bytes]:
    return {"history.json": json.dumps(history).encode()}


def result(iteration: int, **extra: Any) -> dict[str, Any]:
    return {
        "training_iteration": iteration,
        "epoch": float(iteration),
        "val_accuracy": 0.1 * iteration,
        "loss/main": 2.0 / iteration,
        "time_this_iter_s": 1.5,
        **extra,
    }


@pytest.fixture
def store(tmp_path: Path) -> tuple[Any, str, str]:
    """(client, experiment id, parent run id) in a fresh SQLite store."""
    target = tracking.resolve_tracking(tmp_path)
    client = tracking.client(target.uri)
    experiment_id = tracking.ensure_experiment(client, "faults", target)
    parent = client.create_run(experiment_id, run_name="search").info.run_id
    return client, experiment_id, parent


def test_every_result_reaches_mlflow_once_across_a_driver_death(
    tmp_path: Path, store: tuple[Any, str, str]
) -> None:
    client, experiment_id, parent = store
    state_path = str(tmp_path / "results" / tracking.STATE_FILE)
    callback = tracking.MlflowTrialCallback(
        tracking_uri=client.tracking_uri,
        experiment_id=experiment_id,
        parent_run_id=parent,
        state_path=state_path,
        trial_params=trial_params,
        trial_artifacts=trial_artifacts,
    )
    pickled = pickle.dumps(callback)  # what Tune's tuner.pkl holds

    # -- session 1: results 1..3 of t1 and t2; the driver dies with 2..3 in its write buffer
    first = pickle.loads(pickled)
    first.setup()
    t1, t2, t3 = FakeTrial("t1"), FakeTrial("t2"), FakeTrial("t3")
    for trial in (t1, t2, t3):
        first.on_trial_start(0, [], trial)
    for iteration in (1, 2, 3):
        for trial in (t1, t2):
            first.on_trial_result(0, [], trial, result(iteration))
    first.on_trial_result(0, [], t3, result(1))
    first.writer.drain()
    first.writer.idle = None  # dead: its buffer is never written
    # t3's run was created, but the driver died before the ledger saved its id
    ledger = json.loads(Path(state_path).read_text())
    del ledger["runs"]["t3"]
    Path(state_path).write_text(json.dumps(ledger))
    # t4 reported once; the driver died before the writer created its run
    state = tracking.SearchState(state_path)
    row = {"step": 1, "training_iteration": 1, "epoch": 1.0, "val_accuracy": 0.1}
    state.append_history({"trial_id": "t4", **row, "loss/main": 2.0, "time/iter_s": 1.5})

    # -- session 2 (--resume): t1 replays result 3 (Tune's saved state had its checkpoint 2);
    # t2 had ended before the death in Tune's saved state: no hook of this session sees it
    second = pickle.loads(pickled)
    second.setup()
    t4 = FakeTrial("t4")
    for trial in (t1, t3, t4):
        second.on_trial_start(0, [], trial)
    second.on_trial_result(0, [], t1, result(3))
    second.on_trial_result(0, [], t1, result(4))
    second.on_trial_result(0, [], t3, result(2))
    second.on_trial_result(0, [], t4, result(2))
    for trial in (t1, t2, t3, t4):
        trial.status = "TERMINATED"
    for trial in (t1, t3, t4):
        second.on_trial_complete(0, [], trial)
    second.on_experiment_end([t1, t2, t3, t4])

    runs = client.search_runs(
        [experiment_id], filter_string=f"tags.`{tracking.PARENT_TAG}` = '{parent}'"
    )
    by_trial = Counter(run.data.tags["ray.trial_id"] for run in runs)
    assert by_trial == {"t1": 1, "t2": 1, "t3": 1, "t4": 1}  # t3's run adopted, not made again
    rows = tracking.SearchState(state_path).rows()
    expected_steps = {"t1": 5, "t2": 3, "t3": 2, "t4": 2}
    assert {t: len(r) for t, r in rows.items()} == expected_steps
    for run in runs:
        trial_id = run.data.tags["ray.trial_id"]
        assert run.info.status == "FINISHED", trial_id
        assert run.data.params["strategy"] == "pbt"
        for key in ("val_accuracy", "epoch", "time/iter_s"):
            history = client.get_metric_history(run.info.run_id, key)
            steps = sorted(m.step for m in history)
            assert steps == list(range(1, expected_steps[trial_id] + 1)), (trial_id, key, steps)
        epochs = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "epoch")}
        assert epochs == {int(r["step"]): r["epoch"] for r in rows[trial_id]}
    t1_epochs = [r["epoch"] for r in rows["t1"]]
    assert t1_epochs == [1, 2, 3, 3, 4]  # the replayed epoch is a result of its own
    lineage = tracking.SearchState(state_path).histories()["t1"]
    assert [r["epoch"] for r in lineage] == [1, 2, 3, 4]  # the model t1 ended with


def test_a_ctrl_c_leaves_unfinished_trial_runs_killed_until_resumed(
    tmp_path: Path, store: tuple[Any, str, str]
) -> None:
    client, experiment_id, parent = store
    callback = tracking.MlflowTrialCallback(
        tracking_uri=client.tracking_uri,
        experiment_id=experiment_id,
        parent_run_id=parent,
        state_path=str(tmp_path / tracking.STATE_FILE),
        trial_params=trial_params,
        trial_artifacts=trial_artifacts,
    )
    pickled = pickle.dumps(callback)
    first = pickle.loads(pickled)
    first.setup()
    running, paused, done = FakeTrial("t1"), FakeTrial("t2"), FakeTrial("t3")
    for trial in (running, paused, done):
        first.on_trial_start(0, [], trial)
        first.on_trial_result(0, [], trial, result(1))
    done.status = "TERMINATED"
    first.on_trial_complete(0, [], done)
    # Ctrl-C: Tune stops the running trials, marking them TERMINATED without on_trial_complete
    running.status, paused.status = "TERMINATED", "PAUSED"
    first.on_experiment_end([running, paused, done])
    runs = first.state.runs
    status = {t: client.get_run(runs[t]).info.status for t in runs}
    assert status == {"t1": "KILLED", "t2": "KILLED", "t3": "FINISHED"}
    second = pickle.loads(pickled)
    second.setup()
    for trial in (running, paused):
        trial.status = "RUNNING"
        second.on_trial_start(0, [], trial)
    second.writer.drain()
    assert {client.get_run(runs[t]).info.status for t in ("t1", "t2")} == {"RUNNING"}


def _create_store(uri: str, barrier: Any, outcome: Any) -> None:
    from auxtune.platform.tracking.lifecycle import prepare_store

    barrier.wait()
    try:
        prepare_store(tracking.TrackingTarget(uri, None))
        outcome.put("ok")
    except Exception as err:  # the race this test is about
        outcome.put(repr(err)[:200])


def test_concurrent_drivers_create_the_schema_once(tmp_path: Path) -> None:
    """Without the lock, 3 of 3 attempts here had one process fail with ``duplicate column
    name: step`` (both run MLflow's migrations at once)."""
    import mlflow.store.tracking.sqlalchemy_store  # noqa: F401  (imported once, before forking)

    context = multiprocessing.get_context("fork")
    barrier, outcome = context.Barrier(3), context.Queue()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    workers = [context.Process(target=_create_store, args=(uri, barrier, outcome)) for _ in "abc"]
    for worker in workers:
        worker.start()
    outcomes = [outcome.get(timeout=300) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
    assert outcomes == ["ok", "ok", "ok"]
    client = tracking.client(uri)
    assert client.search_experiments()  # a usable store


def test_a_failure_right_after_a_run_opened_does_not_leave_it_running(
    store: tuple[Any, str, str],
) -> None:
    from auxtune.platform.tracking.lifecycle import open_run

    client, experiment_id, _ = store
    refused = pytest.raises(Exception, match="Invalid value")  # the store refuses the params
    with refused, open_run(client, experiment_id, run_name="bad", tags={}, params={"a?b": "1"}):
        pass
    (bad,) = client.search_runs([experiment_id], filter_string="attributes.run_name = 'bad'")
    assert bad.info.status == "FAILED"


@pytest.mark.parametrize(
    ("error", "status"),
    [(OSError, "FAILED"), (KeyboardInterrupt, "KILLED"), (SystemExit, "KILLED")],
)
def test_a_failed_block_ends_its_run_and_the_runs_under_it(
    store: tuple[Any, str, str], error: type[BaseException], status: str
) -> None:
    from auxtune.platform.tracking.lifecycle import open_run

    client, experiment_id, _ = store
    with pytest.raises(error), open_run(client, experiment_id, run_name="p", tags={}) as run_id:
        child = client.create_run(experiment_id, tags={tracking.PARENT_TAG: run_id})
        grandchild = client.create_run(experiment_id, tags={tracking.PARENT_TAG: child.info.run_id})
        done = client.create_run(experiment_id, tags={tracking.PARENT_TAG: run_id})
        client.set_terminated(done.info.run_id, "FINISHED")
        raise error("disk full")
    for found in (run_id, child.info.run_id, grandchild.info.run_id):
        assert client.get_run(found).info.status == status
    assert client.get_run(done.info.run_id).info.status == "FINISHED"
