"""Corrupted test sets reach trials through shared storage, never through the driver's disk.

A large corrupted set is staged once as Parquet under the shared storage, keyed by its bytes, and
trials read it back block by block: the blocks must be exactly the directory's, the copy reused,
an interrupted copy redone, and nothing a trial does may need ``data.corruptions_dir``.
"""

from __future__ import annotations

import dataclasses
import pickle
import shutil
from pathlib import Path

import numpy as np
import pyarrow.fs
import pytest

from auxtune.data import staging
from auxtune.data.cifar_c import SEVERITIES, CorruptedTestSet, write_corruption, write_labels
from auxtune.data.corruptions import CORRUPTIONS
from auxtune.data.datasets import load_dataset
from auxtune.data.parquet import read_block, write_parquet_from_arrays
from auxtune.data.staging import StagedCorruptedSet, stage_corrupted_set
from auxtune.errors import DataError
from auxtune.robust.config import DataConfig, OptimConfig, TrainConfig, WeightingConfig
from auxtune.trainables.data import materialize, prepare_trial_data

BLOCK = 12  # images per severity block


def write_set(root: Path, corruptions=("fog", "snow"), seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    write_labels(root, rng.integers(0, 10, BLOCK))
    for name in corruptions:
        images = rng.integers(0, 256, (5 * BLOCK, 32, 32, 3), dtype=np.uint8)
        write_corruption(root, name, images)
    return root


def assert_same_blocks(actual, expected) -> None:
    assert list(actual) == list(expected)
    for key, (images, labels) in expected.items():
        np.testing.assert_array_equal(actual[key][0], images)
        np.testing.assert_array_equal(actual[key][1], labels)
        assert actual[key][1].dtype == np.int64


@pytest.mark.parametrize(("skip_first", "first_k"), [(0, 0), (0, 5), (3, 0), (3, 4)])
def test_staged_blocks_are_the_directorys(tmp_path, skip_first, first_k):
    root = write_set(tmp_path / "c")
    uri = stage_corrupted_set(root, str(tmp_path / "shared"))
    staged = StagedCorruptedSet(uri, skip_first=skip_first, first_k=first_k)
    suite = CorruptedTestSet(root, skip_first=skip_first, first_k=first_k)
    assert_same_blocks(staged, materialize(suite))
    assert len(staged) == 2 * len(SEVERITIES)
    assert uri.startswith(str(tmp_path / "shared" / staging.STAGING_DIR))


def test_a_block_split_over_parts_is_read_in_order(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (5 * BLOCK, 32, 32, 3), dtype=np.uint8)
    labels = np.tile(np.arange(BLOCK), 5)
    severities = np.repeat(SEVERITIES, BLOCK)
    files = write_parquet_from_arrays(tmp_path, "fog", images, labels, severities, rows_per_file=5)
    local = pyarrow.fs.LocalFileSystem()
    got_images, got_labels = read_block([str(f) for f in reversed(files)], local, 2, 1, 9)
    np.testing.assert_array_equal(got_images, images[BLOCK + 1 : BLOCK + 10])
    np.testing.assert_array_equal(got_labels, np.arange(1, 10))


def test_the_same_set_is_staged_once_and_another_set_apart(tmp_path, monkeypatch):
    root = write_set(tmp_path / "c")
    shared = str(tmp_path / "shared")
    first = stage_corrupted_set(root, shared)

    def refuse(*args, **kwargs):
        raise AssertionError("the staged copy was written again")

    with monkeypatch.context() as patch:
        patch.setattr(staging, "_copy_as_parquet", refuse)
        copy = shutil.copytree(root, tmp_path / "elsewhere")  # same bytes, another place
        assert stage_corrupted_set(copy, shared) == first
    other = stage_corrupted_set(write_set(tmp_path / "c2", seed=1), shared)
    assert other != first and StagedCorruptedSet(other)["fog", 1][0].shape == (BLOCK, 32, 32, 3)


def test_an_interrupted_copy_is_redone(tmp_path):
    root = write_set(tmp_path / "c")
    uri = stage_corrupted_set(root, str(tmp_path / "shared"))
    (Path(uri) / staging.INDEX_FILE).unlink()  # as if the driver died while uploading
    with pytest.raises(DataError, match="no complete staged"):
        StagedCorruptedSet(uri)["fog", 1]
    assert stage_corrupted_set(root, str(tmp_path / "shared")) == uri
    assert len(StagedCorruptedSet(uri)) == 2 * len(SEVERITIES)


def test_storage_may_be_a_uri_and_only_the_uri_travels(tmp_path):
    root = write_set(tmp_path / "c")
    uri = stage_corrupted_set(root, f"file://{tmp_path / 'shared'}")
    assert uri.startswith("file://")
    staged = StagedCorruptedSet(uri, first_k=2)
    staged["fog", 1]  # opens the filesystem, which must not be pickled with it
    shipped = pickle.loads(pickle.dumps(staged))
    assert vars(shipped) == {"uri": uri, "skip_first": 0, "first_k": 2}
    shutil.rmtree(root)  # the trial's node never had the directory
    assert_same_blocks(shipped, dict(staged.items()))


def test_a_bad_storage_uri_is_one_clear_error(tmp_path):
    with pytest.raises(DataError, match="cannot open storage 'nosuch://x"):
        stage_corrupted_set(write_set(tmp_path / "c"), "nosuch://x")


# ---------------------------------------------------------------- what trials get


def train_config(tmp_path: Path, corruptions_dir: Path | None = None, **fields) -> TrainConfig:
    data = DataConfig(
        num_train=16, num_val=8, holdout=0, data_dir=str(tmp_path / "data"),
        corruptions_dir=str(corruptions_dir) if corruptions_dir else None,
        **{"num_test": BLOCK, **fields},
    )  # fmt: skip
    return TrainConfig(data=data, optim=OptimConfig(batch_size=8))


def write_test_split_as(root: Path, cfg: TrainConfig, corruptions) -> Path:
    """The clean test split filed under each corruption name, in the CIFAR-C layout."""
    test = load_dataset(cfg.data).test
    write_labels(root, test.labels)
    for name in corruptions:
        write_corruption(root, name, np.concatenate([test.images] * len(SEVERITIES)))
    return root


def test_trials_read_a_large_set_from_shared_storage_only(tmp_path):
    root = write_test_split_as(tmp_path / "c", train_config(tmp_path), ("fog", "snow"))
    cfg = train_config(tmp_path, root, c_images_per_block=5)
    expected = materialize(CorruptedTestSet(root, first_k=5))
    data = prepare_trial_data(cfg, storage=str(tmp_path / "shared"), max_materialized_bytes=0)
    shipped = pickle.loads(pickle.dumps(data))  # what tune.with_parameters hands a trial
    shutil.rmtree(root)  # the trial's node has no corruptions_dir
    assert isinstance(shipped.corrupted_test.blocks, StagedCorruptedSet)
    assert_same_blocks(shipped.corrupted_test.load(shipped.splits), expected)


def test_small_sets_go_through_the_object_store_and_no_storage_means_one_machine(tmp_path):
    cfg = train_config(tmp_path)
    in_memory = prepare_trial_data(cfg, storage=str(tmp_path / "shared"))
    assert isinstance(in_memory.corrupted_test.blocks, dict)
    assert not (tmp_path / "shared").exists()  # nothing staged for a small set
    local = prepare_trial_data(cfg, max_materialized_bytes=0)
    assert local.corrupted_test.blocks is None  # trials re-open the directory themselves
    assert_same_blocks(local.corrupted_test.load(local.splits), in_memory.corrupted_test.blocks)


def test_the_paper_protocol_pool_is_read_on_the_driver(tmp_path):
    from auxtune.data.meta_validation import PAPER_PROTOCOL_SKIP, meta_validation_stream

    n = PAPER_PROTOCOL_SKIP + 4
    root = write_test_split_as(tmp_path / "c", train_config(tmp_path, num_test=n), CORRUPTIONS)
    base = train_config(tmp_path, root, num_test=n)
    cfg = dataclasses.replace(
        base, weighting=WeightingConfig(name="meta", sections={"meta": {"protocol": "paper"}})
    )
    data = prepare_trial_data(cfg, storage=str(tmp_path / "shared"), max_materialized_bytes=0)
    shutil.rmtree(root)  # trials build their meta-validation stream without the directory
    assert data.paper_pool is not None
    assert len(data.paper_pool) == len(CORRUPTIONS) * len(SEVERITIES) * PAPER_PROTOCOL_SKIP
    stream = meta_validation_stream("paper", data.splits, cfg.data, 8, 0, paper=data.paper_pool)
    assert stream.batch(0)[0].shape == (8, 32, 32, 3)
    staged = data.corrupted_test.load(data.splits)
    assert staged["fog", 1][0].shape == (4, 32, 32, 3)  # evaluation skips the pool's images


def test_docstring_example_runs():
    import doctest

    assert doctest.testmod(staging).failed == 0
