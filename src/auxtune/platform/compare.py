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

What a retrain trains (:func:`retrain_choice`): the best trial's configuration (lambdas and any
searched hyperparameter, with the strategy's weighting: ``meta`` learns its lambdas online again);
for a population (PBT, PB2) the best trial's lambda *schedule* as it was trained, exploits included
(:func:`lambda_schedule`); for a fixed row its overrides.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from auxtune.config import ConfigError, to_dict
from auxtune.platform import invocation, tracking
from auxtune.platform.comparison import Comparison, Retrain, Row, describe_choice
from auxtune.platform.config import ExperimentConfig, strategy_names
from auxtune.platform.ray_runtime import library_logs_to, ray_session
from auxtune.platform.report import check_out_dir, write_report
from auxtune.platform.search import Nesting, SearchResult, run_search
from auxtune.platform.tracking.lifecycle import open_run, prepare_store
from auxtune.platform.trials import TrialSummary
from auxtune.platform.tuning import RunRecord, TrialRun, experiment_dir, run_trials

RETRAIN = "retrain"
SCHEDULE_KEY = "weighting.schedule.per_epoch"  # the schedule weighting's lambdas, one per epoch


# ----------------------------------------------------------------------------------- the plan
@dataclass(frozen=True)
class ComparePlan:
    rows: tuple[str, ...]  # the reference first
    budget: int  # trial-epochs per searched strategy
    seeds: tuple[int, ...]

    @property
    def searched(self) -> tuple[str, ...]:
        return tuple(r for r in self.rows if r in strategy_names())


def plan_compare(exp: ExperimentConfig) -> ComparePlan:
    """Rows, budget and seeds from ``exp.compare``; fails when no trial fits the budget."""
    epochs = exp.optim.epochs
    budget = exp.compare.budget or exp.search.num_trials * epochs
    if budget < epochs:
        raise ConfigError(
            f"compare.budget = {budget} trial-epochs is less than one trial (optim.epochs = {epochs}); "
            f"give at least {epochs}, e.g. {exp.search.num_trials * epochs} for "
            f"search.num_trials = {exp.search.num_trials}"
        )
    seeds = tuple(exp.seed + i for i in range(exp.compare.seeds))
    return ComparePlan(exp.compare.rows(), budget, seeds)


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
            client, experiment_name, target, description=_description(exp, plan, command)
        )
        # any failure from the run's creation on ends it, its rows' runs and their trials'
        # runs FAILED (KILLED on Ctrl-C): none stays RUNNING
        with _compare_run(client, experiment_id, exp, plan, command) as run_id:
            datasets = tracking.experiment_datasets(exp.data)
            tracking.log_datasets(client, run_id, datasets)
            nesting = Nesting(experiment_id, run_id)
            searches = {s: _search(exp, s, plan, address, nesting, verbose) for s in plan.searched}
            row_runs = {s: r.parent_run_id for s, r in searches.items()}
            row_runs.update(
                {
                    r: _row_run(client, experiment_id, run_id, r, exp, datasets)
                    for r in plan.rows
                    if r not in searches
                }
            )
            choices = {r: _choice(exp, r, searches.get(r)) for r in plan.rows}
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
            _finish_runs(client, comparison, out_dir)
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


# ------------------------------------------------------------------------- what is retrained
def _choice(
    exp: ExperimentConfig, row: str, search: SearchResult | None
) -> tuple[dict[str, Any], str]:
    if search is None:
        overrides = exp.compare.overrides(row)
        shown = ", ".join(f"{k}={v}" for k, v in overrides.items()) or "the experiment as it is"
        return {"overrides": overrides}, f"fixed configuration ({shown})"
    return retrain_choice(search, exp.tasks.names, exp.optim.epochs)


