"""One module per ``auxtune`` subcommand; the flags that ``search`` and ``compare`` share live here."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

#: the shared flags that stand for config fields (argparse attribute -> dotted config key)
CLUSTER_FLAGS = {"tracking_uri": "tracking.tracking_uri", "storage": "tracking.storage"}


def add_cluster_flags(parser: Any) -> None:
    """``--address``, ``--tracking-uri`` and ``--storage``: where Ray runs and results go."""
    parser.add_argument(
        "--address", help="Ray cluster: auto or ray://HOST:PORT (default: start Ray here)"
    )
    parser.add_argument(
        "--tracking-uri", help="MLflow tracking URI (default sqlite:///<workdir>/mlflow.db)"
    )
    parser.add_argument(
        "--storage",
        help="Ray Tune results: a path or s3://... (shared storage on a cluster; default "
        "<workdir>/ray_results)",
    )


def add_mlflow_flags(parser: Any) -> None:
    """``--tracking-uri`` and ``--no-mlflow``: where a local command's MLflow run goes, if anywhere."""
    parser.add_argument(
        "--tracking-uri",
        help="MLflow tracking URI (default tracking.tracking_uri, else sqlite:///<workdir>/mlflow.db)",
    )
    parser.add_argument("--no-mlflow", action="store_true", help="record nothing in MLflow")


def flag_overrides(args: argparse.Namespace, flags: Mapping[str, str]) -> list[str]:
    """The given flags (``flags`` and :data:`CLUSTER_FLAGS`: attribute -> config key) as
    ``key=value`` overrides, to apply after the positional ones (flags win)."""
    pairs = {**CLUSTER_FLAGS, **flags}
    values = {key: getattr(args, attr) for attr, key in pairs.items()}
    return [f"{key}={value}" for key, value in values.items() if value is not None]


def log_file_for(workdir: str, name: str) -> Path:
    """Where a command's Ray messages go unless ``--verbose``:
    ``<workdir>/logs/<name>-<time>-<pid>.log`` (two commands started in one second stay apart)."""
    import os
    from datetime import datetime

    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path(workdir).expanduser() / "logs" / f"{name}-{stamp}-{os.getpid()}.log"


def preflight(exp: Any, address: str | None) -> None:
    """Device and data checked before any work: all of it when trials run here, only the data
    (the driver still loads it) when they run on a cluster's nodes."""
    import sys

    from auxtune.platform.preflight import check_data, check_run_here

    if address is None:
        for note in check_run_here(exp):
            print(note, file=sys.stderr)
    else:
        check_data(exp.data)
