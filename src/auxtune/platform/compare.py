"""Weighting strategies compared at equal compute: search each, retrain each winner with seeds.

    auxtune compare --config configs/demo.yaml --strategies fixed,meta,optuna,pbt --budget 16

1. Every strategy searches with the same budget in trial-epochs (one trial training one epoch):
   :func:`~auxtune.platform.search.run_search` with ``budget_trial_epochs``; its wall-clock seconds
   are recorded too, since a meta-gradient step costs more than a fixed-lambda step.
2. The best configuration of each strategy is retrained from scratch with N seeds, in one Tune run
   (a grid over (strategy, seed)) through the search's trainable, and evaluated on the corrupted
   test set: mean over the 15 standard corruptions (the headline), over all 19, and per corruption.
3. The report directory (``report.md``, ``results.json``, figures) is written atomically and logged
   to the comparison's MLflow parent run, under which every search's parent run is nested.

What a retrain trains, per strategy (:func:`retrain_choice`): the best trial's lambdas for
``fixed``/``random``/``optuna``; for ``pbt``/``pb2`` the best trial's *final* lambdas, kept constant
(its schedule is not replayed); for ``meta`` the best ``meta_lr`` and initial lambdas, with the
lambdas learned online again.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from auxtune.config import ConfigError, to_dict

if TYPE_CHECKING:
    from auxtune.platform.config import ExperimentConfig
    from auxtune.platform.search import SearchResult, TrialSummary
    from auxtune.platform.tracking import TrackingTarget

DYNAMIC_LAMBDAS = ("pbt", "pb2")  # strategies whose lambdas change within a trial
CLEAN_KEYS = ("test_accuracy", "val_accuracy")  # clean accuracy: the test split's when reported


# ------------------------------------------------------------------------------- the results
@dataclass(frozen=True)
class Retrain:
    """One seeded retrain of a strategy's best configuration, evaluated at its end."""

    strategy: str
    seed: int
    clean_accuracy: float | None
    c15: float | None  # mean over the 15 standard corruptions (the headline)
    c19: float | None  # mean over all 19 (the seed paper's number)
    per_corruption: dict[str, float]  # each corruption's mean over severities 1..5
    history: list[dict[str, float]]  # per-epoch metrics (lambda/<task> for the trajectories)
    epochs: int
    seconds: float
    status: str
    error: str | None = None
    mlflow_run_id: str | None = None


@dataclass(frozen=True)
class StrategyOutcome:
    """A strategy's search, the configuration its retrains used, and the retrains."""

    strategy: str
    search: SearchResult
    retrained: dict[str, Any]  # the trial config every seed retrained (lambda, meta_lr, ...)
    how: str  # what was retrained, in words
    retrains: tuple[Retrain, ...]

    def values(self, key: str) -> list[float]:
        """``key`` (``clean_accuracy``, ``c15``, ``c19``) of every retrain that has it."""
        found = (getattr(r, key) for r in self.retrains)
        return [float(v) for v in found if v is not None and math.isfinite(v)]

    def stat(self, key: str) -> tuple[float | None, float | None]:
        """(mean, sample std over seeds) of ``key``; std is None with fewer than two values."""
        return mean_std(self.values(key))

    def per_corruption(self) -> dict[str, tuple[float, float]]:
        """``{corruption: (mean, std over seeds)}``."""
        names = {c for r in self.retrains for c in r.per_corruption}
        table = {}
        for name in sorted(names):
            mean, std = mean_std(
                [r.per_corruption[name] for r in self.retrains if name in r.per_corruption]
            )
            table[name] = (float(mean or 0.0), float(std or 0.0))
        return table

    @property
    def trial_seconds(self) -> float:
        """Seconds the search's trials were busy, summed (compute spent, unlike wall time)."""
        return float(sum(t.seconds for t in self.search.trials))


