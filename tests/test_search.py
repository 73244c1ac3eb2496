"""End-to-end searches on tiny synthetic data: every strategy, PBT exploits, resume, NaN trials.

One local Ray instance serves the whole module; every search writes to its own tmp workdir
(Tune results + SQLite MLflow store), and the checks read MLflow back with ``MlflowClient``.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest
import yaml
from ray import tune

from auxtune.platform.config import ExperimentConfig, load_experiment
from auxtune.robust.weighting import WEIGHTINGS

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ray_session() -> Any:
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Data cache and one MLflow store shared by the module's searches (each has its own name)."""
    return tmp_path_factory.mktemp("data-cache")


def tiny(workdir: Path, cache: Path, *overrides: str) -> ExperimentConfig:
    """WRN-10-1 with 4 stem channels on 128 synthetic images: about a second per epoch."""
    return load_experiment(
        None,
        [
            "model.depth=10",
            "model.widen_factor=1",
            "model.base_width=4",
            "tasks.decoder_width=8",
            "tasks.names=[rotation]",
            "optim.epochs=2",
            "optim.batch_size=32",
            "data.num_train=128",
            "data.num_val=40",
            "data.num_test=10",
            "data.holdout=32",
            f"data.data_dir={cache}",
            "search.num_trials=2",
            "search.grid=[0.0,1.0]",
            "runtime.device=cpu",
            "weighting.meta.meta_batch_size=8",
            "weighting.meta.warmup_epochs=0",
            f"tracking.workdir={workdir}",
            f"tracking.tracking_uri=sqlite:///{cache}/mlflow.db",
            f"name=tiny-{workdir.name}",
            *overrides,
        ],
    )


def mlflow_trials(result: Any) -> dict[str, Any]:
    """Nested runs under the search's parent run, by Ray trial id."""
    from mlflow import MlflowClient

    client = MlflowClient(result.tracking_uri)
    experiment = client.get_experiment_by_name(result.experiment_name)
    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.`mlflow.parentRunId` = '{result.parent_run_id}'",
    )
    by_trial = {run.data.tags["ray.trial_id"]: run for run in runs}
    assert len(by_trial) == len(runs), "two MLflow runs for one trial"
    return by_trial


def check_recorded(result: Any, strategy: str, epochs: int = 2) -> None:
    """One nested run per trial with the strategy's params, per-epoch metrics and artifacts."""
    from mlflow import MlflowClient

    from auxtune.platform import tracking

    client = MlflowClient(result.tracking_uri)
    ledger = tracking.SearchState(Path(result.results_path, tracking.STATE_FILE))
    parent = client.get_run(result.parent_run_id)
    assert parent.data.params["strategy"] == strategy
    assert {"version.ray", "version.torch", "version.mlflow", "seed"} <= set(parent.data.params)
    assert parent.info.status == "FINISHED"
    datasets = {d.dataset.name: d.tags[0].value for d in parent.inputs.dataset_inputs}
    assert datasets["synthetic-train"] == "train" and datasets["synthetic-c"] == "test"
    runs = mlflow_trials(result)
    assert set(runs) == {t.trial_id for t in result.trials}
    for trial in result.trials:
        run = runs[trial.trial_id]
        assert trial.mlflow_run_id == run.info.run_id
        assert run.data.params["strategy"] == strategy
        assert "lambda/rotation" in run.data.params
        assert run.data.params["train.optim.lr"] == "0.1"
        if trial.status == "ERROR":
            assert run.info.status == "FAILED"
            continue
        assert run.info.status == "FINISHED"
        metrics = run.data.metrics
        for key in ("loss/main", "lambda/rotation", "val_accuracy", "val_corrupt_accuracy"):
            assert key in metrics, key
        assert "time/epoch_s" in metrics
        # a lambda fixed at 0 is not computed, so that trial has no rotation loss to log
        computed = strategy != "fixed" or float(run.data.params["lambda/rotation"]) != 0
        assert ("loss/rotation" in metrics) == computed
        history = client.get_metric_history(run.info.run_id, "val_corrupt_accuracy")
        # every result the driver received once, at its step (a result Tune replays after a
        # resume is a result of its own, at the next step); the history keeps the final lineage
        received = ledger.rows()[trial.trial_id]
        assert sorted(m.step for m in history) == list(range(1, len(received) + 1))
        steps = [int(row["step"]) for row in trial.history]
        assert steps == sorted(set(steps)) and steps[-1] == len(received)
        if trial.history[-1]["epoch"] == epochs:  # trained to the end: corrupted-test accuracy
            assert {"c15_accuracy", "c19_accuracy", "c/fog"} <= set(metrics)
            assert 0.0 <= metrics["c15_accuracy"] <= 1.0
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"config.yaml", "lambda_trajectory.svg"} <= artifacts
        assert {d.dataset.name for d in run.inputs.dataset_inputs} == set(datasets)
        assert Path(run.data.tags["auxtune.checkpoint"]).name.startswith("checkpoint_")
        assert run.data.tags["mlflow.source.type"] == "JOB"
        assert not run.outputs.model_outputs  # a search trial logs no model (seconds each)