def retrain_choice(
    search: SearchResult, tasks: Sequence[str], epochs: int
) -> tuple[dict[str, Any], str]:
    """The trial config every seed of a searched strategy retrains, and what it is in words."""
    best = search.best
    if search.population:
        schedule = lambda_schedule(best, search.trials, tasks, epochs)
        overrides = {"weighting.name": "schedule", SCHEDULE_KEY: schedule}
        how = (
            f"lambda schedule of best trial {best.trial_id} replayed epoch by epoch "
            f"({len(best.exploits)} exploit(s) in its lineage)"
        )
        return {"overrides": overrides}, how
    config: dict[str, Any] = {k: v for k, v in best.params.items() if k != "seed"}
    config["overrides"] = {"weighting.name": search.weighting}
    return config, f"best trial {best.trial_id} ({search.weighting} weighting)"


def lambda_schedule(
    trial: TrialSummary, trials: Sequence[TrialSummary], tasks: Sequence[str], epochs: int
) -> list[dict[str, float]]:
    """The lambdas each of ``epochs`` epochs of ``trial``'s final model was trained with.

    A PBT exploit copies a donor's model after ``k`` epochs: the first ``k`` epochs of the final
    model are the donor's (recursively, its own lineage up to then), the rest this trial's.
    """
    by_id = {t.trial_id: t for t in trials}

    def lineage(t: TrialSummary, upto: int) -> dict[int, dict[str, float]]:
        rows: dict[int, dict[str, float]] = {}
        for position, row in enumerate(t.history):
            epoch = int(row.get("epoch", position + 1))
            if epoch > upto:
                continue
            donor = _donor_at(t, position)
            if donor is not None and donor[0] in by_id:  # epochs before this one came from it
                rows = {e: v for e, v in lineage(by_id[donor[0]], donor[1]).items()}
            rows[epoch] = {task: float(row[f"lambda/{task}"]) for task in tasks}
        return rows

    found = lineage(trial, epochs)
    missing = [e for e in range(1, epochs + 1) if e not in found]
    if missing:
        raise ValueError(f"trial {trial.trial_id}: no lambdas recorded for epochs {missing}")
    return [found[e] for e in range(1, epochs + 1)]


def _donor_at(trial: TrialSummary, position: int) -> tuple[str, int] | None:
    """The exploit recorded at history row ``position`` of ``trial``, if any."""
    row = trial.history[position]
    if not row.get("pbt/exploit"):
        return None
    before = sum(1 for r in trial.history[:position] if r.get("pbt/exploit"))
    return trial.exploits[before] if before < len(trial.exploits) else None


# --------------------------------------------------------------------------------- retrains
def run_retrains(
    exp: ExperimentConfig,
    choices: Mapping[str, Mapping[str, Any]],
    seeds: Sequence[int],
    *,
    record: RunRecord,
    row_runs: Mapping[str, str],
    on_cluster: bool = False,
    verbose: int = 0,
) -> dict[str, tuple[Retrain, ...]]:
    """Every (row, seed) trained from scratch in one Tune run, through the search's trainable.

    Each retrain's MLflow run is nested under its row's run (``row_runs``).
    """
    from auxtune.trainables.data import absolute_data_config, prepare_trial_data

    exp = dataclasses.replace(exp, data=absolute_data_config(exp.data))
    exp_dir, ledger = experiment_dir(exp, f"{exp.name}-compare-{RETRAIN}", resume=False)
    train_cfg = exp.train_config()
    data = prepare_trial_data(_data_config(train_cfg, choices), storage=exp.tracking.storage)
    run = TrialRun(
        exp=exp,
        train=train_cfg,
        data=data,
        exp_dir=exp_dir,
        ledger=ledger,
        param_space=retrain_space(choices, seeds),
        record=dataclasses.replace(record, parents=dict(row_runs)),
        checkpoints_to_keep=1,
        trial_name=retrain_trial_name,
        on_cluster=on_cluster,
        verbose=verbose,
        progress=None if verbose else RETRAIN,
    )
    found: dict[str, list[Retrain]] = {}
    for trial in run_trials(run):
        retrain = retrain_from_trial(trial)
        found.setdefault(retrain.strategy, []).append(retrain)
    return {s: tuple(sorted(rs, key=lambda r: r.seed)) for s, rs in found.items()}


