"""``auxtune ui``: the MLflow UI on this machine, against the project's tracking store."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from auxtune.errors import UserError


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "ui",
        help="browse searches in the MLflow UI",
        description="Start the MLflow UI on the project's tracking store (Ctrl-C stops it).",
    )
    parser.add_argument("--config", help="experiment YAML (for tracking.workdir / tracking_uri)")
    parser.add_argument("--port", type=int, default=5000, help="port (default 5000)")
    parser.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
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

    exp = load_experiment(args.config, args.overrides)
    if not 0 < args.port < 65536:
        raise UserError(f"--port {args.port} is not a TCP port (1-65535)")
    if args.workers < 1:
        raise UserError(f"--workers {args.workers} must be >= 1")
    uri = args.tracking_uri or exp.tracking.tracking_uri
    if uri and uri.startswith(("http://", "https://")):
        raise UserError(f"{uri} is a tracking server already: open it in a browser")
    target = tracking.resolve_tracking(exp.tracking.workdir, uri)
    db = target.uri.removeprefix("sqlite:///")
    if target.uri.startswith("sqlite:///") and not Path(db).is_file():
        print(f"note: {db} does not exist yet; run `auxtune search` first", file=sys.stderr)
    cmd = command(target.uri, target.artifact_root, args.host, args.port, args.workers)
    print(
        f"MLflow UI on http://{args.host}:{args.port} (store {target.uri}); Ctrl-C stops it",
        flush=True,
    )
    try:
        return subprocess.call(cmd)
    except FileNotFoundError:
        raise UserError("the mlflow command is not installed in this environment") from None
    except KeyboardInterrupt:
        return 0
