"""The ``auxtune`` command line: one subcommand per module in ``auxtune.platform.commands``.

Each command module exposes ``add_parser(subparsers)`` (registering its flags and
``set_defaults(run=...)``) and keeps its heavy imports inside ``run`` so ``auxtune --help`` is fast.
Any :class:`auxtune.errors.UserError` (a bad config value, a missing file, an unreachable server)
becomes one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import threading
from collections.abc import Sequence

from auxtune import __version__
from auxtune.errors import USER_ERRORS
from auxtune.platform import invocation

#: Command modules, in the order ``auxtune --help`` lists them.
COMMANDS = ("train", "evaluate", "data", "search", "compare", "ui")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="auxtune",
        description="Tune the weights of self-supervised auxiliary tasks for robust classifiers.",
    )
    parser.add_argument("--version", action="version", version=f"auxtune {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"auxtune.platform.commands.{name}")
        except ModuleNotFoundError as err:
            if err.name == f"auxtune.platform.commands.{name}":
                continue  # command not built yet
            raise
        module.add_parser(subparsers)
    return parser


def sigterm_as_ctrl_c() -> None:
    """A SIGTERM (``kill``, a process supervisor) takes Ctrl-C's path: Tune saves its state and
    stops its trials, runs are closed KILLED, and ``--resume`` continues where it stopped."""
    if threading.current_thread() is threading.main_thread():  # signals reach the main thread only
        signal.signal(signal.SIGTERM, lambda signum, frame: os.kill(os.getpid(), signal.SIGINT))


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    # key=value overrides may stand anywhere, also after flags: collect the stragglers
    args, extra = parser.parse_known_args(argv)
    invocation.record(sys.argv[1:] if argv is None else argv)  # every MLflow run's Source
    if extra:
        if not hasattr(args, "overrides") or any("=" not in item for item in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.overrides = [*args.overrides, *extra]
    sigterm_as_ctrl_c()
    try:
        return int(args.run(args) or 0)
    except USER_ERRORS as err:
        print(f"auxtune {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"auxtune {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
