"""Tracking helpers without Ray: store resolution, probes, batching, state files, artifacts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from auxtune.errors import UserError
from auxtune.platform import tracking


def test_default_store_is_sqlite_in_the_workdir(tmp_path: Path) -> None:
    target = tracking.resolve_tracking(tmp_path / "runs")
    assert target.uri == f"sqlite:///{tmp_path}/runs/mlflow.db"
    assert target.artifact_root == str(tmp_path / "runs" / "mlartifacts") and target.is_local
    server = tracking.resolve_tracking(tmp_path, "http://127.0.0.1:5000/")
    assert server.uri == "http://127.0.0.1:5000" and server.artifact_root is None


def test_relative_workdir_becomes_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert tracking.resolve_tracking("runs").uri == f"sqlite:///{tmp_path}/runs/mlflow.db"


def test_unreachable_server_is_one_line(tmp_path: Path) -> None:
    target = tracking.resolve_tracking(tmp_path, "http://127.0.0.1:1")
    with pytest.raises(UserError, match="cannot reach the MLflow tracking server") as info:
        tracking.check_reachable(target, timeout=2)
    assert "\n" not in str(info.value)


def test_sqlite_directory_is_checked_then_created_on_first_use(tmp_path: Path) -> None:
    target = tracking.resolve_tracking(tmp_path / "a" / "b")
    tracking.check_reachable(target)
    assert not (tmp_path / "a").exists()  # a check leaves nothing behind
    tracking.client(target.uri).search_experiments(max_results=1)
    assert (tmp_path / "a" / "b" / "mlflow.db").is_file()


def test_unwritable_sqlite_directory_is_one_line() -> None:
    with pytest.raises(UserError, match="MLflow store directory"):
        tracking.check_reachable(tracking.resolve_tracking("/proc/nowhere"))


def test_error_line_picks_the_exception() -> None:
    text = (
        'Traceback (most recent call last):\n  File "x.py", line 1\n'
        "ray.exceptions.RayTaskError(DivergenceError): boom\n"
        "auxtune.robust.trainer.DivergenceError: training diverged in epoch 1: main loss is nan\n"
    )
    assert tracking.error_line(text).startswith("auxtune.robust.trainer.DivergenceError: training")
    assert tracking.error_line("") == ""


def test_numeric_metrics_drop_tune_bookkeeping() -> None:
    result = {
        "loss/main": 1.5,
        "epoch": 2,
        "trial_id": "x",
        "done": False,
        "pid": 3,
        "restored_from": "y",
        "bad": float("nan"),
        "flag": True,
    }
    assert tracking.numeric_metrics(result) == {"loss/main": 1.5, "epoch": 2.0}


def test_as_params_flattens_and_truncates() -> None:
    params = tracking.as_params(
        {"optim": {"lr": 0.1}, "tasks": {"names": ["a", "b"]}, "x": "y" * 7000}
    )
    assert params["optim.lr"] == "0.1" and params["tasks.names"] == '["a", "b"]'
    assert len(params["x"]) == tracking.MAX_PARAM_CHARS


class FakeClient:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def log_batch(self, run_id: str, metrics: Any = (), params: Any = (), tags: Any = ()) -> None:
        self.calls.append({"metrics": list(metrics), "params": list(params), "tags": list(tags)})


def test_log_batch_respects_mlflow_limits() -> None:
    client = FakeClient()
    tracking.log_batch(
        client,
        "r",
        metrics={f"m{i}": 1.0 for i in range(1500)},
        params={f"p{i}": "v" for i in range(150)},
        step=3,
    )
    assert len(client.calls) == 2
    assert [len(c["metrics"]) for c in client.calls] == [1000, 500]
    assert [len(c["params"]) for c in client.calls] == [100, 50]
    assert client.calls[0]["metrics"][0].step == 3


def test_state_file_and_history(tmp_path: Path) -> None:
    state = tracking.SearchState(tmp_path / tracking.STATE_FILE)
    state.runs["t1"] = "run1"
    state.save()
    state.append_history({"trial_id": "t1", "step": 1, "lambda/rotation": 0.5})
    state.append_history({"trial_id": "t2", "step": 1, "lambda/rotation": 0.2})
    state.append_history(
        {"trial_id": "t1", "step": 2, "lambda/rotation": 0.6, "restored_from": "t2"}
    )
    again = tracking.SearchState(tmp_path / tracking.STATE_FILE)
    assert again.runs == {"t1": "run1"}
    histories = again.histories()
    assert [r["step"] for r in histories["t1"]] == [1, 2]
    assert histories["t1"][1]["restored_from"] == "t2"


def test_replayed_results_are_rewound() -> None:
    rows: list[dict[str, Any]] = []
    for it in (1, 2, 3):
        tracking.add_row(rows, {"training_iteration": it})
    tracking.add_row(rows, {"training_iteration": 3})  # resumed from the checkpoint of result 2
    assert [r["training_iteration"] for r in rows] == [1, 2, 3]
    tracking.add_row(rows, {"training_iteration": 2, "restored_from": "t2"})  # PBT: kept
    tracking.add_row(rows, {"training_iteration": 3})
    assert [r["training_iteration"] for r in rows] == [1, 2, 3, 2, 3]


def test_lambda_trajectory_svg() -> None:
    import xml.etree.ElementTree as ET

    from auxtune.platform.svg import Layout, lambda_trajectory_svg, nice_ticks

    rows = [
        {"lambda/rotation": 0.5, "lambda/jigsaw": 1.0},
        {"lambda/rotation": 0.6, "lambda/jigsaw": 1.2, "restored_from": "x"},
        {"lambda/rotation": 0.65, "lambda/jigsaw": 1.1},
    ]
    root = ET.fromstring(lambda_trajectory_svg(rows, "rotation<0.5 & jigsaw"))  # well-formed XML
    ns = "{http://www.w3.org/2000/svg}"
    lines = root.findall(f"{ns}polyline")
    assert len(lines) == 2  # one per task, three points each
    assert all(len(line.get("points", "").split()) == 3 for line in lines)
    texts = [t.text for t in root.iter(f"{ns}text")]
    assert "rotation<0.5 & jigsaw" in texts and {"rotation", "jigsaw"} <= set(texts)
    dashed = [e for e in root.iter(f"{ns}line") if e.get("stroke-dasharray")]
    assert len(dashed) == 1  # the PBT exploit at the second result
    assert nice_ticks(0.5, 1.2) == [0.4, 0.6, 0.8, 1.0, 1.2]
    assert nice_ticks(1.0, 1.0) == [1.0, 1.2, 1.4, 1.6, 1.8, 2.0]  # a flat line gets an axis too
    lambda_trajectory_svg([], "empty")  # a trial that failed before its first result
    long = ET.fromstring(lambda_trajectory_svg([{"lambda/rotation": 0.5}] * 100, "100 epochs"))
    box = Layout.of("100 epochs", ["rotation"])
    axis_y = f"{box.plot_y + box.plot_h + 16:g}"
    x_labels = [e.text for e in long.iter(f"{ns}text") if e.get("y") == axis_y]
    assert x_labels == ["20", "40", "60", "80", "100"]  # results count from 1: no tick at 0


def test_callback_pickles_without_live_state(tmp_path: Path) -> None:
    import pickle

    callback = tracking.MlflowTrialCallback(
        tracking_uri=f"sqlite:///{tmp_path}/mlflow.db",
        experiment_id="1",
        parent_run_id="p",
        state_path=str(tmp_path / tracking.STATE_FILE),
        trial_params=dict,
        trial_artifacts=dict,
    )
    callback.state.data["logging_s"] = 1.0
    copy = pickle.loads(pickle.dumps(callback))
    assert copy.parent_run_id == "p" and copy._state is None and copy._writer is None