def check_result(result: Any, trials: int) -> None:
    assert len(result.trials) == trials
    assert result.trial_epochs == sum(t.epochs for t in result.trials)
    assert result.best in result.trials and result.best.status == "TERMINATED"
    assert "val_corrupt_accuracy" in result.best.metrics
    for trial in result.trials:
        assert trial.epochs == len(trial.history)
        if trial.status != "ERROR":
            assert trial.epochs > 0 and trial.seconds > 0 and trial.node_id


@pytest.mark.parametrize("strategy", ["random", "pb2", "meta"])
def test_strategy_end_to_end(ray_session: Any, cache: Path, tmp_path: Path, strategy: str) -> None:
    from auxtune.platform.search import run_search

    result = run_search(tiny(tmp_path, cache), strategy, verbose=0)
    check_result(result, 2)
    check_recorded(result, strategy)
    for trial in result.trials:
        assert 0.0 <= trial.params["lambda/rotation"] <= 1.0
        if strategy == "meta":
            assert 1e-3 <= trial.params["weighting.meta.meta_lr"] <= 1e-1
            assert "meta/loss" in trial.history[-1] or "meta/loss" in trial.metrics


@pytest.mark.parametrize(
    "name",
    [n for n in WEIGHTINGS if n not in ("fixed", "meta")],  # both searched above/below
)
def test_every_weighting_is_a_strategy_recording_its_lambdas_per_epoch(
    ray_session: Any, cache: Path, tmp_path: Path, name: str
) -> None:
    """``search --strategy <weighting>``: the trials train with it, draw its own hyperparameters
    (or run as seeds), and MLflow holds each epoch's ``lambda/<task>`` of every trial."""
    from mlflow import MlflowClient

    from auxtune.platform.search import run_search

    exp = tiny(tmp_path, cache, "weighting.auto_lambda.meta_batch_size=8")
    result = run_search(exp, name, verbose=0)
    check_result(result, 2)
    check_recorded(result, name)
    options = exp.weighting.section(name)
    ranges = options.search_ranges() if options is not None else {}
    client = MlflowClient(result.tracking_uri)
    runs = mlflow_trials(result)
    for trial in result.trials:
        assert runs[trial.trial_id].data.params["train.weighting.name"] == name
        for key, (low, high) in ranges.items():
            assert low <= trial.params[f"weighting.{name}.{key}"] <= high
        if not ranges and not WEIGHTINGS[name].search_lambdas:
            assert "seed" in trial.params  # nothing to search: the trials are seeds
        history = client.get_metric_history(trial.mlflow_run_id, "lambda/rotation")
        assert sorted(m.step for m in history) == list(range(1, trial.epochs + 1))


def test_optuna_through_the_cli(
    ray_session: Any,
    cache: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``auxtune search`` end to end (reusing the module's Ray): summary printed, exit 0."""
    from auxtune.platform import search
    from auxtune.platform.cli import main

    results: list[Any] = []
    real = search.run_search

    def recording(*args: Any, **kwargs: Any) -> Any:
        results.append(real(*args, **kwargs))
        return results[-1]

    monkeypatch.setattr(search, "run_search", recording)
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny(tmp_path, cache).to_dict()))
    code = main(["search", "--strategy", "optuna", "--config", str(config), "--quiet"])
    out = capsys.readouterr().out
    assert code == 0
    (result,) = results
    check_result(result, 2)
    check_recorded(result, "optuna")
    assert f"best trial {result.best.trial_id}: lambda/rotation=" in out
    assert result.results_path in out and "auxtune ui" in out


def test_fixed_grid_with_a_diverging_trial(ray_session: Any, cache: Path, tmp_path: Path) -> None:
    """A NaN trial ends as ERROR with its reason (MLflow run FAILED); the others finish."""
    from auxtune.platform.search import run_search

    exp = tiny(tmp_path, cache, "search.grid=[0.0,1.0,1e20]")
    result = run_search(exp, "fixed", verbose=0)
    check_result(result, 3)
    lambdas = sorted(t.params["lambda/rotation"] for t in result.trials)
    assert lambdas == [0.0, 1.0, 1e20]
    (failed,) = result.failed
    assert failed.params["lambda/rotation"] == 1e20
    assert "DivergenceError" in (failed.error or "") and "nan" in (failed.error or "")
    if exp.search.max_failures:  # retries (meant for lost nodes) fail at once, not diverge again
        assert "not retried" in (failed.error or "")
    check_recorded(result, "fixed")
    run = mlflow_trials(result)[failed.trial_id]
    assert "DivergenceError" in run.data.tags["error"]


