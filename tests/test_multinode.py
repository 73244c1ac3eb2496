"""A search on a three-node Ray cluster survives losing a worker node mid-search.

One machine plays the cluster (``ray.cluster_utils.Cluster``): a head with no CPUs (like
``cluster.yaml``'s head: it runs the driver, never a trial) and two workers of 2 CPUs. Four trials
ask for 1 CPU each, so each worker runs exactly two. Once every trial has persisted two
per-epoch checkpoints, a thread removes one worker (all its processes are killed, as when a spot
node is reclaimed). The search must still finish every trial, the lost ones resumed on the other
worker from a checkpoint (epoch > 0), and MLflow -- written only by the driver's Tune callback,
never from the trial nodes -- must hold exactly one complete run per trial. Results storage is a
temporary directory, which all "nodes" of this one-machine cluster share.

The corrupted test set every trial evaluates at its end lives only under that shared storage:
the driver stages it there as Parquet (forced for this tiny set by a zero size threshold) and then
deletes ``data.corruptions_dir``, before any trial starts. All nodes here see one filesystem, so
a trial that opened the original directory would find it on any node; deleting it makes such a
trial fail, and the search fail with it. Trials on worker nodes must still report c15/c19.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ray import tune

from auxtune.data.staging import STAGING_DIR

pytestmark = [pytest.mark.slow, pytest.mark.integration]

TRIALS = 4
EPOCHS = 4
WORKER_CPUS = 2  # each trial asks 1 CPU (search.cpus_per_trial): two per worker
NAME = "multinode"
# Kill once every trial has persisted this many epochs. Tune registers a checkpoint with the driver
# one round trip after the worker persisted it, so a node lost in between costs that epoch too: a
# trial killed here restores from epoch >= KILL_AFTER_EPOCH - 1 >= 1, never from scratch.
KILL_AFTER_EPOCH = 2
KILL_DEADLINE_S = 240.0


class NodeKiller(threading.Thread):
    """Removes ``victim`` once every trial of the search has persisted a checkpoint. Polling the
    shared storage is waiting for a condition, not for a time."""

    def __init__(self, cluster: Any, victim: Any, trials_dir: Path) -> None:
        super().__init__(daemon=True)
        self.cluster, self.victim, self.trials_dir = cluster, victim, trials_dir
        self.killed_at_epochs: dict[str, int] = {}  # trial dir -> newest checkpointed epoch
        self.error: BaseException | None = None
        self.done = threading.Event()

    def run(self) -> None:
        try:
            deadline = time.monotonic() + KILL_DEADLINE_S
            while time.monotonic() < deadline and not self.done.is_set():
                epochs = self._checkpointed_epochs()
                if len(epochs) == TRIALS and min(epochs.values()) >= KILL_AFTER_EPOCH:
                    self.killed_at_epochs = epochs
                    self.cluster.remove_node(self.victim)
                    return
                self.done.wait(0.1)
            raise TimeoutError(f"no trial checkpoints under {self.trials_dir} in time")
        except BaseException as err:  # surfaced by the test
            self.error = err

    def _checkpointed_epochs(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for info in self.trials_dir.glob("*/checkpoint_*/trial.json"):
            try:
                epoch = int(json.loads(info.read_text())["epoch"])
            except (OSError, ValueError):  # being written, or just pruned (num_to_keep)
                continue
            found[info.parent.parent.name] = max(found.get(info.parent.parent.name, 0), epoch)
        return found


@pytest.fixture
def cluster() -> Iterator[tuple[Any, list[Any]]]:
    # conftest.py sets RAY_AUTH_MODE=disabled: a throwaway local cluster needs no token file
    import ray
    from ray.cluster_utils import Cluster

    # run_search reuses an initialised Ray whatever the address: it must be this cluster's
    assert not ray.is_initialized(), "an earlier test left Ray initialised"
    cluster = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False}
    )
    try:
        workers = [cluster.add_node(num_cpus=WORKER_CPUS) for _ in range(2)]
        cluster.wait_for_nodes()
        yield cluster, workers
    finally:
        ray.shutdown()  # run_search shuts down the Ray it connected; this covers a failed test
        cluster.shutdown()


def tiny_experiment(tmp_path: Path) -> Any:
    from auxtune.platform.config import load_experiment

    settings = [
        f"name={NAME}",
        "model.depth=10",
        "model.widen_factor=1",
        "model.base_width=4",
        "tasks.decoder_width=8",
        "data.num_train=320",
        "data.num_val=64",
        "data.num_test=32",
        "data.holdout=0",
        "data.c_images_per_block=8",
        f"data.data_dir={tmp_path / 'data'}",
        f"optim.epochs={EPOCHS}",
        "optim.batch_size=32",
        "search.grid=[0.0,0.25,0.5,1.0]",  # `fixed`: 4 trials, FIFO, none stopped early
        "search.cpus_per_trial=1",
        "search.max_failures=2",
        f"tracking.workdir={tmp_path / 'work'}",
        f"tracking.storage={tmp_path / 'shared'}",
    ]
    exp = load_experiment(None, settings)
    corrupted = stand_in_corrupted_test_set(exp.data, tmp_path / "corrupted")
    return load_experiment(None, [*settings, f"data.corruptions_dir={corrupted}"])


def prepare_from_shared_storage(exp: Any, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Make run_search's ``prepare_trial_data(train_cfg)`` stage the corrupted set under
    ``tracking.storage`` (what the call passes once wired: ``storage=exp.tracking.storage``) even
    though it is tiny, then delete ``data.corruptions_dir``. Returns the staged URIs."""
    from auxtune.trainables import data as trial_data

    prepare, staged = trial_data.prepare_trial_data, []

    def prepare_then_delete(cfg: Any, **kwargs: Any) -> Any:
        data = prepare(cfg, storage=exp.tracking.storage, max_materialized_bytes=0)
        staged.append(data.corrupted_test.blocks.uri)
        shutil.rmtree(cfg.data.corruptions_dir)
        return data

    monkeypatch.setattr(trial_data, "prepare_trial_data", prepare_then_delete)
    return staged


