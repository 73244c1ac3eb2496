"""Faults end to end, through the real CLI: a driver killed mid-PBT and resumed, two searches at
once on a fresh workdir, a search that fails after its MLflow parent run opened.

Drivers run as subprocesses in their own session with their own Ray temp directory, so every
process a killed driver leaves (its local Ray: GCS, raylet, agents, workers) can be found by its
session id or that directory and killed by pid. The tests wait for conditions, never for time;
the limits below only bound a hang.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from auxtune.platform import tracking

pytestmark = pytest.mark.slow

START_LIMIT_S = 600  # a driver on this shared machine: start Ray, prepare data, first epochs
RESUME_LIMIT_S = 600  # the resume must finish within this (the bug: it never finished)
EPOCHS = 5

TINY = {
    "model": {"depth": 10, "widen_factor": 1, "base_width": 4},
    "tasks": {"names": ["rotation"], "decoder_width": 8},
    "optim": {"epochs": EPOCHS, "batch_size": 32},
    "data": {"num_train": 128, "num_val": 40, "num_test": 10, "holdout": 32},
    "search": {"num_trials": 2, "perturbation_interval": 1, "grid": [1.0]},
    "runtime": {"device": "cpu"},
    "weighting": {"meta": {"meta_batch_size": 8, "warmup_epochs": 0}},
}


# ---------------------------------------------------------------------------- drivers
class Driver:
    """``auxtune ARGS`` in a new session (its pid is the session id) with its own Ray temp dir."""

    def __init__(self, args: list[str], log: Path) -> None:
        self.ray_tmp = tempfile.mkdtemp(prefix="auxtune-ray-")  # short: Ray's socket paths
        env = {**os.environ, "RAY_TMPDIR": self.ray_tmp, "RAY_AUTH_MODE": "disabled"}
        self.log = log
        with log.open("w") as out:
            self.process = subprocess.Popen(
                ["nice", "-n", "5", sys.executable, "-m", "auxtune.platform.cli", *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )

    def wait(self, limit_s: float) -> int:
        try:
            return self.process.wait(timeout=limit_s)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"driver still running after {limit_s:.0f} s; its output: {self.output()}")

    def output(self) -> str:
        return self.log.read_text()[-4000:]

    def kill(self) -> None:
        """SIGKILL the driver and every process it left, then wait until they are gone."""
        self.process.kill()
        self.process.wait(timeout=60)
        until(lambda: not self._leftovers(kill=True), limit_s=120, what="the driver's Ray to stop")

    def _leftovers(self, kill: bool) -> list[int]:
        pids = [pid for pid in _pids() if self._owns(pid)]
        for pid in pids if kill else ():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return [pid for pid in pids if _alive(pid)]

    def _owns(self, pid: int) -> bool:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            return False
        session = int(stat.rsplit(")", 1)[1].split()[3])
        return session == self.process.pid or self.ray_tmp in cmdline

    def close(self) -> None:
        if self.process.poll() is None:
            self.kill()
        else:
            self._leftovers(kill=True)
        subprocess.run(["rm", "-rf", self.ray_tmp], check=False)


def _pids() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie holds nothing; its parent (gone) will never reap it


def until(condition: Callable[[], Any], limit_s: float, what: str, poll_s: float = 1.0) -> Any:
    """Wait for ``condition()`` to be truthy (polling), failing after ``limit_s``."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(poll_s)
    pytest.fail(f"timed out after {limit_s:.0f} s waiting for {what}")


@pytest.fixture
def drivers(tmp_path: Path) -> Iterator[Callable[..., Driver]]:
    started: list[Driver] = []

    def start(*args: str, log: str = "driver") -> Driver:
        driver = Driver(list(args), tmp_path / f"{log}-{len(started)}.log")
        started.append(driver)
        return driver

    yield start
    for driver in started:
        driver.close()