def _data_config(train_cfg: Any, choices: Mapping[str, Mapping[str, Any]]) -> Any:
    """The config the trials' data is prepared for: any row's weighting that needs
    meta-validation images (``paper`` protocol: cut from every corrupted block) sets it for all,
    so every row is evaluated on the same images."""
    from auxtune.config import from_dict
    from auxtune.trainables.config import trial_train_config

    for config in choices.values():
        cfg = trial_train_config(train_cfg, config)
        if _needs_meta_batch(cfg):
            return cfg
    return from_dict(type(train_cfg), to_dict(train_cfg))


def _needs_meta_batch(cfg: Any) -> bool:
    from auxtune.robust.weighting.registry import weighting_class

    return bool(weighting_class(cfg.weighting.name).needs_meta_batch)


def retrain_space(choices: Mapping[str, Mapping[str, Any]], seeds: Sequence[int]) -> dict[str, Any]:
    """Tune's grid over (row, seed). Every row's choice is put in the same two keys, ``lambda``
    (``{task: value}``) and ``overrides`` (dotted config keys), so the grid's keys are the same
    for every row and a row never sees another row's settings."""
    from ray import tune

    table = {row: normalized_choice(c) for row, c in choices.items()}

    def pick(key: str) -> Any:
        return tune.sample_from(lambda config: table[config["strategy"]][key])

    return {
        "strategy": tune.grid_search(list(table)),
        "seed": tune.grid_search(list(seeds)),
        "lambda": pick("lambda"),
        "overrides": pick("overrides"),
    }


def normalized_choice(choice: Mapping[str, Any]) -> dict[str, Any]:
    """A trial config as ``{"lambda": {...}, "overrides": {...}}`` (what it sets, nothing else).

    >>> normalized_choice({"lambda/rotation": 0.5, "weighting.dwa.temperature": 2.0,
    ...                    "overrides": {"weighting.name": "dwa"}})
    {'lambda': {'rotation': 0.5}, 'overrides': {'weighting.dwa.temperature': 2.0, 'weighting.name': 'dwa'}}
    """
    from auxtune.trainables.config import dotted_overrides, trial_lambdas

    return {"lambda": trial_lambdas(choice), "overrides": dotted_overrides(choice)}


def retrain_trial_name(trial: Any) -> str:
    """``retrain-meta-seed1``: the Tune trial's (and its MLflow run's) name."""
    return f"{RETRAIN}-{trial.config['strategy']}-seed{trial.config['seed']}"


def retrain_from_trial(trial: TrialSummary) -> Retrain:
    """A :class:`Retrain` from the Tune trial that ran it."""
    return Retrain(
        strategy=str(trial.params["strategy"]),
        seed=int(trial.params["seed"]),
        metrics=dict(trial.metrics),
        history=trial.history,
        epochs=trial.epochs,
        seconds=trial.seconds,
        status=trial.status,
        error=trial.error,
        mlflow_run_id=trial.mlflow_run_id,
    )


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


# ------------------------------------------------------------------------------------ MLflow
def _description(exp: ExperimentConfig, plan: ComparePlan, command: str) -> str:
    return (
        f"auxtune compare: {', '.join(plan.rows)} on {exp.data.dataset} "
        f"({plan.budget} trial-epochs per searched strategy, seeds "
        f"{', '.join(map(str, plan.seeds))}), each row against {exp.compare.reference} by "
        f"{exp.compare.metric}." + (f"\n\n`{command}`" if command else "")
    )


def _compare_run(
    client: Any, experiment_id: str, exp: ExperimentConfig, plan: ComparePlan, command: str
) -> AbstractContextManager[str]:
    params = {
        "strategies": ",".join(plan.rows),
        "budget_trial_epochs": str(plan.budget),
        "seeds": ",".join(map(str, plan.seeds)),
        "command": command,
    }
    params.update(tracking.as_params(exp.to_dict(), "config."))
    params.update({f"version.{k}": v for k, v in tracking.library_versions().items()})
    return open_run(
        client,
        experiment_id,
        run_name=f"compare-{datetime.now().strftime('%Y%m%d-%H%M%S')}",
        tags={
            "auxtune.kind": "compare",
            tracking.NOTE_TAG: _description(exp, plan, command),
            **invocation.source_tags(),
        },
        params=params,
    )