def test_pbt_exploit_copies_a_checkpoint_and_mutates_lambda(
    ray_session: Any, cache: Path, tmp_path: Path
) -> None:
    """An exploited trial continues from another trial's checkpoint with a perturbed lambda."""
    from auxtune.platform import tracking
    from auxtune.platform.search import run_search

    # synchronous PBT (the default): the two trials meet at every epoch, so exploits happen even
    # when one trial's worker starts much later than the other's (a loaded machine)
    exp = tiny(tmp_path, cache, "optim.epochs=4", "search.perturbation_interval=1")
    result = run_search(exp, "pbt", verbose=0)
    check_result(result, 2)
    ids = {t.trial_id for t in result.trials}
    state = tracking.SearchState(Path(result.results_path, tracking.STATE_FILE))
    rows = state.histories()  # with each exploit's donor
    exploits = [
        (trial_id, i)
        for trial_id in ids
        for i, row in enumerate(rows[trial_id])
        if row.get("restored_from")
    ]
    assert exploits, "no PBT exploit happened in 4 epochs"
    trial_id, i = min(exploits, key=lambda e: e[1])  # a trial's first exploit
    history = rows[trial_id]
    assert history[i]["restored_from"] in ids - {trial_id}  # the checkpoint of another trial
    assert i > 0 and history[i]["lambda/rotation"] != history[i - 1]["lambda/rotation"]
    assert history[i]["epoch"] >= 2  # training continued from the donor's epoch, not from scratch
    assert history[-1]["epoch"] == 4
    # a finished trial is never exploited (it would train its last epoch again): 4 epochs each
    assert all(len(rows[t]) <= 4 for t in ids), {t: len(rows[t]) for t in ids}
    summary = next(t for t in result.trials if t.trial_id == trial_id)
    assert summary.history[i]["pbt/exploit"] == 1.0 and summary.epochs == len(history)
    check_recorded(result, "pbt", epochs=4)
    run = mlflow_trials(result)[trial_id]
    assert run.data.tags["pbt.last_donor"] in ids - {trial_id}


def test_pbt_population_meets_at_every_interval(
    ray_session: Any, cache: Path, tmp_path: Path
) -> None:
    """A population of 4 on 2 CPUs runs together: no trial starts epoch k+1 before every trial
    reported epoch k (so every member takes part in every exploit decision)."""
    import json

    from auxtune.platform import tracking
    from auxtune.platform.search import run_search

    exp = tiny(tmp_path, cache, "optim.epochs=3", "search.num_trials=4")
    result = run_search(exp, "pbt", verbose=0)
    check_result(result, 4)
    state = tracking.SearchState(Path(result.results_path, tracking.STATE_FILE))
    order = [json.loads(line) for line in state.history_path.read_text().splitlines()]
    epochs = [int(row["epoch"]) for row in order]
    for k in range(1, 3):
        last_k = max(i for i, e in enumerate(epochs) if e == k)
        first_after = min(i for i, e in enumerate(epochs) if e == k + 1)
        assert last_k < first_after, (k, [(r["trial_id"][-5:], e) for r, e in zip(order, epochs)])
    assert all(t.history[-1]["epoch"] == 3 for t in result.trials)


class Interrupt(tune.Callback):
    """Presses Ctrl-C once, after ``after`` results; the marker file keeps the resumed search
    (which unpickles this callback again from Tune's state) from being interrupted too."""

    def __init__(self, after: int, marker: Path) -> None:
        self.after, self.marker, self.seen = after, marker, 0

    def on_trial_result(self, *args: Any, **kwargs: Any) -> None:
        self.seen += 1
        if self.seen >= self.after and not self.marker.exists():
            self.marker.touch()
            os.kill(os.getpid(), signal.SIGINT)


def test_resume_continues_without_duplicates(
    ray_session: Any, cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from auxtune.platform import search

    exp = tiny(tmp_path, cache)
    monkeypatch.setattr(search, "EXTRA_CALLBACKS", [Interrupt(2, tmp_path / "interrupted")])
    first = search.run_search(exp, "fixed", verbose=0)
    assert (tmp_path / "interrupted").exists()
    assert any(t.status != "TERMINATED" for t in first.trials), "nothing left to resume"
    assert all(t.status in ("TERMINATED", "RUNNING", "PAUSED", "PENDING") for t in first.trials)
    done_before = {t.trial_id: t.epochs for t in first.trials if t.status == "TERMINATED"}
    second = search.run_search(exp, "fixed", resume=True, verbose=0)
    assert second.results_path == first.results_path
    assert second.parent_run_id == first.parent_run_id
    assert {t.trial_id for t in second.trials} == {t.trial_id for t in first.trials}
    assert all(t.status == "TERMINATED" and t.history[-1]["epoch"] == 2 for t in second.trials)
    for trial_id, epochs in done_before.items():
        assert next(t for t in second.trials if t.trial_id == trial_id).epochs == epochs
    check_recorded(second, "fixed")  # exactly one run per trial, every epoch once
