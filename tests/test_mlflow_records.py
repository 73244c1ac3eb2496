"""What every MLflow run records besides metrics: its datasets, its source, its model's registry
entry, and the links that open the UI on the runs table."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from auxtune.platform import invocation, tracking
from auxtune.robust.config import DataConfig

TINY = {"num_train": 24, "num_val": 8, "num_test": 10, "holdout": 0}


def data_config(tmp_path: Path, **changes: object) -> DataConfig:
    return DataConfig(**{**TINY, "data_dir": str(tmp_path / "cache"), **changes})  # type: ignore[arg-type]


def test_experiment_datasets_name_every_split_and_corrupted_set(tmp_path: Path) -> None:
    records = tracking.experiment_datasets(data_config(tmp_path))
    assert [(r.name, r.context) for r in records] == [
        ("synthetic-train", "train"),
        ("synthetic-val", "validation"),
        ("synthetic-test", "test"),
        ("synthetic-val-c4", "validation"),
        ("synthetic-c", "test"),
    ]
    train, _, _, val_c, test_c = records
    assert json.loads(train.source)["tags"]["seed"] == "0"  # the generator's seed of the split
    assert json.loads(train.profile or "{}")["images"] == TINY["num_train"]
    assert "mlflow_tensorspec" in json.loads(train.schema or "{}")
    assert val_c.name.endswith("-c4") and "synthetic-val@" in val_c.source
    assert test_c.source_type == "local" and Path(json.loads(test_c.source)["uri"]).is_dir()
    assert json.loads(test_c.profile or "{}")["manifest"]["base_dataset"] == "synthetic"


def test_digests_follow_the_images(tmp_path: Path) -> None:
    first = tracking.experiment_datasets(data_config(tmp_path))
    again = tracking.experiment_datasets(data_config(tmp_path))
    other = tracking.experiment_datasets(data_config(tmp_path, seed=1))
    assert [r.digest for r in first] == [r.digest for r in again]  # same data, same digest
    assert all(a.digest != b.digest for a, b in zip(first[:4], other[:4]))
    assert all(len(r.digest) == 8 for r in first)


def test_a_directory_without_manifest_is_named_by_its_files(tmp_path: Path) -> None:
    root = tmp_path / "CIFAR-10-C"
    root.mkdir()
    np.save(root / "fog.npy", np.zeros((5, 32, 32, 3), np.uint8))
    before = tracking.directory_dataset(root, "cifar10-c", "test")
    np.save(root / "fog.npy", np.zeros((10, 32, 32, 3), np.uint8))
    after = tracking.directory_dataset(root, "cifar10-c", "test")
    assert before.digest != after.digest and json.loads(after.source) == {"uri": str(root)}


def test_cifar_splits_point_at_their_directory(tmp_path: Path) -> None:
    from auxtune.data.datasets import ImageSet
    from auxtune.platform.tracking.datasets import _split_record

    images = ImageSet(np.zeros((4, 32, 32, 3), np.uint8), np.arange(4))
    record = _split_record(
        DataConfig(dataset="cifar10", data_dir=str(tmp_path)), "train", images, "train"
    )
    assert (record.name, record.source_type) == ("cifar10-train", "local")
    assert json.loads(record.source) == {"uri": str(tmp_path.resolve())}


@pytest.mark.slow
def test_inputs_reach_the_run_and_a_run_without_model_is_not_registered(tmp_path: Path) -> None:
    target = tracking.resolve_tracking(tmp_path / "work")
    client = tracking.client(target.uri)
    experiment = tracking.ensure_experiment(client, "records", target)
    run_id = client.create_run(experiment).info.run_id
    tracking.log_datasets(client, run_id, tracking.experiment_datasets(data_config(tmp_path)))
    inputs = client.get_run(run_id).inputs.dataset_inputs
    assert {(i.dataset.name, i.tags[0].value) for i in inputs} >= {("synthetic-train", "train")}
    with pytest.raises(ValueError, match="has no logged model"):
        tracking.register_best_model(client, run_id, "nothing-best")


def test_source_is_the_recorded_command() -> None:
    invocation.record(["compare", "--config", "configs/demo.yaml"])
    try:
        tags = invocation.source_tags()
    finally:
        invocation.record(None)
    # a JOB source is shown whole; the UI would cut a LOCAL one after its last "/"
    assert tags == {
        "mlflow.source.name": "auxtune compare --config configs/demo.yaml",
        "mlflow.source.type": "JOB",
    }
    assert invocation.command_line()  # without a recorded command: this process's script


def test_checkpoint_location_names_remote_storage() -> None:
    local = SimpleNamespace(
        path="/r/exp/t/checkpoint_000002", filesystem=SimpleNamespace(type_name="local")
    )
    s3 = SimpleNamespace(
        path="bucket/exp/t/checkpoint_000002", filesystem=SimpleNamespace(type_name="s3")
    )
    assert tracking.checkpoint_location(local) == "/r/exp/t/checkpoint_000002"
    assert tracking.checkpoint_location(s3) == "s3://bucket/exp/t/checkpoint_000002"


def test_trial_names_count_across_tunes_spec_copies() -> None:
    from auxtune.platform.trial_names import TrialNamer, short_name

    namer = TrialNamer("optuna", ("rotation", "blur_reconstruction"))
    trial = SimpleNamespace(config={"lambda": {"rotation": 0.31, "blur_reconstruction": 0.8}})
    names = [copy.deepcopy(namer)(trial) for _ in range(2)]  # Tune copies the spec per trial
    assert names == ["optuna-001 rot=0.31 blur=0.8", "optuna-002 rot=0.31 blur=0.8"]
    assert [short_name(t) for t in ("rotation", "rgb_permutation", "inpainting")] == [
        "rot",
        "rgb",
        "inp",
    ]
