"""One Ray Tune run of auxtune trials: the trainable, the Tuner, its MLflow record, the summaries.

A strategy's search (its param space, searcher and scheduler) and a comparison's retrains (a grid
over strategy and seed) are both a :class:`TrialRun`; :func:`run_trials` runs one and returns a
:class:`~auxtune.platform.trials.TrialSummary` per trial::

    exp_dir, ledger = experiment_dir(exp, "demo-optuna", resume=False)
    trials = run_trials(TrialRun(exp=exp, train=exp.train_config(), data=data, exp_dir=exp_dir,
                                 ledger=ledger, param_space=space, record=record))

Every trial is the same function trainable (:func:`~auxtune.trainables.function.auxtune_trial`),
fed the prepared data through the object store; every MLflow write happens on the driver in
:class:`~auxtune.platform.tracking.MlflowTrialCallback`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ray import tune

from auxtune.config import from_dict, to_dict
from auxtune.platform import invocation, tracking
from auxtune.platform.config import ExperimentConfig
from auxtune.platform.ray_runtime import TrialResources, trial_resources
from auxtune.platform.trials import TrialSummary, collect_trials
from auxtune.platform.workdir import RESULTS_DIR, experiment_dir
from auxtune.robust.config import TrainConfig

NEW_OUTPUT = "RAY_AIR_NEW_OUTPUT"  # Tune's switch between its two console reporters


@dataclass(frozen=True)
class RunRecord:
    """Where the trials of a run are recorded in MLflow: one run per trial under ``parent_run_id``."""

    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    strategy: str  # tag ``auxtune.strategy`` and the ``strategy`` param of every trial run
    kind: str = "trial"  # tag ``auxtune.kind``: trial (of a search) or retrain
    # a trial whose config names a ``strategy`` found here nests under that run instead
    parents: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TrialRun:
    """Everything one Tune run needs; see :func:`run_trials`."""

    exp: ExperimentConfig  # search.* sizes the trials; optim.epochs ends them
    train: TrainConfig  # every trial's base config (its data paths absolute)
    data: Any  # TrialData, shipped once through the object store
    exp_dir: str  # Tune's experiment directory (a path or a URI)
    ledger: str  # the driver's record of every result (SearchState file)
    param_space: dict[str, Any]
    record: RunRecord
    num_samples: int = 1  # -1: until the searcher says it is finished
    search_alg: Any = None
    scheduler: Any = None
    checkpoints_to_keep: int | None = 2
    together: int = 0  # a population that must run at once (synchronous PBT)
    trial_name: Callable[[Any], str] | None = None
    callbacks: Sequence[Any] = ()
    on_cluster: bool = False  # Ray was reached through --address (see trial_resources)
    verbose: int = 0
    progress: str | None = None  # label of a one-line progress display; None shows none


def run_trials(run: TrialRun, *, resume: bool = False) -> list[TrialSummary]:
    """Run (or with ``resume`` continue) the Tune run ``run``; one summary per trial."""
    tuner = _restored_tuner(run) if resume else _tuner(run)
    with tune_console(run.verbose):
        tuner.fit()
    return collect_trials(run.exp_dir, run.ledger)


@contextmanager
def tune_console(verbose: int) -> Iterator[None]:
    """At ``verbose=0`` Tune prints nothing: its new console output prints an experiment header,
    a TensorBoard hint and a config table even then; its legacy reporter at 0 stays silent."""
    if verbose:
        yield
        return
    saved = os.environ.get(NEW_OUTPUT)
    os.environ[NEW_OUTPUT] = "0"
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(NEW_OUTPUT, None)
        else:
            os.environ[NEW_OUTPUT] = saved


def trainable(run: TrialRun, resources: TrialResources) -> Any:
    """The trial function with its setup, data and Ray resources bound.

    Diverged trials leave a marker in ``<exp_dir>/diverged/`` so that retries fail at once.
    """
    from auxtune.trainables.function import auxtune_trial

    diverged_dir = None if "://" in run.exp_dir else str(Path(run.exp_dir, "diverged"))
    setup = {
        "train": to_dict(run.train),
        "threads": resources.threads,
        "diverged_dir": diverged_dir,
    }
    return tune.with_resources(
        tune.with_parameters(auxtune_trial, setup=setup, data=run.data), resources.request
    )


def _resources(run: TrialRun) -> TrialResources:
    return trial_resources(run.exp.search, run.on_cluster, together=run.together)


def _restored_tuner(run: TrialRun) -> Any:
    return tune.Tuner.restore(
        run.exp_dir,
        trainable(run, _resources(run)),
        resume_unfinished=True,
        resume_errored=True,
    )


def _tuner(run: TrialRun) -> Any:
    resources = _resources(run)
    train_dict = to_dict(run.train)
    record = run.record
    callback = tracking.MlflowTrialCallback(
        tracking_uri=record.tracking_uri,
        experiment_id=record.experiment_id,
        parent_run_id=record.parent_run_id,
        parents=record.parents,
        state_path=run.ledger,
        trial_params=TrialParams(record.strategy, train_dict),
        trial_artifacts=TrialArtifacts(train_dict),
        trial_records=TrialRecords.of(run),
        tags={
            "auxtune.strategy": record.strategy,
            "auxtune.kind": record.kind,
            **invocation.source_tags(),
        },
    )
    callbacks = [callback, *run.callbacks]
    if run.progress is not None:
        callbacks.append(ProgressLine(run.progress, run.exp.search.metric))
    storage, name = run.exp_dir.rsplit("/", 1)
    return tune.Tuner(
        trainable(run, resources),
        param_space=run.param_space,
        tune_config=tune.TuneConfig(
            num_samples=run.num_samples,
            search_alg=run.search_alg,
            scheduler=run.scheduler,
            max_concurrent_trials=resources.max_concurrent,
            reuse_actors=True,
            trial_name_creator=run.trial_name,
        ),
        run_config=tune.RunConfig(
            name=name,
            storage_path=storage,
            # a trial's last epoch ends it before the scheduler sees the result: otherwise PBT may
            # exploit a finished trial, and it trains its last epoch again from a donor's checkpoint
            stop={"epoch": run.train.optim.epochs},
            callbacks=callbacks,
            checkpoint_config=tune.CheckpointConfig(num_to_keep=run.checkpoints_to_keep),
            # a trial lost with its node resumes from its last epoch's checkpoint
            failure_config=tune.FailureConfig(
                max_failures=run.exp.search.max_failures, fail_fast=False
            ),
            verbose=run.verbose,
        ),
    )


class TrialParams:
    """Params of a trial's MLflow run (picklable: it travels inside Tune's tuner.pkl)."""

    def __init__(self, strategy: str, train: dict[str, Any]) -> None:
        self.strategy, self.train = strategy, train

    def __call__(self, config: dict[str, Any]) -> dict[str, str]:
        from auxtune.trainables.config import chosen_params, trial_train_config

        cfg = trial_train_config(from_dict(TrainConfig, self.train), config)
        params = {"strategy": self.strategy}
        params.update({k: str(v) for k, v in chosen_params(config).items()})
        initial = cfg.weighting.initial_lambdas(cfg.tasks.names)
        params.update({f"lambda/{t}": str(v) for t, v in initial.items()})
        params.update(tracking.as_params(to_dict(cfg), "train."))
        return params


class TrialArtifacts:
    """End-of-trial artifacts: the resolved config YAML and the lambda-trajectory SVG."""

    def __init__(self, train: dict[str, Any]) -> None:
        self.train = train

    def __call__(self, config: dict[str, Any], history: list[dict[str, float]]) -> dict[str, bytes]:
        import yaml

        from auxtune.platform.svg import lambda_trajectory_svg
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


class TrialRecords:
    """What a finished trial's run records besides metrics and artifacts: the datasets it trained
    and was evaluated on, where its last checkpoint is (tag ``auxtune.checkpoint``) and, for a
    retrain that trained every epoch, its model (never for a search trial: logging a model takes
    seconds). Picklable: it travels inside Tune's tuner.pkl."""

    def __init__(
        self,
        datasets: tuple[tracking.DatasetRecord, ...],
        log_model_after: int | None,
        example_images: Any = None,
    ) -> None:
        self.datasets, self.log_model_after = datasets, log_model_after
        self.example_images = example_images

    @classmethod
    def of(cls, run: TrialRun) -> TrialRecords:
        """The records of ``run``'s trials: a retrain logs its model after its last epoch."""
        splits = run.data.splits
        retrain = run.record.kind == "retrain"
        return cls(
            tracking.experiment_datasets(run.train.data, splits),
            run.train.optim.epochs if retrain else None,
            splits.test.images[: tracking.EXAMPLE_IMAGES].copy() if retrain else None,
        )

    def __call__(
        self,
        client: Any,
        run_id: str,
        config: dict[str, Any],
        history: list[dict[str, Any]],
        checkpoint: Any,
    ) -> None:
        tracking.log_datasets(client, run_id, self.datasets)
        if checkpoint is None:
            return
        where = tracking.checkpoint_location(checkpoint)
        tracking.log_batch(client, run_id, tags={tracking.CHECKPOINT_TAG: where})
        epoch = int(history[-1].get("epoch", 0)) if history else 0
        if self.log_model_after is not None and epoch >= self.log_model_after:
            with checkpoint.as_directory() as directory:
                tracking.log_retrained_model(
                    client,
                    run_id,
                    directory,
                    example_images=self.example_images,
                    step=int(history[-1].get("step", 0)),
                    tags={tracking.CHECKPOINT_TAG: where},  # not a remote checkpoint's download
                )


