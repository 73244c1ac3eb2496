"""Label noise (seeded, recorded, test split untouched) and Gold Loss Correction: C is recovered
from an oracle and end to end, the corrected loss is the paper's, p = 0 changes nothing, and the
correction works with the auxiliary heads and the meta-gradient weighting."""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from auxtune.config import ConfigError, apply_overrides, from_dict
from auxtune.data.datasets import DatasetSplits, ImageSet
from auxtune.data.label_noise import (
    apply_label_noise,
    choose_trusted,
    corrupt_labels,
    corruption_matrix,
)
from auxtune.platform.cli import main
from auxtune.robust.config import (
    DataConfig,
    LabelNoiseConfig,
    ModelConfig,
    OptimConfig,
    RuntimeConfig,
    TasksConfig,
    TrainConfig,
    WeightingConfig,
)
from auxtune.robust.gold_loss import (
    corrected_log_likelihood,
    estimate_corruption_matrix,
    gold_corrected_loss,
    matrix_error,
)
from auxtune.robust.label_correction import estimate_corruption
from auxtune.robust.trainer import Trainer
from auxtune.robust.training import compute_losses, train_step
from auxtune.robust.weighting import MAIN, StepContext, create_weighting

TINY = ModelConfig(depth=10, widen_factor=1, base_width=4)


def splits_of(labels: np.ndarray, classes: int = 4, seed: int = 0) -> DatasetSplits:
    """Splits whose images are irrelevant (zeros): only the labels matter to the noise."""
    rng = np.random.default_rng(seed)

    def images(n: int) -> ImageSet:
        return ImageSet(np.zeros((n, 32, 32, 3), np.uint8), rng.integers(0, classes, n))

    return DatasetSplits(
        train=ImageSet(np.zeros((len(labels), 32, 32, 3), np.uint8), labels),
        val=images(400),
        holdout=images(300),
        test=images(200),
        num_classes=classes,
        name="labels-only",
    )


