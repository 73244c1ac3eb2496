"""One module per ``auxtune`` subcommand; the flags that ``search`` and ``compare`` share live here."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
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


def flag_overrides(args: argparse.Namespace, flags: Mapping[str, str]) -> list[str]:
    """The given flags (``flags`` and :data:`CLUSTER_FLAGS`: attribute -> config key) as
    ``key=value`` overrides, to apply after the positional ones (flags win)."""
    pairs = {**CLUSTER_FLAGS, **flags}
    values = {key: getattr(args, attr) for attr, key in pairs.items()}
    return [f"{key}={value}" for key, value in values.items() if value is not None]
