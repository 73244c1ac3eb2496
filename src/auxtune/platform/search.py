"""``run_search``: one Ray Tune search over the auxiliary-task lambdas, recorded in MLflow.

    exp = load_experiment("configs/demo.yaml")
    result = run_search(exp, "pbt")
    result.best.params, result.best.metrics["c15_accuracy"]

The driver loads the data once (object store), creates the MLflow experiment and the search's
parent run, then runs Tune with :class:`~auxtune.platform.tracking.MlflowTrialCallback` writing one
nested run per trial. Resources: each trial computes with ``search.cpus_per_trial`` threads and
asks Ray for a little less, so one logical CPU always stays free (Ray Data and other tasks never
starve), while ``max_concurrent_trials`` keeps the machine exactly full.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from auxtune.config import from_dict, to_dict
from auxtune.errors import UserError
from auxtune.platform import tracking
from auxtune.platform.config import ExperimentConfig
from auxtune.search_spaces import SearchPlan, build_plan, check_strategy

log = logging.getLogger("auxtune.search")
RESULTS_DIR = "ray_results"  # under tracking.workdir unless tracking.storage is set
CONNECT_TIMEOUT_S = 5.0
#: more ``tune.Callback`` objects for every new search (tests use it to interrupt one)
EXTRA_CALLBACKS: list[Any] = []


@dataclass(frozen=True)
class TrialSummary:
    trial_id: str
    params: dict[str, float | str]  # what the strategy chose: lambda/<task>, meta_lr, ...
    metrics: dict[str, float]  # last reported metrics (val_corrupt_accuracy, c15/c19 at the end)
    history: list[dict[str, float]]  # per-epoch metrics (losses, lambda/<task>, accuracies, time)
    epochs: int  # epochs this trial trained (trial-epochs spent)
    seconds: float  # wall time the trial was busy
    status: str  # TERMINATED | ERROR | ...
    error: str | None
    mlflow_run_id: str | None
    node_id: str | None  # Ray node the trial last ran on


@dataclass(frozen=True)
class SearchResult:
    strategy: str
    experiment_name: str  # MLflow experiment (one per search name)
    parent_run_id: str  # MLflow parent run of this search
    best: TrialSummary
    trials: list[TrialSummary]
    trial_epochs: int  # sum of epochs over trials (compute spent)
    wall_s: float
    results_path: str  # Ray Tune experiment directory
    logging_s: float = 0.0  # driver time spent writing to MLflow
    tracking_uri: str = ""
    phases: dict[str, float] = dataclasses.field(default_factory=dict)  # driver seconds by phase

    @property
    def failed(self) -> list[TrialSummary]:
        return [t for t in self.trials if t.status == "ERROR"]


class _Phases:
    """Wall seconds of the driver's phases (data, ray_init, mlflow_setup, tune_fit, ...)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._name: str | None = None
        self._start = 0.0

    def begin(self, name: str | None) -> None:
        now = time.perf_counter()
        if self._name is not None:
            self.seconds[self._name] = self.seconds.get(self._name, 0.0) + now - self._start
        self._name, self._start = name, now

    def __call__(self, name: str) -> Any:
        phases = self

        class _Span:
            def __enter__(self) -> None:
                phases.begin(name)

            def __exit__(self, *exc: Any) -> None:
                phases.begin(None)

        return _Span()


class SearchError(UserError):
    """The search produced no finished trial."""


