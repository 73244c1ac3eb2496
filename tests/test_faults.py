"""Faults, fast: a restored PBT population meets again, the ledger survives a killed writer,
MLflow gets exactly the rows it lacks, concurrent searches get their own directories.

No Ray cluster and no MLflow store here (``test_faults_e2e.py`` runs the real scenarios).
"""

from __future__ import annotations

import math
import multiprocessing
import os
from pathlib import Path
from typing import Any

import pytest

from auxtune.errors import UserError
from auxtune.platform import tracking
from auxtune.platform.config import load_experiment
from auxtune.platform.locks import try_lock
from auxtune.platform.tracking import recovery
from auxtune.platform.workdir import LOCK_FILE, claim_experiment_dir, experiment_dir


# ------------------------------------------------------------------ PBT after Tuner.restore
class Controller:
    """The part of Tune's controller a PBT scheduler asks about its trials."""

    search_alg = None

    def __init__(self, trials: list[Any]) -> None:
        self.trials = trials

    def get_trials(self) -> list[Any]:
        return self.trials

    def get_live_trials(self) -> list[Any]:
        return [t for t in self.trials if not t.is_finished()]


def population(scheduler: Any) -> Controller:
    """Two trials added to ``scheduler`` (as a fresh search, or a resumed one, starts them)."""
    from ray.tune.experiment import Trial

    trials = [Trial("__fake", config={"lambda": 0.5}, stub=True, trial_id=f"t{i}") for i in (0, 1)]
    controller = Controller(trials)
    for trial in trials:
        scheduler.on_trial_add(controller, trial)
    return controller


def meet(scheduler: Any, controller: Controller, iteration: int) -> None:
    """Every trial runs and reports ``iteration``; synchronous PBT pauses each to wait for the
    population."""
    from ray.tune.experiment import Trial

    for trial in controller.trials:
        trial.set_status(Trial.RUNNING)
    for trial in controller.trials:
        # a NaN score keeps both out of the quantiles: this test is about when they meet
        decision = scheduler.on_trial_result(
            controller, trial, {"training_iteration": iteration, "m": math.nan}
        )
        assert decision == "PAUSE"
        trial.set_status(Trial.PAUSED)


def restored_population(scheduler: Any, iteration: int) -> Controller:
    """A resumed search: the scheduler knows nothing of the trials, which continue from their
    checkpoints and first report ``iteration``."""
    controller = population(scheduler)
    meet(scheduler, controller, iteration)
    return controller


def pbt(cls: Any) -> Any:
    return cls(
        time_attr="training_iteration",
        metric="m",
        mode="max",
        perturbation_interval=1,
        synch=True,
        hyperparam_mutations={"lambda": [0.1, 0.5, 0.9]},
    )


def test_restored_synchronous_pbt_runs_again() -> None:
    """Tune's own PBT chooses no trial after a restore (every trial PAUSED forever); ours does."""
    from ray.tune.schedulers import PopulationBasedTraining

    from auxtune.search_spaces._population import ResumablePB2, ResumablePBT

    stock = pbt(PopulationBasedTraining)
    assert stock.choose_trial_to_run(restored_population(stock, iteration=3)) is None  # the hang
    ours = pbt(ResumablePBT)
    assert ours.choose_trial_to_run(restored_population(ours, iteration=3)) is not None
    bandit = ResumablePB2(
        time_attr="training_iteration",
        metric="m",
        mode="max",
        perturbation_interval=1,
        synch=True,
        hyperparam_bounds={"lambda": [0.0, 1.0]},
    )
    assert bandit.choose_trial_to_run(restored_population(bandit, iteration=3)) is not None


def test_population_meets_every_interval_without_a_restore() -> None:
    """In a search never restored, the fix leaves Tune's meeting points as they are."""
    from ray.tune.schedulers import PopulationBasedTraining

    from auxtune.search_spaces._population import ResumablePBT

    ours, stock = pbt(ResumablePBT), pbt(PopulationBasedTraining)
    ours_trials, stock_trials = population(ours), population(stock)
    for iteration in (1, 2, 3):
        meet(ours, ours_trials, iteration)
        meet(stock, stock_trials, iteration)
        assert ours._next_perturbation_sync == stock._next_perturbation_sync == iteration + 1
        assert ours.choose_trial_to_run(ours_trials) is not None


