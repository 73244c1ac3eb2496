"""``auxtune ui``: the MLflow UI on this machine, against the project's tracking store.

``mlflow ui`` starts uvicorn, a job runner and huey consumers (about ten processes, ~2 GB). They
run in a session of their own, and Ctrl-C, SIGTERM or SIGHUP to ``auxtune ui`` stops all of them
(the group, and any descendant that started a session of its own) before it exits: a supervisor's
``kill`` leaves no server holding the port. A busy port or a store MLflow cannot read is refused
in one line before anything starts; MLflow's usage telemetry is off unless the environment turns
it on (``MLFLOW_DISABLE_TELEMETRY=false``).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from auxtune.errors import UserError

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
GRACE_S = 10.0  # how long the server's processes get to exit after SIGTERM before SIGKILL


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "ui",
        help="browse searches in the MLflow UI",
        description="Start the MLflow UI on the project's tracking store (Ctrl-C stops it).",
    )
    parser.add_argument("--config", help="experiment YAML (for tracking.workdir / tracking_uri)")
    parser.add_argument("--port", type=int, default=5000, help="port (default 5000)")
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="interface (default 127.0.0.1: this machine only; any other serves the UI, "
        "without login, to the network)",
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="server processes (default 1: a local UI)"
    )
    parser.add_argument(
        "--tracking-uri", help="store to browse (default sqlite:///<workdir>/mlflow.db)"
    )
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    parser.set_defaults(run=run)


def command(
    uri: str, artifact_root: str | None, host: str, port: int, workers: int = 1
) -> list[str]:
    """The ``mlflow ui`` command line (mlflow from this interpreter's environment)."""
    exe = Path(sys.executable).with_name("mlflow")
    cmd = [str(exe) if exe.exists() else (shutil.which("mlflow") or "mlflow"), "ui"]
    cmd += ["--backend-store-uri", uri, "--host", host, "--port", str(port)]
    cmd += ["--workers", str(workers)]
    if artifact_root:
        cmd += ["--default-artifact-root", Path(artifact_root).as_uri()]
    return cmd


def run(args: argparse.Namespace) -> int:
    from auxtune.platform import tracking
    from auxtune.platform.config import load_experiment
    from auxtune.platform.tracking.lifecycle import prepare_store

    exp = load_experiment(args.config, args.overrides)
    if not 0 < args.port < 65536:
        raise UserError(f"--port {args.port} is not a TCP port (1-65535)")
    if args.workers < 1:
        raise UserError(f"--workers {args.workers} must be >= 1")
    uri = args.tracking_uri or exp.tracking.tracking_uri
    if uri and uri.startswith(("http://", "https://")):
        raise UserError(f"{uri} is a tracking server already: open it in a browser")
    target = tracking.resolve_tracking(exp.tracking.workdir, uri)
    check_port_free(args.host, args.port)  # before anything creates a file
    db = target.uri.removeprefix("sqlite:///")
    if target.uri.startswith("sqlite:///") and not check_sqlite_store(Path(db)):
        print(f"note: {db} does not exist yet; run `auxtune search` first", file=sys.stderr)
    # the schema made once, under the lock searches take: a search starting now cannot race it
    prepare_store(target)
    warning = exposure_warning(args.host, args.port)
    if warning:
        print(warning, file=sys.stderr)
    cmd = command(target.uri, target.artifact_root, args.host, args.port, args.workers)
    print(
        f"MLflow UI on http://{args.host}:{args.port} (store {target.uri}); Ctrl-C stops it",
        flush=True,
    )
    code = serve(cmd, ui_environment(os.environ))
    if code not in (0, None):
        raise UserError(f"the MLflow server exited with code {code} (its messages are above)")
    return 0


# ------------------------------------------------------------------------------ checks
def check_port_free(host: str, port: int) -> None:
    """Refuse a port something already listens on (``mlflow ui`` would only say so in its log and
    exit 0). Binds the way uvicorn does (SO_REUSEADDR), so a port in TIME_WAIT still passes."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror:
        raise UserError(f"--host {host} is not a name or address of this machine") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                raise UserError(
                    f"port {port} on {host} is already in use (another MLflow UI?); stop it or "
                    "pick a free one with --port"
                ) from None
            raise UserError(f"--host {host} --port {port}: {err.strerror or err}") from None


def check_sqlite_store(path: Path) -> bool:
    """True when ``path`` is a SQLite database MLflow can open, False when it does not exist yet
    (MLflow creates it); anything else is refused in one line."""
    import sqlite3

    if path.is_dir():
        raise UserError(f"tracking store {path} is a directory, not an MLflow SQLite database")
    if not path.exists():
        return False
    try:
        with contextlib.closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)) as db:
            tables = {row[0] for row in db.execute("select name from sqlite_master")}
    except sqlite3.Error as err:
        raise UserError(f"tracking store {path} cannot be read: {err}") from None
    if tables and not {"experiments", "runs"} <= tables:
        raise UserError(
            f"tracking store {path} is a SQLite database but not an MLflow store (it has no "
            "experiments and runs tables)"
        )
    return True


def exposure_warning(host: str, port: int) -> str | None:
    """A warning when ``host`` serves beyond this machine (None for loopback).

    >>> exposure_warning("127.0.0.1", 5000) is None
    True
    """
    if host == "localhost":
        return None
    try:
        if ipaddress.ip_address(host).is_loopback:
            return None
    except ValueError:
        pass  # a host name: assume it resolves to an interface others can reach
    return (
        f"warning: --host {host} serves this MLflow UI to the network without any login: "
        f"anyone who reaches port {port} can read and change every run and artifact; keep "
        f"127.0.0.1 and browse from elsewhere through `ssh -L {port}:127.0.0.1:{port} THIS_HOST`"
    )


def ui_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The server's environment: ``environ`` with MLflow's usage telemetry off, unless the user
    set ``MLFLOW_DISABLE_TELEMETRY`` themselves (``false`` turns it back on)."""
    return {"MLFLOW_DISABLE_TELEMETRY": "true", **environ}


# ------------------------------------------------------------------------------ serving
class _Stop(Exception):
    """A stop signal arrived."""


def serve(cmd: list[str], env: Mapping[str, str]) -> int | None:
    """Run ``cmd`` in a session of its own until it exits or a stop signal arrives; then stop
    every process it started. Returns its exit code, or None when a signal stopped it."""

    def stop(signum: int, _frame: Any) -> None:
        raise _Stop(signum)

    previous = {signum: signal.signal(signum, stop) for signum in STOP_SIGNALS}
    try:
        try:
            server = subprocess.Popen(cmd, env=dict(env), start_new_session=True)
        except FileNotFoundError:
            raise UserError("the mlflow command is not installed in this environment") from None
        try:
            return server.wait()
        except _Stop:
            return None
        finally:
            for signum in STOP_SIGNALS:  # a second Ctrl-C must not cut the clean-up short
                signal.signal(signum, signal.SIG_IGN)
            stop_process_tree(server)
    except _Stop:  # arrived before the server started
        return None
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def stop_process_tree(server: subprocess.Popen[Any], grace_s: float = GRACE_S) -> None:
    """SIGTERM ``server``'s process group and every descendant (MLflow starts job processes in
    sessions of their own), SIGKILL what is left after ``grace_s``, and reap ``server``."""
    import psutil

    try:
        descendants = psutil.Process(server.pid).children(recursive=True)
    except psutil.NoSuchProcess:  # the server exited: its group may still hold workers
        descendants = []
    for signum, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        _signal_group(server.pid, signum)
        for process in descendants:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.send_signal(signum)
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.wait(timeout=wait_s)
        _, descendants = psutil.wait_procs(descendants, timeout=wait_s)
        if server.poll() is not None and not descendants:
            return
    server.wait()


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # the group is gone
        os.killpg(pgid, signum)
