"""``run_search``: one strategy's Ray Tune search over the auxiliary-task lambdas, in MLflow.

    exp = load_experiment("configs/demo.yaml")
    result = run_search(exp, "pbt")
    result.best.params, result.best.metrics["c15_accuracy"]

The driver loads the data once (object store), opens the search's MLflow parent run, runs the
trials (:func:`~auxtune.platform.tuning.run_trials`: one nested MLflow run per trial) and closes
the parent run with the best trial's metrics -- as FAILED or KILLED when anything in between fails.
With ``budget_trial_epochs`` (what ``auxtune compare`` gives every strategy) the search spends
exactly that many trial-epochs whatever its scheduler (:mod:`auxtune.platform.budget`).

This module is the driver; what it gives back is :mod:`~auxtune.platform.search_result`'s
``SearchResult``, its parent run and ledger note are :mod:`~auxtune.platform.search_records`, and
its trials' names :mod:`~auxtune.platform.trial_names`.
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from auxtune.platform import tracking
from auxtune.platform.budget import BudgetedSearcher, trial_count
from auxtune.platform.config import ExperimentConfig, check_name
from auxtune.platform.ray_runtime import library_logs_to, ray_session
from auxtune.platform.search_records import (
    Nesting,
    close_parent_run,
    mark_complete,
    open_parent_run,
)
from auxtune.platform.search_result import SearchError, SearchResult, collect_result
from auxtune.platform.tracking.lifecycle import prepare_store
from auxtune.platform.trial_names import TrialNamer
from auxtune.platform.trials import TrialSummary, pick_best
from auxtune.platform.tuning import RunRecord, TrialRun, run_trials
from auxtune.platform.workdir import claim_experiment_dir
from auxtune.ray_connect import check_address
from auxtune.search_spaces import SearchPlan, build_plan, check_strategy

log = logging.getLogger("auxtune.search")
#: more ``tune.Callback`` objects for every new search (tests use it to interrupt one)
EXTRA_CALLBACKS: list[Any] = []


class Phases:
    """Wall seconds of the driver's phases (data, ray_init, mlflow_setup, tune_fit, ...)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start


# --------------------------------------------------------------------------------- the driver
def run_search(
    exp: ExperimentConfig,
    strategy: str,
    *,
    address: str | None = None,
    resume: bool = False,
    search_name: str | None = None,
    nesting: Nesting | None = None,
    budget_trial_epochs: int | None = None,
    verbose: int = 1,
    progress: bool = False,
    log_file: str | Path | None = None,
) -> SearchResult:
    """Run (or with ``resume`` continue) the ``strategy`` search of ``exp``.

    ``address``: None starts a local Ray (or reuses an initialised one), ``"auto"`` or
    ``"ray://host:port"`` connects to a cluster. ``nesting`` records the search inside another
    MLflow experiment and run; without it the search has its own experiment, named after it.
    ``budget_trial_epochs``: the trial-epochs to spend (see :mod:`auxtune.platform.budget`).
    ``progress``: one status line on stderr instead of Tune's tables. ``log_file``: the
    libraries' messages (Ray's, MLflow's, Optuna's) go there instead of the console.
    """
    check_strategy(strategy)
    start = time.perf_counter()
    if search_name is not None:
        check_name(search_name, "--name")
    name = search_name or f"{exp.name}-{strategy}"
    check_outputs(exp)
    target = tracking.resolve_tracking(exp.tracking.workdir, exp.tracking.tracking_uri)
    phases = Phases()
    with ExitStack() as stack:
        stack.enter_context(_out_of_space_is_one_line(name))  # outermost: after every cleanup
        stack.enter_context(library_logs_to(log_file))
        # the driver holds its experiment directory until it returns (or dies)
        slot = stack.enter_context(claim_experiment_dir(exp, name, resume))
        exp_dir, ledger = slot.exp_dir, slot.ledger
        state = tracking.SearchState(ledger)
        if resume and state.data.get("tracking_uri"):
            target = tracking.TrackingTarget(
                state.data["tracking_uri"], state.data.get("artifact_root")
            )
        tracking.check_reachable(target)  # before any Ray or data work
        prepare_store(target)  # a fresh store's schema, one process at a time
        if address is not None:
            check_address(address)  # seconds, not minutes, for an address nobody answers
        _warn_ray_client(address, target)
        exp, plan = _plan(exp, strategy, budget_trial_epochs)
        train_cfg = exp.train_config()
        from auxtune.trainables.data import prepare_trial_data

        with phases("data"):
            data = prepare_trial_data(train_cfg, storage=exp.tracking.storage)
        with phases("ray_init"):
            quiet = log_file is not None
            stack.enter_context(ray_session(address, exp.tracking.storage, quiet=quiet))
        client = tracking.client(target.uri)
        with phases("mlflow_setup"):
            if nesting is not None:
                experiment_id = nesting.experiment_id
            else:
                experiment_id = tracking.ensure_experiment(
                    client, name, target, description=f"auxtune search {name} ({strategy})"
                )
            # from here on any failure ends the parent run (and its trials' runs) FAILED/KILLED
            parent = stack.enter_context(
                open_parent_run(
                    client, experiment_id, exp, strategy, name, plan, state, nesting, exp_dir
                )
            )
            if not resume:  # the datasets every trial trains and is evaluated on
                datasets = tracking.experiment_datasets(train_cfg.data, data.splits)
                tracking.log_datasets(client, parent, datasets)
            state.data.update(
                search_name=name,
                strategy=strategy,
                tracking_uri=target.uri,
                artifact_root=target.artifact_root,
                experiment_id=experiment_id,
                parent_run_id=parent,
                complete=False,
            )
            state.save()
        run = _trial_run(exp, strategy, plan, train_cfg, data, exp_dir, ledger, budget_trial_epochs)
        run = dataclasses.replace(
            run,
            record=RunRecord(target.uri, experiment_id, parent, strategy),
            on_cluster=address is not None,
            verbose=verbose,
            progress=strategy if progress else None,
        )
        with phases("tune_fit"):
            trials = run_trials(run, resume=resume)
        result = collect_result(exp, strategy, name, parent, trials, exp_dir, start, ledger, target)
        result = dataclasses.replace(
            result,
            phases=phases.seconds,
            budget_trial_epochs=budget_trial_epochs,
            weighting=exp.weighting.name,
            population=run.together > 0,
            experiment_id=experiment_id,
        )
        close_parent_run(client, parent, result, exp.search.metric)
        mark_complete(ledger, result)
    log.info("search %s phases (s): %s", name, phases.seconds)
    return result


