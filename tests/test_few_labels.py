"""Few labels (``data.labeled_fraction``): which labels are kept, what is refused, and how the
trainer draws the main loss's batches from the labelled images alone.

That no unlabelled image reaches the main loss, for every weighting, is part of the weighting
contract (``tests/test_weighting_contract.py``)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from auxtune.config import ConfigError
from auxtune.data.datasets import DatasetSplits, ImageSet, load_dataset
from auxtune.data.experiment import prepare_experiment_data
from auxtune.data.few_labels import hide_labels, labelled_subset
from auxtune.robust.config import (
    AdversarialConfig,
    DataConfig,
    LabelNoiseConfig,
    ModelConfig,
    OptimConfig,
    RuntimeConfig,
    TasksConfig,
    TrainConfig,
)
from auxtune.robust.data_utils import UNLABELED, LabelledBatches
from auxtune.robust.trainer import Trainer

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny(fraction: float = 1.0, tasks: tuple[str, ...] = ("rotation",), **data) -> TrainConfig:
    return TrainConfig(
        data=DataConfig(
            num_train=48, num_val=8, num_test=8, holdout=8, labeled_fraction=fraction, **data
        ),
        model=ModelConfig(depth=10, widen_factor=1, base_width=4),
        optim=OptimConfig(batch_size=8, epochs=3),
        tasks=TasksConfig(names=tasks, decoder_width=8),
        runtime=RuntimeConfig(device="cpu"),
    )


# ------------------------------------------------------------------------- which labels stay
def test_the_labelled_subset_is_class_balanced_seeded_and_sorted():
    labels = np.random.default_rng(0).integers(0, 10, 1000)
    kept = labelled_subset(labels, 100, seed=3)
    assert len(kept) == 100 and np.all(np.diff(kept) > 0)
    assert np.bincount(labels[kept], minlength=10).tolist() == [10] * 10
    assert np.array_equal(kept, labelled_subset(labels, 100, seed=3))
    assert not np.array_equal(kept, labelled_subset(labels, 100, seed=4))


def test_a_rare_class_gives_all_it_has_and_the_others_fill_up():
    labels = np.array([0] * 50 + [1] * 2)
    kept = labelled_subset(labels, 10, seed=0)
    assert np.bincount(labels[kept]).tolist() == [8, 2]


def test_only_the_training_split_loses_labels():
    cfg = tiny(0.25)
    full = load_dataset(cfg.data)
    splits = hide_labels(full, cfg.data, batch_size=8)
    train = splits.train.labels
    assert (train != UNLABELED).sum() == 12 and (train == UNLABELED).sum() == 36
    kept = train != UNLABELED
    assert np.array_equal(train[kept], full.train.labels[kept])
    assert np.array_equal(splits.train.images, full.train.images)
    for split in ("val", "holdout", "test"):
        assert getattr(splits, split) is getattr(full, split)


def test_every_label_kept_returns_the_splits_as_they_are():
    cfg = tiny(1.0)
    full = load_dataset(cfg.data)
    assert hide_labels(full, cfg.data, batch_size=8) is full
    assert prepare_experiment_data(cfg, full).splits.train is full.train


# --------------------------------------------------------------------------------- refusals
@pytest.mark.parametrize("fraction", [0.0, -0.5, 1.5, float("nan")])
def test_a_fraction_outside_zero_one_is_refused_naming_the_field(fraction):
    with pytest.raises(ConfigError, match=r"data\.labeled_fraction = .* must be in \(0, 1\]"):
        DataConfig(labeled_fraction=fraction)


def test_a_labelled_set_smaller_than_one_batch_is_refused_when_the_config_is_read():
    with pytest.raises(ConfigError, match=r"labels 5 of the 48 .* fewer than one batch"):
        tiny(0.1)  # 5 labelled images, batches of 8


def test_a_dataset_read_from_files_is_checked_once_its_size_is_known():
    cfg = tiny(1.0)
    big = load_dataset(cfg.data)
    few = dataclasses.replace(cfg.data, labeled_fraction=0.1)
    with pytest.raises(ConfigError, match=r"data.labeled_fraction = 0.1 labels 5 of the 48"):
        hide_labels(big, few, batch_size=8)


def test_an_unknown_dataset_lists_the_valid_ones():
    with pytest.raises(ConfigError, match=r"unknown dataset 'imagenet'.*photo_shapes"):
        DataConfig(dataset="imagenet")


def test_few_labels_with_label_noise_or_adversarial_training_is_refused():
    base = tiny(0.5)
    with pytest.raises(ConfigError, match="label_noise"):
        dataclasses.replace(base, label_noise=LabelNoiseConfig(rate=0.2))
    with pytest.raises(ConfigError, match=r"adversarial.train"):
        dataclasses.replace(base, adversarial=AdversarialConfig(train=True))


def test_the_trainer_refuses_too_few_labelled_images_itself():
    cfg = tiny(1.0)
    images = np.zeros((48, 32, 32, 3), np.uint8)
    labels = np.full(48, UNLABELED)
    labels[:5] = 1
    with pytest.raises(ConfigError, match="5 of the 48 training images are labelled"):
        Trainer(cfg, images, labels, num_classes=10)


# -------------------------------------------------------------------------------- the batches
def test_every_labelled_image_is_drawn_once_per_cycle_in_a_new_order():
    labels = torch.full((40,), UNLABELED)
    labels[torch.arange(0, 40, 2)] = 3  # 20 labelled: two batches of 8 per cycle, 4 left over
    batches = LabelledBatches.of(labels, batch_size=8, seed=0)
    assert batches is not None and batches.per_cycle == 2
    first = torch.cat([batches.batch(0), batches.batch(1)])
    second = torch.cat([batches.batch(2), batches.batch(3)])
    assert len(set(first.tolist())) == 16 and set(first.tolist()) <= set(range(0, 40, 2))
    assert not torch.equal(first, second)
    assert torch.equal(LabelledBatches.of(labels, 8, 0).batch(3), batches.batch(3))  # stateless
    assert LabelledBatches.of(torch.zeros(40, dtype=torch.long), 8, 0) is None


def _hidden(cfg: TrainConfig) -> DatasetSplits:
    return prepare_experiment_data(cfg).splits


def _train(cfg: TrainConfig, train: ImageSet, epochs: int) -> tuple[Trainer, list[float]]:
    trainer = Trainer(cfg, train.images, train.labels, num_classes=10)
    losses = [trainer.train_epoch()["loss/main"] for _ in range(epochs)]
    return trainer, losses


def test_a_resumed_run_with_few_labels_continues_bit_for_bit():
    cfg = tiny(0.5)
    train = _hidden(cfg).train
    _, expected = _train(cfg, train, 3)
    first, losses = _train(cfg, train, 2)
    assert losses == expected[:2]
    state = first.state_dict()  # now: it holds the global RNG's state, which a new Trainer moves
    resumed = Trainer(cfg, train.images, train.labels, num_classes=10)
    resumed.load_state_dict(state)
    assert resumed.train_epoch()["loss/main"] == expected[2]


def test_runs_with_and_without_tasks_share_a_seeds_labelled_batches():
    """The control (no auxiliary task) and a row with tasks are paired by seed: the same main
    batches at every step, so a difference between them is the tasks' doing."""
    seen: dict[tuple[str, ...], list[list[int]]] = {}
    for tasks in ((), ("rotation",)):
        cfg = tiny(0.5, tasks=tasks)
        train = _hidden(cfg).train
        trainer = Trainer(cfg, train.images, train.labels, num_classes=10)
        assert trainer.labelled is not None
        seen[tasks] = [trainer.labelled.batch(k).tolist() for k in range(12)]
    assert seen[()] == seen[("rotation",)]


def test_the_baseline_with_few_labels_learns_from_the_labelled_images_alone():
    """No task: every step is one batch of labelled images, as many steps as with all labels."""
    cfg = tiny(0.5, tasks=())
    train = _hidden(cfg).train
    trainer, _ = _train(cfg, train, 1)
    assert trainer.step == 48 // 8
