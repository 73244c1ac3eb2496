"""``auxtune compare``: weighting strategies searched at equal compute, retrained, reported."""

from __future__ import annotations

import argparse
from typing import Any

from auxtune.errors import UserError
from auxtune.platform.commands import add_cluster_flags, flag_overrides, log_file_for, preflight


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "compare",
        help="compare weighting strategies at equal compute",
        description=(
            "Search the task weights with each strategy under the same budget in trial-epochs, "
            "retrain each strategy's best configuration with several seeds, evaluate on the "
            "corrupted test set and write a report (Markdown, JSON, figures) also logged to MLflow."
        ),
    )
    parser.add_argument("--config", help="experiment YAML (defaults apply when omitted)")
    parser.add_argument(
        "--strategies",
        help="comma-separated rows: search strategies (fixed, random, optuna, pbt, pb2, meta, ...), "
        "baseline (no auxiliary task, always added) or names of compare.variants "
        "(default compare.strategies)",
    )
    parser.add_argument(
        "--budget",
        type=int,
        help="trial-epochs each search may spend (default compare.budget, else "
        "search.num_trials x optim.epochs)",
    )
    parser.add_argument(
        "--seeds",
        type=int,
        help="retrains of every row, same seeds for all (default compare.seeds)",
    )
    parser.add_argument(
        "--out", help="report directory (default <workdir>/compare-<name>-<timestamp>)"
    )
    add_cluster_flags(parser)
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="Ray Tune's trial tables and Ray's own messages on the console (default: a log file)",
    )
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    parser.set_defaults(run=run)


FLAGS = {"strategies": "compare.strategies", "budget": "compare.budget", "seeds": "compare.seeds"}


def command_text(args: argparse.Namespace) -> str:
    """The command line that reproduces this run, rebuilt from the parsed arguments."""
    import shlex

    words = ["auxtune", "compare"]
    for name in (
        "config",
        "strategies",
        "budget",
        "seeds",
        "address",
        "out",
        "tracking_uri",
        "storage",
    ):
        value = getattr(args, name)
        if value is not None:
            words += [f"--{name.replace('_', '-')}", str(value)]
    return shlex.join([*words, *args.overrides])


def run(args: argparse.Namespace) -> int:
    import os

    # the retrains checkpoint every epoch and keep one, so Tune warns of a forced experiment
    # snapshot at every epoch of every trial: noise for a run of a few retrain trials
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    from auxtune.platform.compare import plan_compare, run_compare
    from auxtune.platform.config import load_experiment

    if args.budget is not None and args.budget < 1:
        raise UserError(f"--budget {args.budget}: give at least one trial's epochs (>= 1)")
    if args.seeds is not None and args.seeds < 1:
        raise UserError(f"--seeds {args.seeds}: give at least 1 (3 or more for intervals)")
    exp = load_experiment(args.config, [*args.overrides, *flag_overrides(args, FLAGS)])
    plan_compare(exp)  # a bad budget fails here, before Ray or MLflow start
    preflight(exp, args.address)
    log_file = None if args.verbose else log_file_for(exp.tracking.workdir, f"{exp.name}-compare")
    comparison, out = run_compare(
        exp,
        address=args.address,
        out=args.out,
        command=command_text(args),
        verbose=1 if args.verbose else 0,
        log_file=log_file,
    )
    from auxtune.platform.report import ui_hint
    from auxtune.platform.report_tables import format_table

    print()
    print(format_table(comparison))
    print(f"\nreport: {out / 'report.md'}")
    if log_file is not None and log_file.is_file():
        print(f"Ray's log: {log_file}")
    print(f"MLflow: experiment {comparison.experiment_name!r}, run {comparison.mlflow_run_id}")
    print(f"browse: {ui_hint(comparison.tracking_uri, comparison.experiment_id)}")
    return 0