# ------------------------------------------------------------------------------ the ledger
def test_ledger_skips_the_partial_line_of_a_killed_driver(tmp_path: Path) -> None:
    state = tracking.SearchState(tmp_path / tracking.STATE_FILE)
    state.append_history({"trial_id": "t1", "step": 1, "training_iteration": 1})
    with state.history_path.open("a") as f:
        f.write('{"trial_id": "t1", "step": 2, "traini')  # SIGKILL in the middle of a write
    again = tracking.SearchState(tmp_path / tracking.STATE_FILE)
    assert [r["step"] for r in again.rows()["t1"]] == [1]
    again.append_history({"trial_id": "t1", "step": 2, "training_iteration": 2})
    assert [r["step"] for r in again.rows()["t1"]] == [1, 2]
    assert [r["step"] for r in again.histories()["t1"]] == [1, 2]


def test_rows_keep_every_result_histories_the_final_lineage(tmp_path: Path) -> None:
    state = tracking.SearchState(tmp_path / tracking.STATE_FILE)
    results = [(1, None), (2, None), (3, "t2"), (2, None), (3, None)]  # resumed at result 1
    for step, (iteration, donor) in enumerate(results, start=1):
        row = {"trial_id": "t1", "step": step, "training_iteration": iteration}
        state.append_history(row | ({"restored_from": donor} if donor else {}))
    assert [r["step"] for r in state.rows()["t1"]] == [1, 2, 3, 4, 5]
    lineage = state.histories()["t1"]
    assert [(r["step"], r["training_iteration"]) for r in lineage] == [(1, 1), (4, 2), (5, 3)]


def test_an_exploit_seen_again_replaces_the_first_sighting() -> None:
    """Restored to its donor's checkpoint again (Tune's saved state predates the trial's own
    next checkpoint), a trial reports the same exploit twice: one exploit in its lineage."""
    rows: list[dict[str, Any]] = []
    for row in (
        {"training_iteration": 1},
        {"training_iteration": 2},
        {"training_iteration": 3, "restored_from": "t2"},
        {"training_iteration": 3, "restored_from": "t2", "again": True},
        {"training_iteration": 4},
    ):
        tracking.add_row(rows, row)
    assert [r["training_iteration"] for r in rows] == [1, 2, 3, 4]
    assert rows[2].get("again")
    tracking.add_row(rows, {"training_iteration": 2, "restored_from": "t3"})  # an exploit: kept
    assert [r["training_iteration"] for r in rows] == [1, 2, 3, 4, 2]