def _row_run(
    client: Any,
    experiment_id: str,
    compare_run: str,
    row: str,
    exp: ExperimentConfig,
    datasets: Sequence[tracking.DatasetRecord] = (),
) -> str:
    """The run of a row that is not searched (baseline, a variant) under the comparison run."""
    overrides = exp.compare.overrides(row)
    run = client.create_run(
        experiment_id,
        run_name=row,
        tags={
            tracking.PARENT_TAG: compare_run,
            "auxtune.kind": "row",
            "auxtune.strategy": row,
            **invocation.source_tags(),
        },
    )
    tracking.log_datasets(client, run.info.run_id, datasets)
    params = {"strategy": row, **{f"override.{k}": str(v) for k, v in overrides.items()}}
    tracking.log_batch(client, run.info.run_id, params=params)
    return str(run.info.run_id)


def _finish_runs(client: Any, comparison: Comparison, out: Path) -> None:
    """Each row's retrain means and paired differences on its run and on the comparison run
    (``<row>/c15_accuracy``, ...), the report as the comparison run's artifacts."""
    summary: dict[str, float] = {"wall_s": comparison.wall_s}
    for row in comparison.rows:
        metrics: dict[str, float] = {}
        for metric in comparison.metrics:
            found = row.estimate(metric)
            if found is not None:
                metrics[metric] = found.mean
                if found.half_width is not None:
                    metrics[f"{metric}_ci95_half"] = found.half_width
            diff = comparison.versus_reference(row, metric)
            if diff is not None:
                metrics[f"{metric}_vs_{comparison.reference}"] = diff.mean_diff
        metrics["trial_epochs"] = float(row.trial_epochs)
        metrics["budget_trial_epochs"] = float(row.budget_trial_epochs)
        if row.mlflow_run_id:
            tracking.log_batch(client, row.mlflow_run_id, metrics=metrics)
            if row.search is None:
                client.set_terminated(row.mlflow_run_id, "FINISHED")
        summary.update({f"{row.strategy}/{k}": v for k, v in metrics.items()})
    leader = comparison.leader()
    tags = {"best_strategy": leader[0].strategy} if leader else {}
    if leader:
        tags.update(_register_best(client, comparison, leader[0]))
    run_id = str(comparison.mlflow_run_id)
    tracking.log_batch(client, run_id, metrics=summary, tags=tags)
    client.log_artifacts(run_id, str(out))
    client.set_terminated(run_id, "FINISHED")


def _register_best(client: Any, comparison: Comparison, row: Row) -> dict[str, str]:
    """The leading row's best seed's model as a new version of ``<name>-best`` (alias ``best``)."""
    metric = comparison.metric
    seeds = [r for r in row.retrains if r.mlflow_run_id and r.value(metric) is not None]
    if not seeds:
        return {}
    best = max(seeds, key=lambda r: r.value(metric) or 0.0)
    name = f"{comparison.name}-best"
    description = (
        f"{row.strategy} ({row.how}), seed {best.seed}: {metric} {best.value(metric):.4f}; the "
        f"leading row of comparison {comparison.mlflow_run_id}"
    )
    try:
        version = tracking.register_best_model(
            client, str(best.mlflow_run_id), name, description=description
        )
    except ValueError as err:  # its model was not logged (see the run's records_error tag)
        _say(f"no model registered: {err}")
        return {}
    _say(f"registered {name} version {version} (models:/{name}@{tracking.BEST_ALIAS})")
    return {"best_model": f"{name}/{version}"}


def _say(line: str) -> None:
    print(f"[compare] {line}", file=sys.stderr, flush=True)


def _search_line(result: SearchResult, metric: str) -> str:
    value = result.best.metrics.get(metric)
    shown = "n/a" if value is None else f"{100 * value:.2f}%"
    return (
        f"{result.strategy}: {len(result.trials)} trials, {result.trial_epochs} trial-epochs, "
        f"{result.wall_s:.0f} s; best {metric} {shown} ({describe_choice(result.best.params)})"
    )
