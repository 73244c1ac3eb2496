"""Weighting strategies compared at equal compute, against a control, with the same seeds.

    auxtune compare --config configs/demo.yaml --strategies baseline,fixed,meta,optuna,pbt

1. Every searched strategy spends the same budget of trial-epochs (one trial training one epoch)
   through :func:`~auxtune.platform.search.run_search`; a scheduler that stops trials early is fed
   new ones until the budget is spent.
2. Every row -- each strategy's best configuration, the no-auxiliary ``baseline`` and any fixed
   ``compare.variants`` -- is retrained from scratch with the same seeds, in one Tune run (a grid
   over row and seed), and evaluated on the clean and the corrupted test set.
3. Each row is compared with the reference (``baseline``) seed by seed (paired 95 % intervals,
   :mod:`auxtune.platform.stats`); the report (Markdown, JSON, figures) is written atomically and
   logged to MLflow: one experiment per comparison, with the comparison run, one run per row
   (the search's parent run for searched strategies) and, under each row, its search trials and
   its retrains.

This module is the driver. What it drives: :mod:`~auxtune.platform.compare_plan` (the rows, budget
and seeds, and what each row retrains: a searched strategy's best trial, a population's lambda
schedule, a fixed row's overrides), :mod:`~auxtune.platform.retrains` (the one Tune run of every
row and seed) and :mod:`~auxtune.platform.compare_runs` (what the comparison records in MLflow).
"""

from __future__ import annotations

import sys
import time
from contextlib import ExitStack
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from auxtune.platform import tracking
from auxtune.platform.compare_plan import ComparePlan, plan_compare, row_choice
from auxtune.platform.compare_runs import (
    create_row_run,
    describe_comparison,
    finish_runs,
    open_compare_run,
)
from auxtune.platform.comparison import Comparison, Row, describe_choice
from auxtune.platform.config import ExperimentConfig
from auxtune.platform.ray_runtime import library_logs_to, ray_session
from auxtune.platform.report import check_out_dir, write_report
from auxtune.platform.retrains import RETRAIN, run_retrains
from auxtune.platform.search import Nesting, SearchResult, run_search
from auxtune.platform.tracking.lifecycle import prepare_store
from auxtune.platform.tuning import RunRecord


