"""``auxtune search`` / ``auxtune ui`` on bad input: one clear line on stderr, exit code 2, fast.

None of these start Ray: every check runs before it (the unreachable address and tracking server
are probed with a short timeout).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from auxtune.platform.cli import main


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    err = capsys.readouterr().err.strip()
    return code, err


def tiny_args(tmp_path: Path) -> list[str]:
    return [
        f"tracking.workdir={tmp_path}",
        f"data.data_dir={tmp_path / 'cache'}",
        "data.num_train=32",
        "optim.batch_size=8",
        "data.num_val=8",
        "data.num_test=4",
        "data.holdout=8",
    ]


def test_unknown_strategy(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, err = run_cli(capsys, "search", "--strategy", "grid", *tiny_args(tmp_path))
    assert code == 2
    assert (
        "unknown search strategy 'grid'" in err and "fixed, random, optuna, pbt, pb2, meta" in err
    )
    assert len(err.splitlines()) == 1


def test_inverted_lambda_range(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    args = ["search.lambda_low=1.0", "search.lambda_high=0.5"]
    code, err = run_cli(capsys, "search", "--strategy", "random", *tiny_args(tmp_path), *args)
    assert code == 2 and "empty or inverted" in err and len(err.splitlines()) == 1


def test_unknown_task(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    args = ["tasks.names=[rotation,sudoku]"]
    code, err = run_cli(capsys, "search", "--strategy", "pbt", *tiny_args(tmp_path), *args)
    assert code == 2 and "unknown task 'sudoku'" in err


def test_unreachable_ray_address(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    start = time.monotonic()
    code, err = run_cli(
        capsys,
        "search",
        "--strategy",
        "fixed",
        "--address",
        "ray://127.0.0.1:1",
        *tiny_args(tmp_path),
    )
    assert code == 2 and "cannot reach the Ray cluster at ray://127.0.0.1:1" in err
    assert time.monotonic() - start < 30


def test_malformed_ray_address(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, err = run_cli(
        capsys, "search", "--strategy", "fixed", "--address", "somewhere", *tiny_args(tmp_path)
    )
    assert code == 2 and "is not auto, ray://HOST:PORT or HOST:PORT" in err


def test_unreachable_tracking_server(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    start = time.monotonic()
    code, err = run_cli(
        capsys,
        "search",
        "--strategy",
        "random",
        "--tracking-uri",
        "http://127.0.0.1:1",
        *tiny_args(tmp_path),
    )
    assert code == 2 and "cannot reach the MLflow tracking server http://127.0.0.1:1" in err
    assert len(err.splitlines()) == 1 and time.monotonic() - start < 30


def test_file_store_refused(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, err = run_cli(
        capsys,
        "search",
        "--strategy",
        "random",
        "--tracking-uri",
        f"file://{tmp_path}/mlruns",
        *tiny_args(tmp_path),
    )
    assert code == 2 and "refuses the file store" in err


def test_resume_without_a_search(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, err = run_cli(capsys, "search", "--strategy", "random", "--resume", *tiny_args(tmp_path))
    assert code == 2 and "nothing to resume" in err


def test_budget_below_one_trial(tmp_path: Path) -> None:
    from auxtune.errors import USER_ERRORS
    from auxtune.platform.config import load_experiment
    from auxtune.platform.search import run_search

    exp = load_experiment(None, [*tiny_args(tmp_path), "optim.epochs=3"])
    with pytest.raises(USER_ERRORS, match="less than one trial"):
        run_search(exp, "random", budget_trial_epochs=2)


def test_multi_node_cluster_needs_shared_storage(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a cluster of several nodes, Tune's default results directory (the driver's disk) cannot
    take the other nodes' checkpoints: the search refuses to start without tracking.storage."""
    import ray

    from auxtune.errors import UserError
    from auxtune.platform.ray_runtime import connect

    alive = [{"NodeID": "head", "Alive": True}, {"NodeID": "worker", "Alive": True}]
    monkeypatch.setattr(ray, "is_initialized", lambda: True)  # an already connected driver
    monkeypatch.setattr(ray, "nodes", lambda: [*alive, {"NodeID": "gone", "Alive": False}])
    with pytest.raises(UserError, match="2 nodes but no shared results storage: pass --storage"):
        connect("auto", None)
    assert connect("auto", "s3://bucket/results") is False  # reused, not started: not shut down
    monkeypatch.setattr(ray, "nodes", lambda: alive[:1])
    assert connect("auto", None) is False  # one node: its own disk is fine


