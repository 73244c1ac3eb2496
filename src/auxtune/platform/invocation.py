"""The auxtune command this process runs: the *Source* MLflow shows for every run it records.

:func:`auxtune.platform.cli.main` records the command line once; a caller that never went
through the CLI (a notebook, a script calling ``run_search``) gets its own script's name.

    >>> record(["search", "--strategy", "pbt", "--config", "configs/demo.yaml"])
    >>> command_line()
    'auxtune search --strategy pbt --config configs/demo.yaml'
    >>> source_tags()["mlflow.source.type"]
    'JOB'
    >>> record(None)

Light on purpose: ``auxtune --help`` imports it.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

SOURCE_NAME_TAG, SOURCE_TYPE_TAG = "mlflow.source.name", "mlflow.source.type"
# MLflow's UI shows a LOCAL source as the last path component of its name (a command line with
# `--config configs/demo.yaml` would read `demo.yaml`); a JOB source is shown whole
SOURCE_TYPE = "JOB"

_command: list[str] | None = None


def record(argv: Sequence[str] | None) -> None:
    """Remember ``auxtune <argv...>`` as this process's command (None forgets it)."""
    global _command
    _command = None if argv is None else ["auxtune", *argv]


def command_line() -> str:
    """The recorded auxtune command line, else the running script and its arguments."""
    if _command is not None:
        return shlex.join(_command)
    script = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python"
    return shlex.join([script, *sys.argv[1:]])


def source_tags() -> dict[str, str]:
    """MLflow's Source column of a run: this process's command line."""
    return {SOURCE_NAME_TAG: command_line()[:5000], SOURCE_TYPE_TAG: SOURCE_TYPE}