@dataclass(frozen=True)
class Comparison:
    """Everything ``auxtune compare`` measured; the report is drawn from this alone."""

    name: str
    created: str  # ISO 8601, UTC
    budget_trial_epochs: int
    seeds: tuple[int, ...]
    strategies: tuple[StrategyOutcome, ...]
    config: dict[str, Any]  # the resolved experiment (reproduces the comparison)
    command: str  # the command line that ran it ("" when called from Python)
    versions: dict[str, str]
    tracking_uri: str
    experiment_name: str
    mlflow_run_id: str | None
    wall_s: float  # the whole comparison
    retrain_wall_s: float

    @property
    def protocol(self) -> str:
        return str(self.config["weighting"]["protocol"])

    @property
    def dataset(self) -> str:
        return str(self.config["data"]["dataset"])

    def step_seconds(self) -> dict[str, float | None]:
        """Median seconds per training step of each strategy's search trials.

        From each epoch's throughput (``batch_size / images_per_s``); the meta strategy's warm-up
        epochs (no meta-gradient yet) are left out so its number is the cost of a meta step.
        """
        batch = float(self.config["optim"]["batch_size"])
        warmup = int(self.config["weighting"]["warmup_epochs"])
        result: dict[str, float | None] = {}
        for outcome in self.strategies:
            rows = [row for t in outcome.search.trials for row in t.history]
            if outcome.strategy == "meta":
                rows = [r for r in rows if r.get("epoch", math.inf) > warmup] or rows
            rates = [r["images_per_s"] for r in rows if r.get("images_per_s", 0) > 0]
            result[outcome.strategy] = batch / float(np.median(rates)) if rates else None
        return result

    def meta_extra_step_seconds(self) -> float | None:
        """A meta step's extra seconds over the median fixed-lambda strategy's step."""
        steps = self.step_seconds()
        meta = steps.get("meta")
        others = [v for k, v in steps.items() if k != "meta" and v is not None]
        if meta is None or not others:
            return None
        return meta - float(np.median(others))

    def best(self) -> StrategyOutcome | None:
        """The strategy with the highest mean 15-corruption accuracy over seeds."""
        scored = [(mean, o) for o in self.strategies if (mean := o.stat("c15")[0]) is not None]
        return max(scored, key=lambda pair: pair[0])[1] if scored else None


def mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    std = float(np.std(values, ddof=1)) if len(values) > 1 else None
    return float(np.mean(values)), std


# ----------------------------------------------------------------------------------- the plan
@dataclass(frozen=True)
class ComparePlan:
    strategies: tuple[str, ...]
    budget: int  # trial-epochs per strategy
    seeds: tuple[int, ...]


def plan_compare(exp: ExperimentConfig) -> ComparePlan:
    """Strategies, budget and seeds from ``exp.compare``; fails when no trial fits the budget."""
    epochs = exp.optim.epochs
    budget = exp.compare.budget or exp.search.num_trials * epochs
    if budget < epochs:
        raise ConfigError(
            f"compare.budget = {budget} trial-epochs is less than one trial (optim.epochs = {epochs}); "
            f"give at least {epochs}, e.g. {exp.search.num_trials * epochs} for "
            f"search.num_trials = {exp.search.num_trials}"
        )
    seeds = tuple(exp.seed + i for i in range(exp.compare.seeds))
    return ComparePlan(exp.compare.strategies, budget, seeds)


def retrain_choice(
    strategy: str, best: TrialSummary, tasks: Sequence[str]
) -> tuple[dict[str, Any], str]:
    """The trial config every seed of ``strategy`` retrains, and what it is in words."""
    if strategy in DYNAMIC_LAMBDAS:
        lambdas = final_lambdas(best, tasks)
        how = f"final lambdas of best trial {best.trial_id} (epoch {best.epochs}), kept constant"
        return {"lambda": lambdas, "weighting.name": "fixed"}, how
    lambdas = {t: float(best.params[f"lambda/{t}"]) for t in tasks if f"lambda/{t}" in best.params}
    if strategy == "meta":
        config = {
            "lambda": lambdas,
            "meta_lr": float(best.params["meta_lr"]),
            "weighting.name": "meta",
        }
        return (
            config,
            f"meta_lr and initial lambdas of best trial {best.trial_id}; lambdas learned online",
        )
    return {"lambda": lambdas, "weighting.name": "fixed"}, f"lambdas of best trial {best.trial_id}"