def test_trial_resources_local_and_on_a_cluster(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """This machine's Ray: trials fill the CPUs less one. A cluster: the exact share and no cap on
    concurrency, so pending trials make the autoscaler add nodes (a GPU search may start on a
    cluster with no GPU node yet; locally that is an error). A PBT population runs together."""
    import ray

    from auxtune.errors import UserError
    from auxtune.platform.config import load_experiment
    from auxtune.platform.ray_runtime import TrialResources, trial_resources

    def sized(exp: Any, on_cluster: bool, together: int = 0) -> TrialResources:
        return trial_resources(exp.search, on_cluster, together=together)

    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 2.0})
    exp = load_experiment(None, ["search.cpus_per_trial=1"])
    assert sized(exp, on_cluster=False) == TrialResources({"cpu": 0.5}, 2, 1)
    assert sized(exp, on_cluster=True) == TrialResources({"cpu": 1.0}, None, 1)
    # a population has no cap (every member exists from the start): 2 of 4 train at a time on
    # 2 CPUs, each asking a whole slot; a population that fits runs at once, one CPU still free
    assert sized(exp, on_cluster=False, together=4) == TrialResources({"cpu": 1.0}, None, 1)
    assert sized(exp, on_cluster=False, together=2) == TrialResources({"cpu": 0.5}, None, 1)
    capped = load_experiment(None, ["search.cpus_per_trial=2", "search.max_concurrent=3"])
    assert sized(capped, on_cluster=True) == TrialResources({"cpu": 2.0}, 3, 2)
    assert sized(capped, on_cluster=True, together=4).max_concurrent is None
    gpu = load_experiment(None, ["search.gpus_per_trial=0.25"])
    with pytest.raises(UserError, match="has 0 GPUs"):
        sized(gpu, on_cluster=False)
    assert sized(gpu, on_cluster=True) == TrialResources({"cpu": 1.0, "gpu": 0.25}, None, 1)
    assert "wait until the autoscaler adds GPU nodes" in capsys.readouterr().err
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 8.0, "GPU": 1.0})
    assert sized(gpu, on_cluster=False) == TrialResources({"cpu": 1.0, "gpu": 0.25}, 4, 1)


def test_ui_bad_port(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, err = run_cli(capsys, "ui", "--port", "70000", f"tracking.workdir={tmp_path}")
    assert code == 2 and "is not a TCP port" in err


def test_ui_command_line(tmp_path: Path) -> None:
    from auxtune.platform import tracking
    from auxtune.platform.commands.ui import command

    target = tracking.resolve_tracking(tmp_path)
    cmd = command(target.uri, target.artifact_root, "127.0.0.1", 5001)
    assert cmd[cmd.index("--workers") + 1] == "1"
    assert (
        cmd[1] == "ui"
        and cmd[cmd.index("--backend-store-uri") + 1] == f"sqlite:///{tmp_path}/mlflow.db"
    )
    assert cmd[cmd.index("--default-artifact-root") + 1] == (tmp_path / "mlartifacts").as_uri()
    assert cmd[cmd.index("--host") + 1] == "127.0.0.1" and cmd[cmd.index("--port") + 1] == "5001"


def test_summary_lists_best_failures_and_locations(capsys: pytest.CaptureFixture[str]) -> None:
    from auxtune.platform.commands.search import summary
    from auxtune.platform.search import SearchResult, TrialSummary

    def trial(trial_id: str, status: str, error: str | None = None) -> TrialSummary:
        metrics = {} if error else {"val_corrupt_accuracy": 0.5, "c15_accuracy": 0.4}
        return TrialSummary(
            trial_id, {"lambda/rotation": 0.3}, metrics, [], 2, 1.0, status, error, "run", None
        )

    best, bad = trial("a", "TERMINATED"), trial("b", "ERROR", "DivergenceError: nan")
    result = SearchResult(
        "fixed",
        "demo-fixed",
        "parent",
        best,
        [best, bad],
        2,
        3.0,
        "/r",
        tracking_uri="sqlite:////w/mlflow.db",
    )
    text = summary(result, "val_corrupt_accuracy")
    assert "best trial a: lambda/rotation=0.3" in text and "c15_accuracy=0.4" in text
    assert "failed trial b: DivergenceError: nan" in text
    assert "/r" in text and "sqlite:////w/mlflow.db" in text
    assert "auxtune ui --port 5000 --tracking-uri sqlite:////w/mlflow.db" in text  # not the default
    assert "1 of 2 trials failed" in capsys.readouterr().err
