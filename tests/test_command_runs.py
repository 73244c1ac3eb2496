"""``auxtune train`` and ``auxtune evaluate`` record one MLflow run each (``--no-mlflow``: none);
an unusable store stops them with one line before any work."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest

from auxtune.platform.cli import main

EPOCHS = 2
TINY = """
name: tiny
data: {{dataset: synthetic, num_train: 64, num_val: 16, num_test: 16, holdout: 0}}
model: {{depth: 10, widen_factor: 1, base_width: 4}}
optim: {{batch_size: 32, epochs: {epochs}}}
tasks: {{names: [rotation], decoder_width: 8}}
runtime: {{device: cpu, threads: 1}}
tracking: {{workdir: {workdir}}}
"""


def write_config(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY.format(epochs=EPOCHS, workdir=tmp_path / "work"))
    return path


def test_unreachable_store_stops_train_before_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path)
    argv = ["train", "--config", str(config), "--tracking-uri", "http://127.0.0.1:1"]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1, captured.err
    assert captured.err.startswith("auxtune train: error: cannot reach the MLflow tracking server")
    assert "training" not in captured.out  # nothing started
    assert not (tmp_path / "work" / "train").exists()


def test_file_store_uri_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path)
    assert main(["train", "--config", str(config), "--tracking-uri", "file:///tmp/x"]) == 2
    assert "MLflow 3 refuses the file store" in capsys.readouterr().err


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """(workdir, tracking URI, captured output) of one tiny `auxtune train`."""
    tmp = tmp_path_factory.mktemp("train")
    config = write_config(tmp)
    uri = f"sqlite:///{tmp / 'store' / 'mlflow.db'}"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):  # capsys is per test; this output is the module's
        code = main(["train", "--config", str(config), "--no-progress", "--tracking-uri", uri])
    assert code == 0, out.getvalue()
    return tmp, uri, out.getvalue()


def the_run(uri: str, experiment: str):
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    assert found is not None, experiment
    runs = client.search_runs([found.experiment_id])
    assert len(runs) == 1
    return client, found, runs[0]


@pytest.mark.slow
def test_train_records_params_epochs_data_and_its_model(trained: tuple[Path, str, str]) -> None:
    import mlflow.pytorch
    import torch

    from auxtune.platform.invocation import SOURCE_NAME_TAG
    from auxtune.robust.checkpoint import load_model
    from auxtune.robust.classifier import ImageClassifier

    workdir, uri, printed = trained
    client, experiment, run = the_run(uri, "tiny-train")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    assert run.info.status == "FINISHED" and run.info.run_name == "train-fixed-seed0"
    assert run.data.tags[SOURCE_NAME_TAG].startswith("auxtune train --config ")
    assert run.data.params["train.optim.epochs"] == str(EPOCHS)
    assert run.data.params["lambda/rotation"] == "0.5"
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "val_accuracy")]
    assert steps == list(range(1, EPOCHS + 1))  # one write per epoch, at its epoch
    assert 0.0 <= run.data.metrics["test_accuracy"] <= 1.0
    contexts = {d.dataset.name: d.tags[0].value for d in run.inputs.dataset_inputs}
    assert contexts == {
        "synthetic-train": "train",
        "synthetic-val": "validation",
        "synthetic-test": "test",
    }
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.yaml", "lambda_trajectory.svg"} <= artifacts
    # the model: the classifier of the checkpoint, loadable without auxtune's classes (pt2)
    [output] = run.outputs.model_outputs
    checkpoint = workdir / "work" / "train" / "tiny" / "model.pt"
    assert run.data.tags["auxtune.checkpoint"] == str(checkpoint.resolve())
    images = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), np.uint8))
    mlflow.set_tracking_uri(uri)
    try:
        loaded = mlflow.pytorch.load_model(f"models:/{output.model_id}")
    finally:
        mlflow.set_tracking_uri(None)
    expected = ImageClassifier(load_model(checkpoint, "cpu")[0]).eval()(images)
    torch.testing.assert_close(loaded(images), expected)
    assert f"MLflow run {run.info.run_id}" in printed and "workflowType=machine_learning" in printed


@pytest.mark.slow
def test_no_mlflow_records_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path)
    argv = ["train", "--config", str(config), "--no-progress", "--no-mlflow", "optim.epochs=1"]
    assert main(argv) == 0
    assert not (tmp_path / "work" / "mlflow.db").exists()
    assert "MLflow" not in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_evaluate_records_the_table_and_the_data(
    trained: tuple[Path, str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import ray

    from auxtune.data.corruptions import CORRUPTIONS
    from auxtune.data.parquet import write_parquet_from_arrays

    workdir, uri, _ = trained
    rng = np.random.default_rng(1)
    parquet = tmp_path / "tiny-c"
    for name in CORRUPTIONS:  # 2 images per severity: the layout, not the corruptions, matters
        images = rng.integers(0, 256, (10, 32, 32, 3), dtype=np.uint8)
        write_parquet_from_arrays(
            parquet, name, images, np.tile([3, 1], 5), np.repeat([1, 2, 3, 4, 5], 2)
        )
    checkpoint = workdir / "work" / "train" / "tiny" / "model.pt"
    argv = ["evaluate", str(checkpoint), "--corruptions", str(parquet), "--tracking-uri", uri]
    try:
        assert main(argv) == 0
    finally:
        ray.shutdown()
    printed = capsys.readouterr().out
    client, _, run = the_run(uri, "tiny-evaluate")
    summary = json.loads(printed.splitlines()[-2])
    assert run.data.metrics["c15_accuracy"] == pytest.approx(summary["mean_15"])
    assert run.data.metrics["c19_accuracy"] == pytest.approx(summary["mean_19"])
    assert {f"c/{name}" for name in CORRUPTIONS} <= set(run.data.metrics)
    assert run.data.params["checkpoint"] == str(checkpoint.resolve())
    [dataset] = run.inputs.dataset_inputs
    assert dataset.dataset.name == "tiny-c" and dataset.dataset.source_type == "local"
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert artifacts == {"evaluation.txt", "evaluation.json"}
    table = Path(client.download_artifacts(run.info.run_id, "evaluation.txt", str(tmp_path)))
    assert "mean over the 15 standard corruptions (headline)" in table.read_text()