def default_out(exp: ExperimentConfig) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path(exp.tracking.workdir) / f"compare-{exp.name}-{stamp}"


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# ------------------------------------------------------------------------------- the driver
def run_compare(
    exp: ExperimentConfig,
    *,
    address: str | None = None,
    out: str | Path | None = None,
    command: str = "",
    verbose: int = 0,
    log_file: str | Path | None = None,
) -> tuple[Comparison, Path]:
    """Search every strategy, retrain every row with the same seeds, write the report.

    ``log_file``: the libraries' messages (Ray's, MLflow's, Optuna's) go there instead of the
    console.
    """
    start = time.perf_counter()
    plan = plan_compare(exp)
    out_dir = Path(out) if out else default_out(exp)
    check_out_dir(out_dir)
    target = tracking.resolve_tracking(exp.tracking.workdir, exp.tracking.tracking_uri)
    tracking.check_reachable(target)
    with ExitStack() as stack:
        stack.enter_context(library_logs_to(log_file))
        prepare_store(target)  # a fresh store's schema, one process at a time
        prepare_data(exp)
        stack.enter_context(ray_session(address, exp.tracking.storage, quiet=log_file is not None))
        client = tracking.client(target.uri)
        experiment_name = f"{exp.name}-compare"
        experiment_id = tracking.ensure_experiment(
            client, experiment_name, target, description=describe_comparison(exp, plan, command)
        )
        # any failure from the run's creation on ends it, its rows' runs and their trials'
        # runs FAILED (KILLED on Ctrl-C): none stays RUNNING
        with open_compare_run(client, experiment_id, exp, plan, command) as run_id:
            datasets = tracking.experiment_datasets(exp.data)
            tracking.log_datasets(client, run_id, datasets)
            nesting = Nesting(experiment_id, run_id)
            searches = {s: _search(exp, s, plan, address, nesting, verbose) for s in plan.searched}
            row_runs = {s: r.parent_run_id for s, r in searches.items()}
            row_runs.update(
                {
                    r: create_row_run(client, experiment_id, run_id, r, exp, datasets)
                    for r in plan.rows
                    if r not in searches
                }
            )
            choices = {r: row_choice(exp, r, searches.get(r)) for r in plan.rows}
            _say(f"retraining {len(plan.rows)} rows x {len(plan.seeds)} seeds")
            retrain_start = time.perf_counter()
            retrains = run_retrains(
                exp,
                {r: config for r, (config, _) in choices.items()},
                plan.seeds,
                record=RunRecord(target.uri, experiment_id, run_id, RETRAIN, kind=RETRAIN),
                row_runs=row_runs,
                on_cluster=address is not None,
                verbose=verbose,
            )
            comparison = Comparison(
                name=exp.name,
                created=utc_now(),
                budget_trial_epochs=plan.budget,
                seeds=plan.seeds,
                rows=tuple(
                    Row(
                        strategy=r,
                        search=searches.get(r),
                        retrained=choices[r][0],
                        how=choices[r][1],
                        retrains=retrains.get(r, ()),
                        budget_trial_epochs=plan.budget if r in searches else 0,
                        mlflow_run_id=row_runs[r],
                    )
                    for r in plan.rows
                ),
                reference=exp.compare.reference,
                metric=exp.compare.metric,
                metrics=tuple(dict.fromkeys((*exp.compare.metrics, exp.compare.metric))),
                config=resolved_config(exp, plan),
                command=command,
                versions=tracking.library_versions(),
                tracking_uri=target.uri,
                experiment_name=experiment_name,
                experiment_id=experiment_id,
                mlflow_run_id=run_id,
                wall_s=time.perf_counter() - start,
                retrain_wall_s=time.perf_counter() - retrain_start,
            )
            write_report(comparison, out_dir)
            finish_runs(client, comparison, out_dir, _say)
    return comparison, out_dir


def _search(
    exp: ExperimentConfig,
    strategy: str,
    plan: ComparePlan,
    address: str | None,
    nesting: Nesting,
    verbose: int,
) -> SearchResult:
    result = run_search(
        exp,
        strategy,
        address=address,
        search_name=f"{exp.name}-compare-{strategy}",
        nesting=nesting,
        budget_trial_epochs=plan.budget,
        verbose=verbose,
        progress=not verbose,
    )
    _say(_search_line(result, exp.search.metric))
    return result


def prepare_data(exp: ExperimentConfig) -> None:
    """Load (for synthetic data: generate and cache) the splits and the corrupted test set once,
    before any search, so no strategy's seconds include it and bad data fails before Ray starts."""
    from auxtune.data.datasets import load_corrupted_test, load_dataset

    _say(f"preparing the {exp.data.dataset} data and its corrupted test set")
    load_corrupted_test(exp.data, load_dataset(exp.data))


def resolved_config(exp: ExperimentConfig, plan: ComparePlan) -> dict[str, Any]:
    """The experiment as plain data with the compare section as run (reproduces the comparison)."""
    config = exp.to_dict()
    config["compare"] = {
        **config["compare"],
        "strategies": list(plan.rows),
        "budget": plan.budget,
        "seeds": len(plan.seeds),
    }
    return config


def _say(line: str) -> None:
    print(f"[compare] {line}", file=sys.stderr, flush=True)


def _search_line(result: SearchResult, metric: str) -> str:
    value = result.best.metrics.get(metric)
    shown = "n/a" if value is None else f"{100 * value:.2f}%"
    return (
        f"{result.strategy}: {len(result.trials)} trials, {result.trial_epochs} trial-epochs, "
        f"{result.wall_s:.0f} s; best {metric} {shown} ({describe_choice(result.best.params)})"
    )
