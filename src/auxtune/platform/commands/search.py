"""``auxtune search``: a Ray Tune search over the auxiliary-task lambdas, recorded in MLflow."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from auxtune.platform.commands import add_cluster_flags, flag_overrides, log_file_for, preflight


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "search",
        help="search the task weights with Ray Tune",
        description=(
            "Search the lambdas of the auxiliary tasks with one strategy on a local Ray or a "
            "cluster. Every trial is a nested MLflow run under the search's parent run."
        ),
    )
    parser.add_argument(
        "--strategy",
        required=True,
        help="a lambda search (fixed, random, optuna, pbt, pb2) or the name of any weighting "
        "(meta, auto_lambda, gradnorm, uncertainty, ...: README's weighting table)",
    )
    parser.add_argument("--config", help="experiment YAML (defaults apply when omitted)")
    parser.add_argument("--num-trials", type=int, help="trials (default search.num_trials)")
    parser.add_argument(
        "--resume", action="store_true", help="continue the interrupted search of the same name"
    )
    parser.add_argument("--name", help="search name (default <name>-<strategy>)")
    add_cluster_flags(parser)
    parser.add_argument(
        "--gpus-per-trial", type=float, help="GPU share of each trial, e.g. 0.25 (default 0)"
    )
    parser.add_argument(
        "--quiet", action="store_true", help="no progress line: only the summary at the end"
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="Ray Tune's trial tables and Ray's own messages on the console (default: a log file)",
    )
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    parser.set_defaults(run=run)


FLAGS = {"num_trials": "search.num_trials", "gpus_per_trial": "search.gpus_per_trial"}


def run(args: argparse.Namespace) -> int:
    from auxtune.platform.config import check_name, load_experiment
    from auxtune.platform.search import run_search
    from auxtune.search_spaces import check_strategy

    check_strategy(args.strategy)
    if args.name is not None:
        check_name(args.name, "--name")
    exp = load_experiment(args.config, [*args.overrides, *flag_overrides(args, FLAGS)])
    preflight(exp, args.address)
    log_file = None if args.verbose else log_file_for(exp.tracking.workdir, exp.name)
    result = run_search(
        exp,
        args.strategy,
        address=args.address,
        resume=args.resume,
        search_name=args.name,
        verbose=1 if args.verbose else 0,
        progress=not (args.quiet or args.verbose),
        log_file=log_file,
    )
    print(summary(result, exp.search.metric))
    if log_file is not None and log_file.is_file():
        print(f"Ray's log:     {log_file}")
    interrupted = any(t.status not in ("TERMINATED", "ERROR") for t in result.trials)
    return 130 if interrupted else 0


def summary(result: Any, metric: str) -> str:
    """The end-of-search report: best trial, failures, where the results live."""
    from auxtune.platform.report import ui_hint

    best = result.best
    lines = [
        "",
        f"search {result.experiment_name} ({result.strategy}): {len(result.trials)} trials, "
        f"{result.trial_epochs} trial-epochs, {result.wall_s:.0f} s",
        f"best trial {best.trial_id}: "
        + ", ".join(f"{k}={_fmt(v)}" for k, v in best.params.items()),
    ]
    shown = [metric, "val_accuracy", "c15_accuracy", "c19_accuracy"]
    lines.append(
        "  "
        + ", ".join(
            f"{k}={_fmt(best.metrics[k])}" for k in dict.fromkeys(shown) if k in best.metrics
        )
    )
    if result.front is not None:
        lines += ["", *front_lines(result), ""]
    for trial in result.failed:
        lines.append(f"failed trial {trial.trial_id}: {trial.error}")
    unfinished = [t for t in result.trials if t.status not in ("TERMINATED", "ERROR")]
    if unfinished:
        lines.append(f"{len(unfinished)} trials unfinished: continue with --resume")
    lines += [
        f"Tune results:  {result.results_path}",
        f"MLflow:        {result.tracking_uri} (experiment {result.experiment_name!r}, "
        f"parent run {result.parent_run_id})",
        f"browse:        {ui_hint(result.tracking_uri, result.experiment_id or None)}",
    ]
    if result.failed:
        print(f"{len(result.failed)} of {len(result.trials)} trials failed", file=sys.stderr)
    return "\n".join(lines)


def front_lines(result: Any) -> list[str]:
    """The Pareto front's table, and its figure drawn into the search's results directory."""
    from pathlib import Path

    from auxtune.platform.pareto import format_front
    from auxtune.platform.plots import plot_pareto

    lines = format_front(result.front).splitlines()
    results = Path(result.results_path)
    if results.is_dir():  # a local directory (not a cluster's s3:// storage)
        figure = plot_pareto(result.front, results / "pareto_front.png", result.experiment_name)
        lines.append(f"front figure:  {figure}")
    return lines


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