def final_lambdas(trial: TrialSummary, tasks: Sequence[str]) -> dict[str, float]:
    """The lambdas a trial trained with last (PBT mutates them; its metrics report them)."""
    last: dict[str, float] = {}
    for row in [*trial.history, trial.metrics]:
        last.update({t: float(row[f"lambda/{t}"]) for t in tasks if f"lambda/{t}" in row})
    return last


def describe_choice(config: Mapping[str, Any]) -> str:
    """``rotation=0.31 blur_reconstruction=0.12 (meta_lr=0.02)`` for tables.

    Takes a trial config (``lambda: {task: value}``) or flat params (``lambda/<task>``).
    """
    from auxtune.trainables.config import trial_lambdas

    text = " ".join(f"{t}={v:.3g}" for t, v in trial_lambdas(config).items())
    if "meta_lr" in config:
        text += f" (meta_lr={float(config['meta_lr']):.3g})"
    return text


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def default_out(exp: ExperimentConfig) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path(exp.tracking.workdir) / f"compare-{exp.name}-{stamp}"


# ------------------------------------------------------------------------------- the driver
def run_compare(
    exp: ExperimentConfig,
    *,
    address: str | None = None,
    out: str | Path | None = None,
    command: str = "",
    verbose: int = 1,
) -> tuple[Comparison, Path]:
    """Search with every strategy, retrain the winners, write the report; see the module doc."""
    from auxtune.platform import tracking
    from auxtune.platform.report import check_out_dir, write_report
    from auxtune.platform.search import _connect, run_search

    start = time.perf_counter()
    plan = plan_compare(exp)
    out_dir = Path(out) if out else default_out(exp)
    check_out_dir(out_dir)
    target = tracking.resolve_tracking(exp.tracking.workdir, exp.tracking.tracking_uri)
    tracking.check_reachable(target)
    prepare_data(exp)
    started_ray = _connect(address, exp.tracking.storage)
    client = tracking.client(target.uri)
    experiment_name = f"{exp.name}-compare"
    experiment_id = tracking.ensure_experiment(client, experiment_name, target)
    run_id = _start_compare_run(client, experiment_id, exp, plan, command)
    try:
        searches = {}
        for strategy in plan.strategies:
            _say(f"{strategy}: searching with a budget of {plan.budget} trial-epochs")
            searches[strategy] = run_search(
                exp,
                strategy,
                address=address,
                search_name=f"{exp.name}-compare-{strategy}",
                parent_run_id=run_id,
                budget_trial_epochs=plan.budget,
                verbose=verbose,
            )
            _say(_search_line(searches[strategy], exp.search.metric))
        choices = {
            s: retrain_choice(s, result.best, exp.tasks.names) for s, result in searches.items()
        }
        _say(f"retraining {len(choices)} configurations x {len(plan.seeds)} seeds")
        retrain_start = time.perf_counter()
        retrains = run_retrains(
            exp,
            {s: config for s, (config, _) in choices.items()},
            plan.seeds,
            target=target,
            experiment_id=experiment_id,
            parent_run_id=run_id,
            on_cluster=address is not None,
            verbose=verbose,
        )
        comparison = Comparison(
            name=exp.name,
            created=utc_now(),
            budget_trial_epochs=plan.budget,
            seeds=plan.seeds,
            strategies=tuple(
                StrategyOutcome(s, searches[s], choices[s][0], choices[s][1], retrains.get(s, ()))
                for s in plan.strategies
            ),
            config=resolved_config(exp, plan),
            command=command,
            versions=tracking.library_versions(),
            tracking_uri=target.uri,
            experiment_name=experiment_name,
            mlflow_run_id=run_id,
            wall_s=time.perf_counter() - start,
            retrain_wall_s=time.perf_counter() - retrain_start,
        )
        write_report(comparison, out_dir)
        _finish_compare_run(client, run_id, comparison, out_dir)
    except BaseException as err:
        client.set_terminated(run_id, "KILLED" if isinstance(err, KeyboardInterrupt) else "FAILED")
        raise
    finally:
        if started_ray:
            import ray

            ray.shutdown()
    return comparison, out_dir