def config(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    return path


# ------------------------------------------------------------------------------ reading
def tune_state_iterations(exp_dir: Path) -> dict[str, int]:
    """trial id -> training_iteration of its last result in Tune's newest saved experiment
    state (what a resume restores)."""
    files = sorted(exp_dir.glob("experiment_state-*.json"))
    if not files:
        return {}
    try:
        state = json.loads(files[-1].read_text())
    except (OSError, ValueError):  # being written
        return {}
    found = {}
    for trial_json, runtime_json in state["trial_data"]:
        last = json.loads(runtime_json).get("last_result") or {}
        found[json.loads(trial_json)["trial_id"]] = int(last.get("training_iteration") or 0)
    return found


def mlflow_steps(client: Any, run_id: str, key: str) -> list[int]:
    return sorted(int(m.step) for m in client.get_metric_history(run_id, key))


def check_exactly_once(exp_dir: Path, epochs: int = EPOCHS) -> dict[str, int]:
    """Every ledger row of every trial is in MLflow once, at its step; returns rows per trial."""
    state = tracking.SearchState(exp_dir / tracking.STATE_FILE)
    client = tracking.client(state.data["tracking_uri"])
    parent = client.get_run(state.data["parent_run_id"])
    assert parent.info.status == "FINISHED"
    runs = client.search_runs(
        [state.data["experiment_id"]],
        filter_string=f"tags.`{tracking.PARENT_TAG}` = '{parent.info.run_id}'",
    )
    assert sorted(r.data.tags["ray.trial_id"] for r in runs) == sorted(state.runs)  # one each
    rows = state.rows()
    for run in runs:
        trial_rows = rows[run.data.tags["ray.trial_id"]]
        assert run.info.status == "FINISHED"
        wanted = list(range(1, len(trial_rows) + 1))
        assert [int(r["step"]) for r in trial_rows] == wanted
        for key in ("time/iter_s", "epoch", "val_corrupt_accuracy", "lambda/rotation"):
            assert mlflow_steps(client, run.info.run_id, key) == wanted, key
        logged = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "epoch")}
        assert logged == {int(r["step"]): r["epoch"] for r in trial_rows}
    for lineage in state.histories().values():
        assert lineage[-1]["epoch"] == epochs
    return {t: len(r) for t, r in rows.items()}


# ------------------------------------------------------------------------------ scenarios
def test_driver_killed_mid_pbt_resumes_in_bounded_time_exactly_once(
    tmp_path: Path, drivers: Callable[..., Driver]
) -> None:
    workdir = tmp_path / "work"
    args = ["search", "--strategy", "pbt", "--config", str(config(tmp_path))]
    args += [f"tracking.workdir={workdir}", "name=killed"]
    exp_dir = workdir / "ray_results" / "killed-pbt"
    first = drivers(*args, log="first")

    def far_enough() -> bool:
        # Tune's saved state has every trial past its first result: the restored population
        # continues at iteration >= 3, where stock synchronous PBT never meets again
        rows = tracking.SearchState(exp_dir / tracking.STATE_FILE).rows()
        saved = tune_state_iterations(exp_dir)
        if first.process.poll() is not None:
            pytest.fail(f"the driver ended before it was killed: {first.output()}")
        return sum(map(len, rows.values())) >= 4 and len(saved) == 2 and min(saved.values()) >= 2

    until(far_enough, START_LIMIT_S, "two epochs of each trial in Tune's saved state")
    first.kill()
    state = tracking.SearchState(exp_dir / tracking.STATE_FILE)
    client = tracking.client(state.data["tracking_uri"])
    before = {
        t: len(mlflow_steps(client, run_id, "time/iter_s")) for t, run_id in state.runs.items()
    }
    ledger_before = {t: len(r) for t, r in state.rows().items()}
    print(f"killed: ledger rows {ledger_before}, MLflow rows {before}")

    start = time.monotonic()
    resumed = drivers(*args, "--resume", log="resume")
    assert resumed.wait(RESUME_LIMIT_S) == 0, resumed.output()
    print(f"resume finished in {time.monotonic() - start:.0f} s")
    after = check_exactly_once(exp_dir)
    print(f"after resume: ledger rows = MLflow steps per trial {after}")
    assert all(after[t] >= ledger_before[t] for t in ledger_before)