# ----------------------------------------------------------------------- MLflow recovery
class FakeClient:
    """Records ``log_batch`` calls; ``get_metric_history`` answers from them."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def log_batch(self, run_id: str, metrics: list, params: list, tags: list) -> None:
        self.calls.append({"run_id": run_id, "metrics": metrics, "params": params, "tags": tags})

    def get_metric_history(self, run_id: str, key: str) -> list[Any]:
        return [
            m for c in self.calls if c["run_id"] == run_id for m in c["metrics"] if m.key == key
        ]


def ledger_row(step: int, metrics: int = 3) -> dict[str, Any]:
    row: dict[str, Any] = {"step": step, "training_iteration": step, recovery.MARKER: 1.0}
    row.update({f"m{i}": float(i) for i in range(metrics)})
    return row


def test_batches_hold_whole_rows_within_mlflows_limit() -> None:
    rows = [ledger_row(step, metrics=299) for step in range(1, 8)]  # 300 metrics a row
    batches = list(recovery.row_batches(rows))
    assert [len(b) for b in batches] == [900, 900, 300]
    for batch in batches:  # a batch ends with a row's marker: no row spans two calls
        assert batch[-1][0] == recovery.MARKER
    huge = list(recovery.row_batches([ledger_row(1, metrics=1500)]))
    assert [len(b) for b in huge] == [1000, 501] and huge[-1][-1][0] == recovery.MARKER


def test_write_missing_writes_each_step_once() -> None:
    client = FakeClient()
    rows = [ledger_row(step) for step in range(1, 6)]
    recovery.write_rows(client, "run", rows[:2], params={"p": "1"})
    assert recovery.write_missing(client, "run", rows) == 3
    assert recovery.write_missing(client, "run", rows) == 0  # nothing twice
    steps = [m.step for m in client.get_metric_history("run", recovery.MARKER)]
    assert sorted(steps) == [1, 2, 3, 4, 5]
    every = [(m.key, m.step) for c in client.calls for m in c["metrics"]]
    assert len(every) == len(set(every)) == 5 * 4
    assert [len(c["params"]) for c in client.calls] == [1, 0]


# ------------------------------------------------------------------- experiment directories
def tiny(workdir: Path) -> Any:
    return load_experiment(None, [f"tracking.workdir={workdir}"])


def test_two_fresh_searches_of_one_name_get_two_directories(tmp_path: Path) -> None:
    exp = tiny(tmp_path)
    first, _ = experiment_dir(exp, "demo", resume=False)
    second, _ = experiment_dir(exp, "demo", resume=False)  # before the first wrote anything
    assert Path(first).name == "demo" and Path(second).name == "demo-2"


def _reserve(workdir: str, barrier: Any, found: Any) -> None:
    barrier.wait()
    exp_dir, _ = experiment_dir(tiny(Path(workdir)), "demo", resume=False)
    found.put(Path(exp_dir).name)


def test_reservations_race_to_distinct_directories(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    barrier, found = context.Barrier(4), context.Queue()
    workers = [
        context.Process(target=_reserve, args=(str(tmp_path), barrier, found)) for _ in range(4)
    ]
    for worker in workers:
        worker.start()
    names = sorted(found.get(timeout=120) for _ in workers)
    for worker in workers:
        worker.join(timeout=60)
    assert names == ["demo", "demo-2", "demo-3", "demo-4"]


def started(exp: Any, leaf: str, *, complete: bool) -> Path:
    home = Path(exp.tracking.workdir) / "ray_results" / leaf
    home.mkdir(parents=True)
    (home / "tuner.pkl").touch()
    state = tracking.SearchState(home / tracking.STATE_FILE)
    state.data["complete"] = complete
    state.save()
    return home


def test_resume_picks_the_newest_unfinished_search_nobody_runs(tmp_path: Path) -> None:
    exp = tiny(tmp_path)
    started(exp, "demo", complete=False)
    running = started(exp, "demo-2", complete=False)
    started(exp, "demo-3", complete=True)
    (Path(exp.tracking.workdir) / "ray_results" / "demo-4").mkdir()  # reserved, never started
    held = try_lock(running / LOCK_FILE)  # another driver runs demo-2
    assert held is not None
    try:
        with claim_experiment_dir(exp, "demo", resume=True) as slot:
            assert Path(slot.exp_dir).name == "demo"
            with claim_experiment_dir(exp, "demo", resume=True) as other:
                assert Path(other.exp_dir).name == "demo-3"  # only a finished one is left
                with pytest.raises(UserError, match="running in another process"):
                    experiment_dir(exp, "demo", resume=True)
    finally:
        os.close(held)
    assert Path(experiment_dir(exp, "demo", resume=True)[0]).name == "demo-2"


def test_a_search_that_failed_before_writing_gives_its_name_back(tmp_path: Path) -> None:
    exp = tiny(tmp_path)
    with pytest.raises(RuntimeError), claim_experiment_dir(exp, "demo", resume=False) as slot:
        assert Path(slot.exp_dir).is_dir()
        raise RuntimeError("bad data")
    assert not Path(slot.exp_dir).exists()
    with claim_experiment_dir(exp, "demo", resume=False) as again:
        Path(again.ledger).write_text("{}")
    assert Path(again.exp_dir) == Path(slot.exp_dir) and Path(again.ledger).is_file()


def test_remote_storage_reserves_its_ledger_locally(tmp_path: Path) -> None:
    exp = load_experiment(
        None, [f"tracking.workdir={tmp_path}", "tracking.storage=s3://bucket/runs"]
    )
    first, ledger = experiment_dir(exp, "demo", resume=False)
    second, _ = experiment_dir(exp, "demo", resume=False)
    assert (first, second) == ("s3://bucket/runs/demo", "s3://bucket/runs/demo-2")
    assert Path(ledger).parent == tmp_path.resolve() / "search_state" / "demo"