class ProgressLine(tune.Callback):
    """One status line for a whole Tune run: trials done, trial-epochs spent, the best metric.

    On a terminal the line is redrawn in place; otherwise a line is written per finished trial.
    """

    def __init__(self, label: str, metric: str) -> None:
        self.label, self.metric = label, metric
        self.epochs, self.finished, self.best = 0, 0, float("-inf")

    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
    ) -> None:
        self.epochs += 1
        value = result.get(self.metric)
        if isinstance(value, (int, float)):
            self.best = max(self.best, float(value))
        if sys.stderr.isatty():
            self._show(end="\r")

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.finished += 1
        if not sys.stderr.isatty():
            self._show(end="\n")

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        if sys.stderr.isatty():
            self._show(end="\n")

    def _show(self, end: str) -> None:
        best = "n/a" if self.best == float("-inf") else f"{100 * self.best:.1f}%"
        text = (
            f"[{self.label}] {self.finished} trials done, {self.epochs} trial-epochs, "
            f"best {self.metric} {best}"
        )
        print(f"{text:<100}", end=end, file=sys.stderr, flush=True)


__all__ = [
    "RESULTS_DIR",
    "ProgressLine",
    "RunRecord",
    "TrialArtifacts",
    "TrialParams",
    "TrialRecords",
    "TrialRun",
    "experiment_dir",
    "run_trials",
    "trainable",
]