def prepare_data(exp: ExperimentConfig) -> None:
    """Load (for synthetic data: generate and cache) the splits and the corrupted test set once,
    before any search, so no strategy's seconds include it and bad data fails before Ray starts."""
    from auxtune.data.datasets import load_corrupted_test, load_dataset

    _say(f"preparing the {exp.data.dataset} data and its corrupted test set")
    load_corrupted_test(exp.data, load_dataset(exp.data))


def run_retrains(
    exp: ExperimentConfig,
    choices: Mapping[str, Mapping[str, Any]],
    seeds: Sequence[int],
    *,
    target: TrackingTarget,
    experiment_id: str,
    parent_run_id: str,
    on_cluster: bool = False,
    verbose: int = 1,
) -> dict[str, tuple[Retrain, ...]]:
    """Every (strategy, seed) trained from scratch in one Tune run, through the search's trainable.

    The runs are nested under a ``retrain`` run below the comparison's MLflow run.
    """
    from ray import tune

    from auxtune.platform import search, tracking
    from auxtune.trainables.data import prepare_trial_data

    workdir = Path(exp.tracking.workdir).expanduser().resolve()
    name = f"{exp.name}-compare-retrain"
    exp_dir, state_path = search._experiment_dir(exp, name, workdir, resume=False)
    train_cfg = retrain_base(exp, choices).train_config()
    data = prepare_trial_data(train_cfg)
    trainable, concurrency = search.trial_trainable(exp, train_cfg, data, exp_dir, on_cluster)
    client = tracking.client(target.uri)
    retrain_run = client.create_run(
        experiment_id,
        run_name=name,
        tags={tracking.PARENT_TAG: parent_run_id, "auxtune.kind": "retrain"},
    ).info.run_id
    callback = tracking.MlflowTrialCallback(
        tracking_uri=target.uri,
        experiment_id=experiment_id,
        parent_run_id=retrain_run,
        state_path=state_path,
        trial_params=search._TrialParams("retrain", to_dict(train_cfg)),
        trial_artifacts=search._TrialArtifacts(to_dict(train_cfg)),
        tags={"auxtune.strategy": "retrain"},
    )
    storage, tune_name = exp_dir.rsplit("/", 1)
    tuner = tune.Tuner(
        trainable,
        param_space=retrain_space(choices, seeds, exp.weighting.meta_lr),
        tune_config=tune.TuneConfig(
            max_concurrent_trials=concurrency,
            reuse_actors=True,
            trial_name_creator=retrain_trial_name,
        ),
        run_config=tune.RunConfig(
            name=tune_name,
            storage_path=storage,
            callbacks=[callback],
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            # a retrain lost with its node resumes from its last epoch, as search trials do
            failure_config=tune.FailureConfig(
                max_failures=exp.search.max_failures, fail_fast=False
            ),
            verbose=verbose,
        ),
    )
    grid = tuner.fit()
    state = tracking.SearchState(state_path)
    summaries = search._summaries(grid, exp_dir, state.runs, state.histories())
    client.set_terminated(retrain_run, "FINISHED" if summaries else "FAILED")
    found: dict[str, list[Retrain]] = {}
    for trial in summaries:
        retrain = retrain_from_trial(trial)
        found.setdefault(retrain.strategy, []).append(retrain)
    return {s: tuple(sorted(rs, key=lambda r: r.seed)) for s, rs in found.items()}


def retrain_base(exp: ExperimentConfig, choices: Mapping[str, Any]) -> ExperimentConfig:
    """The experiment every retrain starts from (data paths absolute for the trials).

    Under the ``paper`` protocol the meta-validation images are cut from every corrupted test
    block; when meta is compared, *every* strategy is evaluated without them, on the same images.
    """
    from auxtune.trainables.data import absolute_data_config

    weighting = exp.weighting
    if "meta" in choices:
        weighting = dataclasses.replace(weighting, name="meta")
    return dataclasses.replace(exp, data=absolute_data_config(exp.data), weighting=weighting)