def colour_classes(num: int, seed: int, classes: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Class c is a noisy image of brightness level c: learnt by a tiny network in one epoch."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, num)
    base = (labels * (200 // (classes - 1)))[:, None, None, None]
    images = np.clip(base + rng.integers(-20, 21, (num, 32, 32, 3)), 0, 255)
    return images.astype(np.uint8), labels


def tiny_config(
    tasks: tuple[str, ...] = ("rotation",), weighting: str = "fixed", **noise
) -> TrainConfig:
    return TrainConfig(
        seed=0,
        data=DataConfig(augment=False),
        model=TINY,
        optim=OptimConfig(batch_size=16, epochs=1, lr=0.05),
        tasks=TasksConfig(names=tasks, decoder_width=8),
        weighting=WeightingConfig(
            name=weighting, sections={"meta": {"warmup_epochs": 0, "meta_batch_size": 8}}
        ),
        runtime=RuntimeConfig(device="cpu", threads=1),  # 2 threads crawl on a busy 2-core box
        label_noise=LabelNoiseConfig(**noise),
    )


# ----------------------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        (["label_noise.rate=1.0"], ["label_noise.rate = 1.0", "[0, 1)"]),
        (["label_noise.rate=-0.1"], ["label_noise.rate = -0.1", "[0, 1)"]),
        (["label_noise.trusted_fraction=1"], ["label_noise.trusted_fraction", "[0, 1)"]),
        (
            ["label_noise.correction=glc", "label_noise.rate=0.4"],
            ["label_noise.trusted_fraction = 0.0", "glc", "(0, 1)"],
        ),
        (["label_noise.kind=flip"], ["label_noise.kind", "'flip'", "'uniform', 'pair'"]),
        (["label_noise.correction=forward"], ["label_noise.correction", "'none', 'glc'"]),
    ],
)
def test_bad_label_noise_fails_at_parse_time_naming_the_field(overrides, words):
    with pytest.raises(ConfigError) as err:
        from_dict(TrainConfig, apply_overrides({}, overrides))
    for word in words:
        assert word in str(err.value)


@pytest.mark.parametrize(
    "override",
    ["label_noise.rate=1.5", "label_noise.correction=glc"],  # out of range; GLC without trusted
)
def test_the_cli_refuses_bad_label_noise_in_one_line_with_exit_2(override, capsys):
    assert main(["train", override, "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "label_noise." in err and "Traceback" not in err


# -------------------------------------------------------------------------------- the noise


def test_corruption_matrices_are_stochastic_with_the_documented_structure():
    uniform = corruption_matrix("uniform", 0.3, 5)
    pair = corruption_matrix("pair", 0.3, 5)
    for matrix in (uniform, pair):
        np.testing.assert_allclose(matrix.sum(1), 1.0)
    np.testing.assert_allclose(np.diag(uniform), 0.7 + 0.3 / 5)
    np.testing.assert_allclose(uniform[0, 1:], 0.3 / 5)
    assert pair[4, 0] == pytest.approx(0.3) and pair[0, 1] == pytest.approx(0.3)
    assert (pair > 0).sum() == 10  # the diagonal and one neighbour per row, nothing else


@pytest.mark.parametrize("kind", ["uniform", "pair"])
def test_corrupted_labels_follow_the_matrix(kind):
    matrix = corruption_matrix(kind, 0.45, 4)
    clean = np.repeat(np.arange(4), 5000)
    noisy = corrupt_labels(clean, matrix, np.random.default_rng(1))
    frequencies = np.stack([np.bincount(noisy[clean == c], minlength=4) / 5000 for c in range(4)])
    np.testing.assert_allclose(frequencies, matrix, atol=0.02)  # ~3 binomial std at n = 5000


def test_trusted_images_are_drawn_per_class():
    labels = np.repeat(np.arange(3), [100, 40, 7])
    trusted = choose_trusted(labels, 0.1, np.random.default_rng(0))
    assert [int(trusted[labels == c].sum()) for c in range(3)] == [10, 4, 1]  # at least one
    assert not choose_trusted(labels, 0.0, np.random.default_rng(0)).any()


def test_label_noise_is_seeded_recorded_and_never_touches_the_test_split():
    clean = np.random.default_rng(5).integers(0, 4, 2000)
    splits = splits_of(clean)
    cfg = LabelNoiseConfig(rate=0.6, kind="pair", trusted_fraction=0.1, seed=3)
    noisy, record = apply_label_noise(splits, cfg)
    again, _ = apply_label_noise(splits, cfg)
    other, _ = apply_label_noise(splits, dataclasses.replace(cfg, seed=4))
    assert record is not None
    np.testing.assert_array_equal(noisy.train.labels, again.train.labels)
    assert not np.array_equal(noisy.train.labels, other.train.labels)
    assert noisy.test is splits.test  # clean test labels
    trusted = record.trusted
    np.testing.assert_array_equal(noisy.train.labels[trusted], clean[trusted])
    np.testing.assert_array_equal(record.clean_train_labels, clean)
    changed = int((noisy.train.labels != clean).sum())
    assert record.flipped("train") == changed
    assert changed / (~trusted).sum() == pytest.approx(0.6, abs=0.04)
    for split in ("val", "holdout"):  # same labelling process as the training split
        before, after = getattr(splits, split).labels, getattr(noisy, split).labels
        assert record.flipped(split) == int((before != after).sum()) > 0
        assert np.all((after == before) | (after == (before + 1) % 4))  # pair flips only
    summary = record.to_dict()
    assert summary["flipped"]["train"] == changed and len(summary["matrix"]) == 4
    assert summary["trusted_images"] == int(trusted.sum())


def test_an_inactive_section_leaves_the_splits_as_they_are():
    splits = splits_of(np.zeros(50, np.int64))
    assert apply_label_noise(splits, LabelNoiseConfig()) == (splits, None)


# ---------------------------------------------------------------------- gold loss correction


def test_c_is_recovered_exactly_from_an_oracle_whose_softmax_is_the_noise_distribution():
    truth = torch.tensor(corruption_matrix("uniform", 0.5, 4), dtype=torch.float32)
    clean = torch.arange(4).repeat_interleave(25)
    assert torch.allclose(estimate_corruption_matrix(truth[clean], clean, 4), truth)


def test_c_is_recovered_within_sampling_error_from_one_hot_noisy_predictions():
    """A model that memorised the noisy labels of the trusted images: C_hat is their empirical
    transition frequency, within ~3 binomial std (n = 500 per class) of the true C."""
    truth = corruption_matrix("pair", 0.3, 5)
    clean = np.repeat(np.arange(5), 500)
    noisy = corrupt_labels(clean, truth, np.random.default_rng(0))
    estimate = estimate_corruption_matrix(
        F.one_hot(torch.as_tensor(noisy), 5).float(), torch.as_tensor(clean), 5
    )
    assert matrix_error(estimate, torch.as_tensor(truth)) < 0.01
    np.testing.assert_allclose(estimate.numpy(), truth, atol=0.07)


def test_a_class_without_trusted_images_is_an_error():
    with pytest.raises(ValueError, match="no trusted image of class 2"):
        estimate_corruption_matrix(torch.full((4, 3), 1 / 3), torch.tensor([0, 0, 1, 1]), 3)


def test_the_corrected_loss_is_the_papers():
    torch.manual_seed(0)
    logits, labels = torch.randn(6, 4), torch.randint(4, (6,))
    matrix = torch.tensor(corruption_matrix("pair", 0.4, 4), dtype=torch.float32)
    naive = -torch.log((logits.softmax(1) @ matrix).gather(1, labels[:, None])).squeeze(1)
    trusted = torch.tensor([True, False, True, False, False, False])
    clean = F.cross_entropy(logits, labels, reduction="none")
    expected = torch.where(trusted, clean, naive).mean()
    loss = gold_corrected_loss(logits, labels, trusted=trusted, matrix=matrix)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    identity = gold_corrected_loss(logits, labels, trusted=~trusted, matrix=torch.eye(4))
    assert identity.item() == pytest.approx(F.cross_entropy(logits, labels).item(), rel=1e-5)


def test_the_corrected_loss_stays_finite_where_c_has_zeros_and_logits_are_extreme():
    logits = torch.tensor([[60.0, -60.0, 0.0]], requires_grad=True)
    matrix = torch.tensor(corruption_matrix("pair", 0.2, 3), dtype=torch.float32)
    loss = gold_corrected_loss(
        logits, torch.tensor([2]), trusted=torch.tensor([False]), matrix=matrix
    )
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()
    assert corrected_log_likelihood(logits.detach(), matrix).exp().sum().item() == pytest.approx(1)


def test_without_noise_training_is_bit_identical_to_no_label_noise_section():
    images, labels = colour_classes(96, seed=0)
    splits = splits_of(labels)
    splits = dataclasses.replace(splits, train=ImageSet(images, labels))
    plain = Trainer(tiny_config(), images, labels, 4)
    plain.train_epoch()  # each trainer seeds the global RNG its tasks draw from: one at a time
    cfg = tiny_config(rate=0.0, trusted_fraction=0.25, seed=9)
    noisy, record = apply_label_noise(splits, cfg.label_noise)
    assert record is not None and record.flipped("train") == 0
    same = Trainer(cfg, noisy.train.images, noisy.train.labels, 4, trusted=record.trusted)
    same.train_epoch()
    for key, value in plain.model.state_dict().items():
        assert torch.equal(value, same.model.state_dict()[key]), key


def tiny_meta_source(images: np.ndarray, labels: np.ndarray):
    class Source:
        def batch(self, index: int):
            chosen = np.random.default_rng(index).choice(len(labels), 8, replace=False)
            return images[chosen], labels[chosen]

    return Source()


@pytest.mark.parametrize("weighting", ["fixed", "meta"])
def test_the_correction_changes_only_the_main_loss_under_every_weighting(weighting):
    """The weighting sees the corrected main loss beside the same auxiliary losses, and the
    update follows it: it differs from the uncorrected update, and is finite."""
    torch.manual_seed(0)
    images, labels = colour_classes(16, seed=1)
    x = torch.as_tensor(images).permute(0, 3, 1, 2).float() / 255
    y = torch.as_tensor(labels)
    matrix = torch.tensor(corruption_matrix("pair", 0.45, 4), dtype=torch.float32)
    trusted = torch.arange(16) < 4
    main_loss = functools.partial(gold_corrected_loss, trusted=trusted, matrix=matrix)
    cfg = tiny_config(tasks=("rotation", "jigsaw"), weighting=weighting)
    source = tiny_meta_source(images, labels)
    updates = []
    for loss in (main_loss, None):
        trainer = Trainer(cfg, images, labels, 4, meta_source=source)
        before = [p.detach().clone() for p in trainer.model.parameters()]
        torch.manual_seed(1)
        kwargs = {} if loss is None else {"main_loss": loss}
        ctx = StepContext(
            trainer.model, trainer.optimizer, epoch=0, step=0, meta_batch=_meta(source)
        )
        weighting_ = create_weighting(cfg.weighting, cfg.tasks.names)
        metrics = train_step(trainer.model, trainer.optimizer, weighting_, x, y, ctx, **kwargs)
        assert all(torch.isfinite(torch.as_tensor(v)).all() for v in metrics.values())
        after = list(trainer.model.parameters())
        updates.append(torch.cat([(a - b).flatten() for a, b in zip(after, before)]))
    assert not torch.allclose(updates[0], updates[1])
    torch.manual_seed(1)
    model = Trainer(cfg, images, labels, 4, meta_source=source).model
    torch.manual_seed(2)
    losses = compute_losses(model, x, y, main_loss=main_loss)
    assert set(losses) == {MAIN, "rotation", "jigsaw"}
    expected = gold_corrected_loss(model(x), y, trusted=trusted, matrix=matrix)
    assert losses[MAIN].item() == pytest.approx(expected.item(), rel=1e-5)


def _meta(source):
    def get():
        images, labels = source.batch(0)
        x = torch.as_tensor(images).permute(0, 3, 1, 2).float() / 255
        return x, torch.as_tensor(labels)

    return get


def test_the_corruption_matrix_travels_with_the_checkpoint():
    images, labels = colour_classes(32, seed=2)
    matrix = torch.tensor(corruption_matrix("uniform", 0.3, 4), dtype=torch.float32)
    cfg = tiny_config(rate=0.3, trusted_fraction=0.25, correction="glc")
    trainer = Trainer(cfg, images, labels, 4, corruption_matrix=matrix)
    trainer.train_epoch()
    resumed = Trainer(cfg, images, labels, 4)
    assert resumed.corruption_matrix is None
    resumed.load_state_dict(trainer.state_dict())
    assert torch.equal(resumed.corruption_matrix, matrix)
    assert "corruption_matrix" not in Trainer(tiny_config(), images, labels, 4).state_dict()


@pytest.mark.parametrize("weighting", ["fixed", pytest.param("meta", marks=pytest.mark.slow)])
def test_glc_end_to_end_recovers_c_and_beats_no_correction_on_severe_pair_noise(weighting):
    """Four brightness classes, 70 % of the untrusted labels moved to the next class, 10 %
    trusted. Uncorrected, the network learns the noisy argmax (the next class); stage 1 learns
    p(noisy | x), so C_hat is near the true C, and the corrected model classifies the clean test
    images (seeded)."""
    images, labels = colour_classes(384, seed=0)
    test_images, test_labels = colour_classes(400, seed=1)
    splits = splits_of(labels)
    splits = dataclasses.replace(splits, train=ImageSet(images, labels))
    base = tiny_config(
        tasks=("rotation",),
        weighting=weighting,
        rate=0.7,
        kind="pair",
        trusted_fraction=0.1,
        correction="glc",
    )
    cfg = dataclasses.replace(
        base, optim=dataclasses.replace(base.optim, epochs=3)
    )  # 2 epochs: 0.78 since BatchNorm keeps clean-batch statistics
    noisy, record = apply_label_noise(splits, cfg.label_noise)
    assert record is not None
    train = noisy.train
    source = tiny_meta_source(train.images, train.labels) if weighting == "meta" else None
    estimate = estimate_corruption(
        cfg, train.images, train.labels, record.trusted, 4, meta_source=source
    )
    assert estimate.epochs == 3
    assert matrix_error(estimate.matrix, torch.as_tensor(record.matrix)) < 0.08
    accuracy = {}
    for name, matrix in (("glc", estimate.matrix), ("none", None)):
        trainer = Trainer(
            cfg,
            train.images,
            train.labels,
            4,
            meta_source=source,
            trusted=record.trusted,
            corruption_matrix=matrix,
        )
        for _ in range(cfg.optim.epochs):
            trainer.train_epoch()
        accuracy[name] = trainer.evaluate(test_images, test_labels)
    assert accuracy["glc"] > max(0.9, accuracy["none"] + 0.3), accuracy  # measured 1.0 vs 0.45


def test_a_trusted_mask_of_the_wrong_length_is_refused():
    images, labels = colour_classes(8, seed=0)
    with pytest.raises(ValueError, match="trusted marks 3 images, but 8 are given"):
        Trainer(tiny_config(), images, labels, 4, trusted=np.ones(3, bool))