def stand_in_corrupted_test_set(data: Any, root: Path) -> Path:
    """The clean test split filed under every corruption name, in the CIFAR-C layout: trials
    evaluate c15/c19 at their end as usual, without the driver spending most of the test making
    real corruptions (their math is tested elsewhere; here only the plumbing across nodes counts)."""
    import numpy as np

    from auxtune.data.cifar_c import SEVERITIES, write_corruption, write_labels
    from auxtune.data.corruptions import CORRUPTIONS
    from auxtune.data.datasets import load_dataset

    test = load_dataset(data).test
    root.mkdir(parents=True)
    write_labels(root, test.labels)
    for name in CORRUPTIONS:
        write_corruption(root, name, np.concatenate([test.images] * len(SEVERITIES)))
    return root


class ResultLog(tune.Callback):
    """Every result as the driver receives it: trial id -> [{epoch, training_iteration, node_id}]."""

    def __init__(self) -> None:
        self.rows: dict[str, list[dict[str, Any]]] = {}

    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
    ) -> None:
        keys = ("epoch", "training_iteration", "node_id")
        self.rows.setdefault(trial.trial_id, []).append({k: result[k] for k in keys})


def test_search_survives_losing_a_worker_node(
    cluster: tuple[Any, list[Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow import MlflowClient

    from auxtune.platform import search

    ray_cluster, workers = cluster
    results = ResultLog()
    monkeypatch.setattr(search, "EXTRA_CALLBACKS", [results])
    victim = workers[0]
    exp = tiny_experiment(tmp_path)
    staged = prepare_from_shared_storage(exp, monkeypatch)
    killer = NodeKiller(ray_cluster, victim, tmp_path / "shared" / NAME)
    killer.start()
    start = time.perf_counter()
    try:
        result = search.run_search(
            exp, "fixed", address=ray_cluster.address, search_name=NAME, verbose=1
        )
    finally:
        killer.done.set()
        killer.join()
    elapsed = time.perf_counter() - start
    assert killer.error is None, killer.error
    print(
        f"\nsearch took {elapsed:.1f}s; removed node {victim.node_id[:8]} at {killer.killed_at_epochs}"
    )

    # every trial finished; a lost node cost each of its trials at most one re-run epoch
    assert len(result.trials) == TRIALS
    assert {t.status for t in result.trials} == {"TERMINATED"}, [t.error for t in result.trials]
    assert all(t.metrics["epoch"] == EPOCHS for t in result.trials)
    assert all(t.epochs == EPOCHS for t in result.trials)  # replayed epochs are not counted twice
    assert Path(result.results_path) == (tmp_path / "shared" / NAME).resolve()

    # every result as the driver received it, with the node it ran on (not the trials' own
    # result.json: Tune rewrites it from the checkpoint a lost trial restores, and a result the
    # dead node had not yet flushed there is missing from it)
    rows = results.rows
    assert sorted(rows) == sorted(t.trial_id for t in result.trials)
    first_nodes = {r[0]["node_id"] for r in rows.values()}
    assert first_nodes == {w.node_id for w in workers}, "trials did not spread over both workers"
    moved = {
        tid: r
        for tid, r in rows.items()
        if r[0]["node_id"] == victim.node_id and r[-1]["node_id"] != victim.node_id
    }
    assert moved, "no trial was running on the removed node"
    for trial_id, trial_rows in moved.items():
        epochs = [int(r["epoch"]) for r in trial_rows]
        assert sorted(set(epochs)) == list(range(1, EPOCHS + 1)), (trial_id, epochs)
        assert len(epochs) - len(set(epochs)) <= 1, (trial_id, epochs)  # at most one epoch re-run
        resumed = next(r for r in trial_rows if r["node_id"] != victim.node_id)
        assert resumed["epoch"] >= KILL_AFTER_EPOCH, f"{trial_id} restarted from scratch: {epochs}"
        assert resumed["training_iteration"] == resumed["epoch"]  # Tune's count restored as well
        summary = next(t for t in result.trials if t.trial_id == trial_id)
        assert summary.node_id == trial_rows[-1]["node_id"]

    # MLflow, written by the driver only: one finished run per trial with every epoch's metrics
    client = MlflowClient(tracking_uri=result.tracking_uri)
    experiment = client.get_experiment_by_name(result.experiment_name)
    runs = client.search_runs(
        [experiment.experiment_id], filter_string="tags.`auxtune.kind` = 'trial'"
    )
    assert sorted(r.data.tags["ray.trial_id"] for r in runs) == sorted(rows)
    for run in runs:
        assert run.info.status == "FINISHED"
        assert run.data.tags["mlflow.parentRunId"] == result.parent_run_id
        received = len(rows[run.data.tags["ray.trial_id"]])  # a re-run epoch is a result too
        for key in ("val_accuracy", "val_corrupt_accuracy", "loss/main", "lambda/rotation"):
            steps = sorted(m.step for m in client.get_metric_history(run.info.run_id, key))
            assert steps == list(range(1, received + 1)), (
                run.data.tags["ray.trial_id"],
                key,
                steps,
            )
        assert "c15_accuracy" in run.data.metrics

    # the trials evaluated the staged copy: the only one, under the shared storage
    assert not Path(exp.data.corruptions_dir).exists()
    assert len(staged) == 1 and Path(staged[0]).parent == tmp_path / "shared" / STAGING_DIR
    for trial in result.trials:
        assert {"c15_accuracy", "c19_accuracy"} <= set(trial.metrics), trial.metrics
        assert trial.metrics["c/fog"] == trial.metrics["c/snow"]  # same stand-in images