@contextmanager
def _out_of_space_is_one_line(name: str) -> Iterator[None]:
    """A full disk (or quota) anywhere in the search, Tune's wrapping of it included, becomes one
    line that says how to continue: the ledger and Tune's checkpoints keep what was done."""
    try:
        yield
    except Exception as err:
        full = _out_of_space(err)
        if full is None:
            raise
        where = f" writing {full.filename}" if full.filename else ""
        raise SearchError(
            f"search {name!r} stopped: no space left on the device{where}; free some space, "
            "then run the same command with --resume (finished epochs are kept)"
        ) from err


def _out_of_space(err: BaseException | None) -> OSError | None:
    """The ENOSPC/EDQUOT error behind ``err``, if any (Tune wraps its callbacks' errors)."""
    while err is not None:
        if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
            return err
        err = err.__cause__ or err.__context__
    return None


def check_outputs(exp: ExperimentConfig) -> None:
    """Every place a search writes, checked before data, MLflow or Ray: the workdir, a local
    ``tracking.storage`` and an SQLite ``search.optuna_storage``."""
    from auxtune.platform.outputs import check_writable

    check_writable(Path(exp.tracking.workdir).expanduser(), "tracking.workdir", directory=True)
    storage = exp.tracking.storage
    if storage and "://" not in storage:
        check_writable(Path(storage).expanduser(), "tracking.storage", directory=True)
    optuna = exp.search.optuna_storage or ""
    if optuna.startswith("sqlite:///"):
        check_writable(Path(optuna.removeprefix("sqlite:///")), "search.optuna_storage")


def _warn_ray_client(address: str | None, target: tracking.TrackingTarget) -> None:
    if address and address.startswith("ray://") and target.is_local:
        print(
            "note: through ray:// Tune's driver (and its MLflow callback) runs on the cluster's head "
            f"node, so {target.uri} is written there; prefer --tracking-uri http://HOST:PORT and a "
            "shared --storage",
            file=sys.stderr,
        )


def _plan(
    exp: ExperimentConfig, strategy: str, budget: int | None
) -> tuple[ExperimentConfig, SearchPlan]:
    """The strategy's plan (``budget // epochs`` trials under a budget), and the experiment with
    its data paths absolute and the plan's weighting."""
    from auxtune.trainables.data import absolute_data_config

    num_trials: int | None = exp.search.num_trials
    if budget is not None:
        num_trials = trial_count(budget, exp.optim.epochs)
    elif strategy == "fixed":
        num_trials = None  # the whole grid
    plan = build_plan(strategy, exp, num_trials)  # type: ignore[arg-type]
    exp = dataclasses.replace(exp, data=absolute_data_config(exp.data))
    if plan.weighting and plan.weighting != exp.weighting.name:
        exp = dataclasses.replace(
            exp, weighting=dataclasses.replace(exp.weighting, name=plan.weighting)
        )
    for note in plan.notes:
        print(note, file=sys.stderr)
    return exp, plan


def _trial_run(
    exp: ExperimentConfig,
    strategy: str,
    plan: SearchPlan,
    train_cfg: Any,
    data: Any,
    exp_dir: str,
    ledger: str,
    budget: int | None,
) -> TrialRun:
    """The Tune run of a plan. A population (PBT, PB2) runs together; a scheduler that stops
    trials early is fed new trials until the budget is spent; anything else runs its trials."""
    from ray.tune.schedulers import ASHAScheduler, PopulationBasedTraining

    run = TrialRun(
        exp=exp,
        train=train_cfg,
        data=data,
        exp_dir=exp_dir,
        ledger=ledger,
        param_space=plan.param_space,
        record=RunRecord("", "", "", strategy),  # filled in by the caller
        num_samples=plan.num_samples,
        search_alg=plan.search_alg,
        scheduler=plan.scheduler,
        checkpoints_to_keep=plan.checkpoints_to_keep,
        trial_name=TrialNamer(strategy, exp.tasks.names),
        callbacks=tuple(EXTRA_CALLBACKS),
    )
    if isinstance(plan.scheduler, PopulationBasedTraining):
        return dataclasses.replace(run, together=plan.trials)
    if budget is not None and isinstance(plan.scheduler, ASHAScheduler):
        searcher = plan.search_alg or _random_searcher(exp)
        return dataclasses.replace(
            run, search_alg=BudgetedSearcher(searcher, budget, exp.optim.epochs), num_samples=-1
        )
    return run


def _random_searcher(exp: ExperimentConfig) -> Any:
    """Uniform draws from the param space, as a Searcher (which a budget can wrap)."""
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    return OptunaSearch(
        metric=exp.search.metric,
        mode="max",
        sampler=optuna.samplers.RandomSampler(seed=exp.seed),
    )


__all__ = [
    "EXTRA_CALLBACKS",
    "Nesting",
    "SearchError",
    "SearchResult",
    "TrialSummary",
    "pick_best",
    "run_search",
]