def test_two_searches_at_once_on_a_fresh_workdir(
    tmp_path: Path, drivers: Callable[..., Driver]
) -> None:
    workdir = tmp_path / "shared"  # fresh: no MLflow store, no results yet
    args = ["search", "--strategy", "fixed", "--config", str(config(tmp_path))]
    args += [f"tracking.workdir={workdir}", "name=twin", "optim.epochs=1"]
    start = time.monotonic()
    both = [drivers(*args, log="twin"), drivers(*args, log="twin")]
    codes = [driver.wait(START_LIMIT_S) for driver in both]
    print(f"two searches at once: exit codes {codes} after {time.monotonic() - start:.0f} s")
    assert codes == [0, 0], [d.output() for d in both]
    assert not any("duplicate column" in d.output() for d in both)
    dirs = sorted(p.name for p in (workdir / "ray_results").iterdir())
    assert dirs == ["twin-fixed", "twin-fixed-2"]
    parents = set()
    for name in dirs:
        state = tracking.SearchState(workdir / "ray_results" / name / tracking.STATE_FILE)
        parents.add(state.data["parent_run_id"])
        assert state.data["complete"] is True and len(state.runs) == 1
        client = tracking.client(state.data["tracking_uri"])
        (run_id,) = state.runs.values()
        assert client.get_run(run_id).data.tags[tracking.PARENT_TAG] == state.data["parent_run_id"]
        assert mlflow_steps(client, run_id, "epoch") == [1]
    assert len(parents) == 2  # two searches, two parent runs, nothing overwritten


@pytest.fixture(scope="module")
def local_ray() -> Iterator[Any]:
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_disk_full_after_the_parent_run_opened_leaves_nothing_running(
    tmp_path: Path, local_ray: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ledger's first save after the parent run exists fails (ENOSPC): the parent run ends
    FAILED instead of RUNNING forever."""
    from auxtune.platform.config import load_experiment
    from auxtune.platform.search import SearchError, run_search

    exp = load_experiment(str(config(tmp_path)), [f"tracking.workdir={tmp_path}", "name=full"])
    save = tracking.SearchState.save

    def full_disk(state: tracking.SearchState) -> None:
        if state.data.get("parent_run_id"):
            raise OSError(errno.ENOSPC, "No space left on device")
        save(state)

    monkeypatch.setattr(tracking.SearchState, "save", full_disk)
    with pytest.raises(SearchError, match=r"no space left on the device.*--resume"):
        run_search(exp, "fixed", verbose=0)
    client = tracking.client(tracking.resolve_tracking(tmp_path).uri)
    runs = client.search_runs([client.get_experiment_by_name("full-fixed").experiment_id])
    assert [r.info.status for r in runs] == ["FAILED"]


def test_disk_full_mid_search_stops_in_one_line_and_resumes_exactly_once(
    tmp_path: Path, local_ray: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ledger's third result cannot be written (ENOSPC): the search stops saying how to
    continue, nothing is left RUNNING, and ``--resume`` (space freed) finishes it exactly once."""
    from auxtune.platform.config import load_experiment
    from auxtune.platform.search import SearchError, run_search

    overrides = [f"tracking.workdir={tmp_path}", "name=full", "optim.epochs=3"]
    exp = load_experiment(str(config(tmp_path)), overrides)
    append, written = tracking.SearchState.append_history, []

    def full_disk(state: tracking.SearchState, row: Any) -> None:
        if len(written) == 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(state.history_path))
        append(state, row)
        written.append(row)

    monkeypatch.setattr(tracking.SearchState, "append_history", full_disk)
    with pytest.raises(SearchError, match=r"no space left on the device writing .*history"):
        run_search(exp, "pbt", verbose=0)
    client = tracking.client(tracking.resolve_tracking(tmp_path).uri)
    experiment_id = client.get_experiment_by_name("full-pbt").experiment_id
    statuses = sorted(r.info.status for r in client.search_runs([experiment_id]))
    assert statuses == ["FAILED", "KILLED", "KILLED"]  # the parent and both trials

    monkeypatch.setattr(tracking.SearchState, "append_history", append)  # space freed
    result = run_search(exp, "pbt", resume=True, verbose=0)
    assert {t.status for t in result.trials} == {"TERMINATED"}
    rows = check_exactly_once(Path(result.results_path), epochs=3)
    print(f"disk full after 2 results; resumed: ledger rows per trial {rows}")
