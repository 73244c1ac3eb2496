"""``auxtune ui`` stops everything it started, refuses a busy port or a broken store in one line,
keeps MLflow's telemetry off and warns before serving the network.

The end-to-end tests start the real console script on a free port against a tiny SQLite store,
wait until the server answers, signal the wrapper, and walk the process tree they recorded: no
process of that UI may remain (the MLflow server, uvicorn, its job runner and huey consumers) and
the port must be free again.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from auxtune.platform.commands.ui import exposure_warning, ui_environment

ROOT = Path(__file__).resolve().parents[1]
AUXTUNE = ROOT / ".venv" / "bin" / "auxtune"
START_TIMEOUT_S = 180  # mlflow ui imports a lot; on a loaded 2-core machine it takes a while


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT / "src")}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_is_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def _alive(processes: list[psutil.Process]) -> list[psutil.Process]:
    """Processes still running (a zombie holds no memory or port: it counts as gone)."""
    alive = []
    for process in processes:
        try:
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                alive.append(process)
        except psutil.NoSuchProcess:
            pass
    return alive


@pytest.fixture
def store(tmp_path) -> str:
    """A tiny MLflow store: one experiment with one run."""
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.MlflowClient(tracking_uri=uri)
    run = client.create_run(client.create_experiment("tiny"))
    client.log_metric(run.info.run_id, "accuracy", 0.5)
    client.set_terminated(run.info.run_id)
    return uri


# --------------------------------------------------------------------------- end to end (slow)
@pytest.mark.slow
@pytest.mark.parametrize(
    "signals",
    [(signal.SIGTERM,), (signal.SIGINT,), (signal.SIGINT, signal.SIGINT)],
    ids=["SIGTERM", "SIGINT", "SIGINT-twice"],
)
def test_a_signal_stops_the_server_and_all_its_workers(tmp_path, store, signals):
    port = _free_port()
    log = (tmp_path / "ui.log").open("w")
    ui = subprocess.Popen(
        [str(AUXTUNE), "ui", "--port", str(port), "--tracking-uri", store],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=_env(),
        cwd=tmp_path,
    )
    tree: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _answers(port):
            assert ui.poll() is None, (tmp_path / "ui.log").read_text()
            assert time.monotonic() < deadline, "the UI did not answer in time"
            time.sleep(1)
        tree = psutil.Process(ui.pid).children(recursive=True)
        assert len(tree) >= 2, "expected the MLflow server and its workers"
        server_env = [p.environ() for p in tree]
        assert all(env.get("MLFLOW_DISABLE_TELEMETRY") == "true" for env in server_env)

        for signum in signals:  # a second Ctrl-C while it stops must not cut the clean-up
            ui.send_signal(signum)
            time.sleep(0.5)
        assert ui.wait(timeout=60) == 0, (tmp_path / "ui.log").read_text()
        left = _alive(tree)
        assert left == [], f"still running after {signals}: {[p.cmdline() for p in left]}"
        assert _port_is_free(port)
    finally:
        for process in _alive([*tree, psutil.Process(ui.pid)] if ui.poll() is None else tree):
            process.kill()
        log.close()


# ------------------------------------------------------------------------- refusals (no server)
def _run_ui(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(AUXTUNE), "ui", *args, f"tracking.workdir={tmp_path}"],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=tmp_path,
        timeout=120,
    )


def test_a_port_in_use_is_one_line_and_exit_2(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = _run_ui(tmp_path, "--port", str(port))
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and f"port {port}" in lines[0] and "in use" in lines[0], done.stderr


@pytest.mark.parametrize("kind", ["garbage", "directory", "foreign-sqlite"])
def test_an_unreadable_store_is_one_line_and_exit_2(tmp_path, kind):
    import sqlite3

    db = tmp_path / "store.db"
    if kind == "garbage":
        db.write_bytes(bytes(range(256)) * 8)
    elif kind == "directory":
        db.mkdir()
    else:  # a SQLite database, but not MLflow's
        with sqlite3.connect(db) as connection:
            connection.execute("create table notes (text)")
    done = _run_ui(tmp_path, "--port", str(_free_port()), "--tracking-uri", f"sqlite:///{db}")
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "store.db" in lines[0] and "Traceback" not in done.stderr


# ------------------------------------------------------------------------------------- units
@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_loopback_hosts_need_no_warning(host):
    assert exposure_warning(host, 5000) is None


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "example.org"])
def test_other_hosts_are_warned_about(host):
    warning = exposure_warning(host, 5000)
    assert warning is not None and warning.startswith("warning: ")
    assert "without any login" in warning and "\n" not in warning


def test_telemetry_is_off_unless_the_user_turns_it_on():
    assert ui_environment({})["MLFLOW_DISABLE_TELEMETRY"] == "true"
    assert (
        ui_environment({"MLFLOW_DISABLE_TELEMETRY": "false"})["MLFLOW_DISABLE_TELEMETRY"] == "false"
    )
    assert ui_environment({"PATH": "/bin"})["PATH"] == "/bin"