def retrain_space(
    choices: Mapping[str, Mapping[str, Any]], seeds: Sequence[int], default_meta_lr: float
) -> dict[str, Any]:
    """Tune's grid over (strategy, seed); each strategy's lambdas, weighting and meta_lr follow it."""
    from ray import tune

    table = {s: dict(c) for s, c in choices.items()}

    def pick(key: str, default: Any = None) -> Any:
        return tune.sample_from(lambda config: table[config["strategy"]].get(key, default))

    return {
        "strategy": tune.grid_search(list(table)),
        "seed": tune.grid_search(list(seeds)),
        "lambda": pick("lambda", {}),
        "meta_lr": pick("meta_lr", default_meta_lr),
        "weighting.name": pick("weighting.name", "fixed"),
    }


def retrain_trial_name(trial: Any) -> str:
    """``retrain-meta-seed1``: the Tune trial's (and its MLflow run's) name."""
    return f"retrain-{trial.config['strategy']}-seed{trial.config['seed']}"


def retrain_from_trial(trial: TrialSummary) -> Retrain:
    """A :class:`Retrain` from the Tune trial that ran it."""
    metrics = trial.metrics
    clean = next((metrics[k] for k in CLEAN_KEYS if k in metrics), None)
    return Retrain(
        strategy=str(trial.params["strategy"]),
        seed=int(trial.params["seed"]),
        clean_accuracy=clean,
        c15=metrics.get("c15_accuracy"),
        c19=metrics.get("c19_accuracy"),
        per_corruption={k[2:]: float(v) for k, v in metrics.items() if k.startswith("c/")},
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
        "strategies": list(plan.strategies),
        "budget": plan.budget,
        "seeds": len(plan.seeds),
    }
    return config


# ------------------------------------------------------------------------------------ MLflow
def _start_compare_run(
    client: Any, experiment_id: str, exp: ExperimentConfig, plan: ComparePlan, command: str
) -> str:
    from auxtune.platform import tracking

    params = {
        "strategies": ",".join(plan.strategies),
        "budget_trial_epochs": str(plan.budget),
        "seeds": ",".join(map(str, plan.seeds)),
        "command": command,
    }
    params.update(tracking.as_params(exp.to_dict(), "config."))
    params.update({f"version.{k}": v for k, v in tracking.library_versions().items()})
    run = client.create_run(
        experiment_id,
        run_name=f"compare-{datetime.now().strftime('%Y%m%d-%H%M%S')}",
        tags={"auxtune.kind": "compare"},
    )
    tracking.log_batch(client, run.info.run_id, params=params)
    return str(run.info.run_id)


def _finish_compare_run(client: Any, run_id: str, comparison: Comparison, out: Path) -> None:
    """The table's numbers as metrics, the report directory as artifacts."""
    from auxtune.platform import tracking

    metrics: dict[str, float] = {"wall_s": comparison.wall_s}
    steps = comparison.step_seconds()
    for o in comparison.strategies:
        for key in ("clean_accuracy", "c15", "c19"):
            mean, std = o.stat(key)
            if mean is not None:
                metrics[f"{o.strategy}/{key}"] = mean
            if std is not None:
                metrics[f"{o.strategy}/{key}_std"] = std
        metrics[f"{o.strategy}/trial_epochs"] = float(o.search.trial_epochs)
        metrics[f"{o.strategy}/search_wall_s"] = o.search.wall_s
        if steps.get(o.strategy) is not None:
            metrics[f"{o.strategy}/step_s"] = float(steps[o.strategy])  # type: ignore[arg-type]
    best = comparison.best()
    tags = {"best_strategy": best.strategy} if best else {}
    tracking.log_batch(client, run_id, metrics=metrics, tags=tags)
    client.log_artifacts(run_id, str(out))
    client.set_terminated(run_id, "FINISHED")


def _say(line: str) -> None:
    print(f"[compare] {line}", file=sys.stderr, flush=True)


def _search_line(result: SearchResult, metric: str) -> str:
    value = result.best.metrics.get(metric)
    shown = "n/a" if value is None else f"{100 * value:.2f}%"
    return (
        f"{result.strategy}: {len(result.trials)} trials, {result.trial_epochs} trial-epochs, "
        f"{result.wall_s:.0f} s; best {metric} {shown} ({describe_choice(result.best.params)})"
    )