# --------------------------------------------------------------------------------- the driver
def run_search(
    exp: ExperimentConfig,
    strategy: str,
    *,
    address: str | None = None,
    resume: bool = False,
    search_name: str | None = None,
    parent_run_id: str | None = None,
    budget_trial_epochs: int | None = None,
    verbose: int = 1,
) -> SearchResult:
    """Run (or with ``resume`` continue) the ``strategy`` search of ``exp``; see SEARCH_API.md.

    ``address``: None starts a local Ray (or reuses an initialised one), ``"auto"`` or
    ``"ray://host:port"`` connects to a cluster. ``budget_trial_epochs`` caps
    ``trials * optim.epochs``.
    """
    check_strategy(strategy)
    start = time.perf_counter()
    name = search_name or f"{exp.name}-{strategy}"
    workdir = Path(exp.tracking.workdir).expanduser().resolve()
    target = tracking.resolve_tracking(workdir, exp.tracking.tracking_uri)
    exp_dir, state_path = _experiment_dir(exp, name, workdir, resume)
    state = tracking.SearchState(state_path)
    if resume and state.data.get("tracking_uri"):
        target = tracking.TrackingTarget(
            state.data["tracking_uri"], state.data.get("artifact_root")
        )
    tracking.check_reachable(target)  # before any Ray or data work
    if address not in (None, "auto"):
        _probe(address)
    if address and address.startswith("ray://") and target.is_local:
        print(
            "note: through ray:// Tune's driver (and its MLflow callback) runs on the cluster's head "
            f"node, so {target.uri} is written there; prefer --tracking-uri http://HOST:PORT and a "
            "shared --storage",
            file=sys.stderr,
        )

    exp, plan = _plan(exp, strategy, budget_trial_epochs)
    train_cfg = exp.train_config()
    _check_weighting(train_cfg.weighting.name)
    from auxtune.trainables.data import prepare_trial_data

    phases = _Phases()
    with phases("data"):
        data = prepare_trial_data(train_cfg)
    with phases("ray_init"):
        started_ray = _connect(address, exp.tracking.storage)
    try:
        phases.begin("mlflow_setup")
        client = tracking.client(target.uri)
        experiment_id = tracking.ensure_experiment(client, name, target)
        parent = _parent_run(
            client,
            experiment_id,
            exp,
            strategy,
            name,
            plan,
            state,
            parent_run_id,
            budget_trial_epochs,
            exp_dir,
        )
        state.data.update(
            search_name=name,
            strategy=strategy,
            tracking_uri=target.uri,
            artifact_root=target.artifact_root,
            experiment_id=experiment_id,
            parent_run_id=parent,
        )
        state.save()
        phases.begin("tune_setup")
        tuner = _tuner(
            exp,
            strategy,
            plan,
            train_cfg,
            data,
            exp_dir,
            state_path,
            target,
            experiment_id,
            parent,
            resume,
            verbose,
            on_cluster=address is not None,
        )
        phases.begin("tune_fit")
        try:
            grid = tuner.fit()
        except BaseException as err:  # the parent run must not stay RUNNING forever
            status = "KILLED" if isinstance(err, KeyboardInterrupt) else "FAILED"
            client.set_terminated(parent, status)
            raise
        phases.begin("summary")
        state = tracking.SearchState(state_path)
        runs = state.runs or tracking.trial_runs(client, experiment_id, parent)
        trials = _summaries(grid, exp_dir, runs, state.histories())
        try:
            result = _result(exp, strategy, name, parent, trials, exp_dir, start, state, target)
        except SearchError:
            client.set_terminated(parent, "FAILED")
            raise
        _close_parent(client, parent, result, exp.search.metric)
        phases.begin(None)
        log.info("search %s phases (s): %s", name, phases.seconds)
        return dataclasses.replace(result, phases=phases.seconds)
    finally:
        if started_ray:
            import ray

            ray.shutdown()


def _plan(
    exp: ExperimentConfig, strategy: str, budget: int | None
) -> tuple[ExperimentConfig, SearchPlan]:
    """The strategy's plan within the budget, and the experiment with its data paths absolute."""
    from auxtune.trainables.data import absolute_data_config

    epochs = exp.optim.epochs
    num_trials: int | None = exp.search.num_trials
    if strategy == "fixed":
        num_trials = None  # the whole grid, unless the budget cuts it
    if budget is not None:
        if budget < epochs:
            raise UserError(
                f"budget of {budget} trial-epochs is less than one trial of optim.epochs={epochs}"
            )
        num_trials = min(num_trials or budget // epochs, budget // epochs)
    plan = build_plan(strategy, exp, num_trials)  # type: ignore[arg-type]
    exp = dataclasses.replace(exp, data=absolute_data_config(exp.data))
    if plan.weighting and plan.weighting != exp.weighting.name:
        exp = dataclasses.replace(
            exp, weighting=dataclasses.replace(exp.weighting, name=plan.weighting)
        )
    for note in plan.notes:
        print(note, file=sys.stderr)
    return exp, plan


def _check_weighting(name: str) -> None:
    from auxtune.robust.weighting import WEIGHTINGS

    if name not in WEIGHTINGS:
        raise UserError(
            f"weighting {name!r} is not available in this build (have: {', '.join(WEIGHTINGS)})"
        )


def _experiment_dir(
    exp: ExperimentConfig, name: str, workdir: Path, resume: bool
) -> tuple[str, str]:
    """Tune experiment directory (a fresh ``name``, ``name-2``, ... unless resuming the latest)."""
    storage = exp.tracking.storage
    if storage and "://" in storage:  # remote storage: no directory probing, state kept locally
        return f"{storage.rstrip('/')}/{name}", str(workdir / "search_state" / f"{name}.json")
    root = Path(storage).expanduser().resolve() if storage else workdir / RESULTS_DIR
    candidates = [root / name] + [root / f"{name}-{i}" for i in range(2, 10_000)]
    existing = [p for p in candidates[:1] if p.exists()]
    for path in candidates[1:]:
        if not path.exists():
            break
        existing.append(path)
    if resume:
        started = [p for p in existing if (p / "tuner.pkl").is_file()]
        if not started:
            raise UserError(
                f"nothing to resume: no search {name!r} under {root} (run it without --resume first)"
            )
        path = started[-1]
    else:
        path = next(p for p in candidates if not p.exists())
    return str(path), str(path / tracking.STATE_FILE)


def _connect(address: str | None, storage: str | None) -> bool:
    """Initialise Ray; True when this call started it (and so must shut it down).

    An already initialised Ray (a test session, a notebook) is reused. ``address=None`` starts a
    fresh local instance even when a cluster runs on this machine (``address="local"``). A
    cluster of several nodes needs ``storage`` (``tracking.storage``): see :func:`_check_storage`.
    """
    import ray

    if address not in (None, "auto"):
        _probe(address)
    started = not ray.is_initialized()
    if started and address is None:
        ray.init(
            address="local",
            num_cpus=os.cpu_count() or 1,
            include_dashboard=False,
            log_to_driver=True,
        )
    elif started:
        try:
            ray.init(address=address, log_to_driver=True)
        except (ConnectionError, TimeoutError, OSError, RuntimeError) as err:
            first = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise UserError(f"cannot connect to the Ray cluster at {address}: {first}") from None
    try:
        _check_storage(storage)
    except UserError:
        if started:
            ray.shutdown()
        raise
    return started


def _check_storage(storage: str | None) -> None:
    """Refuse a multi-node cluster without ``tracking.storage``: Tune's default results directory
    is on the driver's disk, which trials on other nodes cannot write their checkpoints to."""
    import ray

    nodes = [n for n in ray.nodes() if n.get("Alive")]
    if len(nodes) > 1 and not storage:
        raise UserError(
            f"the Ray cluster has {len(nodes)} nodes but no shared results storage: pass "
            "--storage s3://BUCKET/PATH or a directory every node mounts (tracking.storage)"
        )


def _probe(address: str) -> None:
    """Fail in seconds (not minutes) when nothing listens at ``[ray://]host:port``."""
    hostport = address.removeprefix("ray://")
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit():
        raise UserError(f"Ray address {address!r} is not auto, ray://HOST:PORT or HOST:PORT")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as err:
        raise UserError(
            f"cannot reach the Ray cluster at {address} ({err.strerror or err}); is it running "
            "(`ray start --head`) and is the port open?"
        ) from None


def _resources(exp: ExperimentConfig, on_cluster: bool) -> tuple[dict[str, float], int | None, int]:
    """(Ray request per trial, max concurrent trials or None for no cap, torch threads per trial).

    On this machine's own Ray, trials fill its CPUs less one logical CPU left free (Ray Data and
    Tune's own tasks need it: PLATFORM_NOTES' 2-CPU deadlock). On a cluster (``--address``) each
    trial asks exactly its share and only ``search.max_concurrent`` caps the concurrency: pending
    trials are what makes the autoscaler add worker nodes, so sizing the search from the nodes up
    at its start would pin it to them.
    """
    import ray

    share, gpu = exp.search.cpus_per_trial, exp.search.gpus_per_trial
    threads = max(1, int(share))
    cluster = ray.cluster_resources()
    cpus, gpus = float(cluster.get("CPU", 1)), float(cluster.get("GPU", 0))
    if on_cluster:
        if gpu > 0 and gpus < gpu:
            print(
                f"note: the Ray cluster has {gpus:g} GPUs now; trials asking for {gpu:g} wait until "
                "the autoscaler adds GPU nodes",
                file=sys.stderr,
            )
        resources = {"cpu": share, **({"gpu": gpu} if gpu > 0 else {})}
        return resources, exp.search.max_concurrent or None, threads
    concurrency = exp.search.max_concurrent or max(1, int(cpus // share))
    if gpu > 0:
        if gpus < gpu:
            raise UserError(
                f"--gpus-per-trial {gpu} but the Ray cluster has {gpus:g} GPUs; use 0 for CPU trials"
            )
        concurrency = min(concurrency, int(gpus // gpu + 1e-9))
    # ask a little less than the share so one logical CPU stays free for Ray Data / other tasks
    request = max(min(share, (cpus - 1) / concurrency), min(share, 0.5))
    resources = {"cpu": round(request, 3)}
    if gpu > 0:
        resources["gpu"] = gpu
    return resources, concurrency, threads


def trial_trainable(
    exp: ExperimentConfig, train_cfg: Any, data: Any, exp_dir: str, on_cluster: bool
) -> tuple[Any, int | None]:
    """(the resource-wrapped trial function, max concurrent trials) of a Tune run in ``exp_dir``;
    ``on_cluster``: Ray was reached through ``--address`` (see :func:`_resources`).

    Diverged trials leave a marker in ``<exp_dir>/diverged/`` so that retries fail at once.
    """
    from ray import tune

    from auxtune.trainables.function import auxtune_trial

    resources, concurrency, threads = _resources(exp, on_cluster)
    diverged_dir = None if "://" in exp_dir else str(Path(exp_dir, "diverged"))
    setup = {"train": to_dict(train_cfg), "threads": threads, "diverged_dir": diverged_dir}
    trainable = tune.with_resources(
        tune.with_parameters(auxtune_trial, setup=setup, data=data), resources
    )
    return trainable, concurrency


def _tuner(
    exp: ExperimentConfig,
    strategy: str,
    plan: SearchPlan,
    train_cfg: Any,
    data: Any,
    exp_dir: str,
    state_path: str,
    target: tracking.TrackingTarget,
    experiment_id: str,
    parent: str,
    resume: bool,
    verbose: int,
    on_cluster: bool,
) -> Any:
    from ray import tune

    trainable, concurrency = trial_trainable(exp, train_cfg, data, exp_dir, on_cluster)
    if resume:
        return tune.Tuner.restore(exp_dir, trainable, resume_unfinished=True, resume_errored=True)
    train_dict = to_dict(train_cfg)
    callback = tracking.MlflowTrialCallback(
        tracking_uri=target.uri,
        experiment_id=experiment_id,
        parent_run_id=parent,
        state_path=state_path,
        trial_params=_TrialParams(strategy, train_dict),
        trial_artifacts=_TrialArtifacts(train_dict),
        tags={"auxtune.strategy": strategy},
    )
    storage, name = exp_dir.rsplit("/", 1)
    return tune.Tuner(
        trainable,
        param_space=plan.param_space,
        tune_config=tune.TuneConfig(
            num_samples=plan.num_samples,
            search_alg=plan.search_alg,
            scheduler=plan.scheduler,
            max_concurrent_trials=concurrency,
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name=name,
            storage_path=storage,
            # a trial's last epoch ends it before the scheduler sees the result: otherwise PBT may
            # exploit a finished trial, and it trains its last epoch again from a donor's checkpoint
            stop={"epoch": exp.optim.epochs},
            callbacks=[callback, *EXTRA_CALLBACKS],
            checkpoint_config=tune.CheckpointConfig(num_to_keep=plan.checkpoints_to_keep),
            failure_config=tune.FailureConfig(
                max_failures=exp.search.max_failures, fail_fast=False
            ),
            verbose=verbose,
        ),
    )


class _TrialParams:
    """Params of a trial's MLflow run (picklable: it travels inside Tune's tuner.pkl)."""

    def __init__(self, strategy: str, train: dict[str, Any]) -> None:
        self.strategy, self.train = strategy, train

    def __call__(self, config: dict[str, Any]) -> dict[str, str]:
        from auxtune.robust.config import TrainConfig
        from auxtune.trainables.config import chosen_params, trial_train_config

        cfg = trial_train_config(from_dict(TrainConfig, self.train), config)
        params = {"strategy": self.strategy}
        params.update({k: str(v) for k, v in chosen_params(config).items()})
        initial = cfg.weighting.initial_lambdas(cfg.tasks.names)
        params.update({f"lambda/{t}": str(v) for t, v in initial.items()})
        params.update(tracking.as_params(to_dict(cfg), "train."))
        return params


class _TrialArtifacts:
    """End-of-trial artifacts: the resolved config YAML and the lambda-trajectory SVG."""

    def __init__(self, train: dict[str, Any]) -> None:
        self.train = train

    def __call__(self, config: dict[str, Any], history: list[dict[str, float]]) -> dict[str, bytes]:
        import yaml

        from auxtune.platform.svg import lambda_trajectory_svg
        from auxtune.robust.config import TrainConfig
        from auxtune.trainables.config import chosen_params, trial_train_config

        cfg = trial_train_config(from_dict(TrainConfig, self.train), config)
        text = yaml.safe_dump(to_dict(cfg), sort_keys=False)
        title = ", ".join(
            f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in chosen_params(config).items()
        )
        return {
            "config.yaml": text.encode(),
            "lambda_trajectory.svg": lambda_trajectory_svg(history, title or "lambdas"),
        }


def _parent_run(
    client: Any,
    experiment_id: str,
    exp: ExperimentConfig,
    strategy: str,
    name: str,
    plan: SearchPlan,
    state: tracking.SearchState,
    nest_under: str | None,
    budget: int | None,
    exp_dir: str,
) -> str:
    if state.data.get("parent_run_id"):  # resume: the same parent run
        run_id = str(state.data["parent_run_id"])
        client.update_run(run_id, status="RUNNING")
        return run_id
    params = {
        "strategy": strategy,
        "search_name": name,
        "trials": str(plan.trials),
        "budget_trial_epochs": str(
            budget if budget is not None else plan.trials * exp.optim.epochs
        ),
        "seed": str(exp.seed),
    }
    params.update(tracking.as_params(exp.to_dict(), "config."))
    params.update({f"version.{k}": v for k, v in tracking.library_versions().items()})
    return tracking.start_parent_run(
        client,
        experiment_id,
        run_name=f"{name}",
        params=params,
        tags={"auxtune.strategy": strategy, "ray.experiment_dir": exp_dir},
        parent_run_id=nest_under,
    )


# -------------------------------------------------------------------------------- the results
def _summaries(
    grid: Any, exp_dir: str, runs: dict[str, str], histories: dict[str, list[dict[str, Any]]]
) -> list[TrialSummary]:
    """One summary per trial; histories from the driver's record (complete under PBT)."""
    from auxtune.trainables.config import chosen_params

    analysis = getattr(grid, "_experiment_analysis", None)
    trials = list(analysis.trials) if analysis is not None else []
    saved = _saved_statuses(exp_dir)
    summaries = []
    for trial in trials:
        rows = histories.get(trial.trial_id) or _result_json(trial)
        history = [
            {k: float(v) for k, v in row.items() if isinstance(v, (int, float))} for row in rows
        ]
        last = history[-1] if history else {}
        # Tune marks running trials TERMINATED when it stops on Ctrl-C; its saved state knows better
        status = str(saved.get(trial.trial_id, trial.status))
        error = tracking.trial_error_message(trial) if status == "ERROR" else None
        node = (trial.last_result or {}).get("node_id")
        summaries.append(
            TrialSummary(
                trial_id=trial.trial_id,
                params=chosen_params(trial.config),
                metrics={k: v for k, v in last.items() if k not in ("step", "training_iteration")},
                history=history,
                epochs=len(history),
                seconds=float(sum(row.get("time/iter_s", 0.0) for row in history)),
                status=status,
                error=error,
                mlflow_run_id=runs.get(trial.trial_id),
                node_id=str(node) if node else None,
            )
        )
    return summaries


def _saved_statuses(exp_dir: str) -> dict[str, str]:
    """Trial statuses in Tune's last saved experiment state (taken before its Ctrl-C cleanup)."""
    if "://" in exp_dir:
        return {}
    try:
        from ray.tune import ExperimentAnalysis

        return {t.trial_id: t.status for t in ExperimentAnalysis(exp_dir).trials}
    except Exception:  # no readable state: keep the in-memory statuses
        return {}


def _result_json(trial: Any) -> list[dict[str, Any]]:
    """Fallback history: the trial's ``result.json`` (incomplete after PBT restores)."""
    path = Path(trial.local_path or trial.path or "", "result.json")
    if not path.is_file():
        return []
    rows: list[dict[str, Any]] = []
    for line in path.read_text().splitlines():
        if line.strip():
            result = json.loads(line)
            row: dict[str, Any] = {"step": len(rows) + 1, **tracking.numeric_metrics(result)}
            row["time/iter_s"] = float(result.get("time_this_iter_s") or 0.0)
            row["training_iteration"] = int(result.get("training_iteration") or 0)
            rows.append(row)
    return rows


def pick_best(trials: list[TrialSummary], metric: str) -> TrialSummary | None:
    """Highest final ``metric`` among trials that trained every epoch (else among all that have it)."""
    scored = [t for t in trials if t.status != "ERROR" and _finite(t.metrics.get(metric))]
    if not scored:
        return None
    longest = max(t.epochs for t in scored)
    full = [t for t in scored if "c15_accuracy" in t.metrics or t.epochs == longest]
    return max(full or scored, key=lambda t: t.metrics[metric])


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _result(
    exp: ExperimentConfig,
    strategy: str,
    name: str,
    parent: str,
    trials: list[TrialSummary],
    exp_dir: str,
    start: float,
    state: tracking.SearchState,
    target: tracking.TrackingTarget,
) -> SearchResult:
    best = pick_best(trials, exp.search.metric)
    if best is None:
        errors = "; ".join(f"{t.trial_id}: {t.error}" for t in trials if t.error)
        raise SearchError(
            f"search {name!r} finished no trial ({len(trials)} trials)"
            + (f"; errors: {errors}" if errors else "")
        )
    return SearchResult(
        strategy=strategy,
        experiment_name=name,
        parent_run_id=parent,
        best=best,
        trials=trials,
        trial_epochs=sum(t.epochs for t in trials),
        wall_s=time.perf_counter() - start,
        results_path=exp_dir,
        logging_s=float(state.data.get("logging_s", 0.0)),
        tracking_uri=target.uri,
    )


def _close_parent(client: Any, parent: str, result: SearchResult, metric: str) -> None:
    metrics = {
        f"best/{metric}": result.best.metrics[metric],
        "trial_epochs": float(result.trial_epochs),
        "wall_s": result.wall_s,
        "trials": float(len(result.trials)),
        "failed_trials": float(len(result.failed)),
    }
    for key in ("c15_accuracy", "c19_accuracy", "val_accuracy"):
        if key in result.best.metrics:
            metrics[f"best/{key}"] = result.best.metrics[key]
    for key, value in result.best.params.items():
        if isinstance(value, (int, float)):
            metrics[f"best/{key}"] = float(value)
    tags = {"best.trial_id": result.best.trial_id, "best.run_id": result.best.mlflow_run_id or ""}
    tracking.log_batch(client, parent, metrics=metrics, tags=tags)
    unfinished = [t for t in result.trials if t.status not in ("TERMINATED", "ERROR")]
    client.set_terminated(parent, "KILLED" if unfinished else "FINISHED")


__all__ = ["SearchError", "SearchResult", "TrialSummary", "pick_best", "run_search"]
