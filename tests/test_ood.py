"""OOD detection: the detectors' definitions and signs, metrics agreeing with scikit-learn, OOD sets
(held-out classes, noise, files, CIFAR-100), bad input as one-line errors, and the CLI."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score
from torch.nn import functional as F

from auxtune.config import ConfigError, apply_overrides, from_dict
from auxtune.data.datasets import DatasetSplits, ImageSet
from auxtune.data.experiment import prepare_experiment_data
from auxtune.data.ood import (
    check_images,
    class_map,
    hold_out_classes,
    load_image_file,
    noise_images,
)
from auxtune.errors import DataError
from auxtune.platform.cli import main
from auxtune.robust.config import (
    OOD_DETECTORS,
    LabelNoiseConfig,
    ModelConfig,
    OODConfig,
    TasksConfig,
    TrainConfig,
    ood_detectors,
)
from auxtune.robust.model import MultiHeadNet
from auxtune.robust.ood import (
    DETECTORS,
    detection_metrics,
    evaluate_ood,
    outlier_scores,
)
from auxtune.robust.tasks.rotation import rotate
from auxtune.trainables.data import materialize
from auxtune.trainables.metrics import final_ood_metrics, reported_metrics, val_ood_metrics

TINY = ModelConfig(depth=10, widen_factor=1, base_width=4)


def toy_splits(per_class: int = 6, classes: int = 5) -> DatasetSplits:
    """Every image's pixels hold its class index, so held-out images can be recognised."""

    def part(offset: int) -> ImageSet:
        labels = np.repeat(np.arange(classes), per_class)
        images = np.broadcast_to(labels[:, None, None, None], (len(labels), 32, 32, 3))
        return ImageSet((images + offset).astype(np.uint8), labels)

    return DatasetSplits(part(0), part(100), part(150), part(200), num_classes=classes, name="toy")


# ------------------------------------------------------------------------------- detectors


def test_every_configured_detector_is_registered_and_rotation_needs_its_task():
    assert set(DETECTORS) == set(OOD_DETECTORS)
    assert ood_detectors(()) == ("msp", "max_logit", "energy")
    assert ood_detectors(("jigsaw", "rotation")) == OOD_DETECTORS


def test_logit_detectors_score_a_confident_image_below_an_uncertain_one():
    logits = torch.tensor([[8.0, 0.0, 0.0], [0.1, 0.0, 0.05]])  # confident, uncertain
    for name in ("msp", "max_logit", "energy"):
        scores = DETECTORS[name](None, torch.zeros(2, 3, 32, 32), logits)  # type: ignore[arg-type]
        assert scores[0] < scores[1], name
    msp = DETECTORS["msp"](None, None, logits)  # type: ignore[arg-type]
    assert torch.allclose(msp, -logits.softmax(1).amax(1))
    energy = DETECTORS["energy"](None, None, logits)  # type: ignore[arg-type]
    assert torch.allclose(energy, -torch.logsumexp(logits, 1))


def test_the_rotation_score_sums_the_rotation_heads_loss_over_the_four_rotations():
    torch.manual_seed(0)
    model = MultiHeadNet(TINY, TasksConfig(names=("rotation",)), num_classes=3).eval()
    x = torch.rand(5, 3, 32, 32)
    with torch.no_grad():
        score = DETECTORS["rotation"](model, x, model(x))
        expected = sum(
            F.cross_entropy(
                model.task("rotation")(model.backbone.forward_features(rotate(x, r))),
                torch.full((5,), r),
                reduction="none",
            )
            for r in range(4)
        )
    assert torch.allclose(score, expected, atol=1e-5)


def test_outlier_scores_are_batched_consistently_and_leave_the_model_in_its_mode():
    torch.manual_seed(0)
    model = MultiHeadNet(TINY, TasksConfig(names=("rotation",)), num_classes=3).train()
    images = np.random.default_rng(0).integers(0, 256, (7, 32, 32, 3), dtype=np.uint8)
    whole = outlier_scores(model, images, OOD_DETECTORS, torch.device("cpu"), batch_size=7)
    pieces = outlier_scores(model, images, OOD_DETECTORS, torch.device("cpu"), batch_size=3)
    assert model.training
    for name in OOD_DETECTORS:
        assert whole[name].shape == (7,)
        assert torch.allclose(whole[name], pieces[name], atol=1e-5), name


# --------------------------------------------------------------------------------- metrics


def test_metrics_agree_with_scikit_learn_and_have_the_documented_orientation():
    rng = np.random.default_rng(0)
    inliers, outliers = torch.tensor(rng.normal(0, 1, 300)), torch.tensor(rng.normal(1, 1, 200))
    m = detection_metrics(inliers, outliers)
    expected = roc_auc_score(np.r_[np.zeros(300), np.ones(200)], np.r_[inliers, outliers])
    assert m.auroc == pytest.approx(expected, abs=1e-9)
    threshold = np.quantile(outliers.numpy(), 0.05)  # catches 95 % of the outliers
    assert m.fpr95 == pytest.approx(float((inliers.numpy() >= threshold).mean()), abs=0.01)
    assert 0.4 < m.aupr < 1
    perfect = detection_metrics(torch.zeros(10), torch.ones(10))
    assert (perfect.auroc, perfect.aupr, perfect.fpr95) == (1.0, 1.0, 0.0)
    assert detection_metrics(torch.ones(10), torch.zeros(10)).auroc == 0.0


def test_evaluate_ood_scores_every_supported_detector_on_every_set():
    torch.manual_seed(0)
    model = MultiHeadNet(TINY, TasksConfig(names=()), num_classes=3)
    images = np.random.default_rng(0).integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    results = evaluate_ood(model, images, {"a": images[:3], "b": images}, torch.device("cpu"))
    assert set(results) == {"a", "b"} and set(results["a"]) == {"msp", "max_logit", "energy"}
    assert results["b"]["msp"].auroc == pytest.approx(0.5)  # the same images: no separation


# -------------------------------------------------------------------------------- OOD sets


def test_held_out_classes_leave_every_split_and_the_rest_are_renumbered():
    splits = toy_splits()
    kept = hold_out_classes(splits, (1, 3))
    assert kept.num_classes == 3 and kept.name == "toy"
    for split in ("train", "val", "holdout", "test"):
        part = getattr(kept, split)
        original = part.images[:, 0, 0, 0] - part.images[0, 0, 0, 0]  # pixel = class + offset
        assert sorted(set(original.tolist())) == [0, 2, 4]
        assert part.labels.tolist() == class_map(5, (1, 3))[original].tolist()
    assert class_map(5, (1, 3)).tolist() == [0, -1, 1, -1, 2]
    assert hold_out_classes(splits, ()) is splits


@pytest.mark.parametrize(
    ("classes", "words"), [((5,), "class 5 does not exist"), ((0, 1, 2, 3), "fewer than two")]
)
def test_impossible_held_out_classes_are_data_errors(classes, words):
    with pytest.raises(DataError, match=words):
        hold_out_classes(toy_splits(), classes)


def test_experiment_data_holds_out_classes_then_corrupts_labels_and_builds_the_ood_sets():
    cfg = TrainConfig(
        ood=OODConfig(test_classes=(4,), val_classes=(3,), sets=("heldout", "uniform")),
        label_noise=LabelNoiseConfig(rate=0.5, trusted_fraction=0.2),
    )
    data = prepare_experiment_data(cfg, toy_splits(per_class=20))
    assert data.splits.num_classes == 3 and data.label_noise is not None
    assert data.label_noise.matrix.shape == (3, 3)  # noise among the classes that remain
    assert np.array_equal(data.splits.test.labels, np.repeat(np.arange(3), 20))  # clean test
    assert set(data.ood_test["heldout"][:, 0, 0, 0].tolist()) == {200 + 4}  # test split, class 4
    assert set(data.ood_val[:, 0, 0, 0].tolist()) == {100 + 3}  # val split, class 3
    assert data.ood_test["uniform"].shape == (60, 32, 32, 3)  # as many as the test images
    assert data.trusted is not None and data.trusted.sum() == 12  # 20 % of 20 per class
    plain = prepare_experiment_data(TrainConfig(), toy_splits())
    assert plain.splits is plain.full and plain.ood_test == {} and plain.trusted is None


def test_noise_images_are_seeded_uint8_and_gaussian_ones_mostly_saturated():
    uniform = noise_images("uniform", 4, seed=1)
    assert uniform.shape == (4, 32, 32, 3) and uniform.dtype == np.uint8
    assert np.array_equal(uniform, noise_images("uniform", 4, seed=1))
    assert not np.array_equal(uniform, noise_images("uniform", 4, seed=2))
    gaussian = noise_images("gaussian", 4, seed=1)
    assert 0.5 < np.isin(gaussian, (0, 255)).mean() < 0.8  # N(0.5, 1) clipped to [0, 1]


def test_image_files_load_and_wrong_shapes_are_refused(tmp_path: Path):
    good = np.zeros((3, 32, 32, 3), np.uint8)
    np.save(tmp_path / "a.npy", good)
    np.savez(tmp_path / "b.npz", images=good)
    np.savez(tmp_path / "c.npz", pictures=good)
    np.save(tmp_path / "d.npy", np.zeros((3, 28, 28), np.uint8))
    np.save(tmp_path / "e.npy", good.astype(np.float32))
    assert load_image_file(tmp_path / "a.npy").shape == (3, 32, 32, 3)
    assert load_image_file(tmp_path / "b.npz").shape == (3, 32, 32, 3)
    for name, words in [
        ("c.npz", "no 'images' array (it holds pictures)"),
        ("d.npy", "shape (3, 28, 28); expected (N, 32, 32, 3)"),
        ("e.npy", "float32; expected uint8"),
        ("missing.npy", "does not exist"),
    ]:
        with pytest.raises(DataError, match=words.replace("(", r"\(").replace(")", r"\)")):
            load_image_file(tmp_path / name)
    with pytest.raises(DataError, match="shape"):
        check_images(np.zeros((0, 32, 32, 3), np.uint8), "empty")


# ---------------------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        (["ood.detector=rotation", "tasks.names=[jigsaw]"], ["ood.detector", "rotation task"]),
        (["ood.detector=mahalanobis"], ["ood.detector", "'mahalanobis'", "msp, max_logit"]),
        (["ood.sets=[heldout]"], ["heldout", "ood.test_classes is empty"]),
        (["ood.sets=[svhn]"], ["ood.sets", "'svhn'", "heldout, uniform, gaussian, cifar100"]),
        (["ood.test_classes=[1]", "ood.val_classes=[1]"], ["must not repeat a class"]),
        (["ood.test_classes=[-1]"], ["must be >= 0"]),
        (["ood.sets=[cifar100]", "data.dataset=cifar100"], ["cifar100", "trains on it"]),
        (
            ["ood.val_classes=[1]", "weighting.name=meta", "weighting.protocol=paper"],
            ["protocol", "holdout"],
        ),
    ],
)
def test_bad_ood_settings_fail_at_parse_time(overrides, words):
    with pytest.raises(ConfigError) as err:
        from_dict(TrainConfig, apply_overrides({}, overrides))
    for word in words:
        assert word in str(err.value)


def test_ood_metric_names_are_listed_only_when_configured():
    assert not {m for m in reported_metrics(TrainConfig()) if "ood" in m}
    cfg = TrainConfig(ood=OODConfig(test_classes=(9,), val_classes=(8,), sets=("heldout",)))
    reported = reported_metrics(cfg)
    assert reported["val_ood_auroc"] == reported["val_ood_auroc/rotation"] == "epoch"
    assert reported["ood_auroc"] == reported["ood/heldout/energy/fpr95"] == "final"
    assert len(final_ood_metrics(cfg)) == 3 + 4 * 3  # headline + set x detector x measure
    assert val_ood_metrics(TrainConfig(tasks=TasksConfig(names=()))) == ()


# ----------------------------------------------------------------------------------- CLI


def _write_cifar100_test(root: Path, n: int = 20) -> None:
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    labels = rng.integers(0, 100, n).tolist()
    (folder / "test").write_bytes(pickle.dumps({b"data": data, b"fine_labels": labels}))


@pytest.mark.slow
def test_train_then_evaluate_ood_through_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture):
    checkpoint = tmp_path / "model.pt"
    overrides = [
        "model.depth=10",
        "model.widen_factor=1",
        "model.base_width=4",
        "tasks.names=[rotation]",
        "optim.epochs=1",
        "optim.batch_size=16",
        "data.num_train=64",
        "data.num_val=40",
        "data.num_test=40",
        "data.holdout=8",
        "runtime.device=cpu",
        "runtime.threads=1",
        "ood.test_classes=[8,9]",
        "ood.val_classes=[7]",
        "ood.sets=[heldout,gaussian]",
        "ood.detector=rotation",
    ]
    train = ["train", "--no-progress", "--no-mlflow", "--out", str(checkpoint)]
    assert main([*train, *overrides]) == 0
    trained = capsys.readouterr().out
    assert "val_ood_auroc=" in trained
    summary = json.loads(trained.strip().splitlines()[-1])  # the last line: every final metric
    assert {"test_accuracy", "ood_auroc", "ood_aupr", "ood_fpr95"} <= set(summary)

    _write_cifar100_test(tmp_path / "cifar")
    np.savez(tmp_path / "mine.npz", images=noise_images("uniform", 9, seed=0))
    report = tmp_path / "ood.json"
    sets = ["heldout", "gaussian", "cifar100", str(tmp_path / "mine.npz")]
    argv = ["evaluate", str(checkpoint), "--no-mlflow", "--data-dir", str(tmp_path / "cifar")]
    argv.append("--json")
    assert main([*argv, str(report), *(f"--ood={s}" for s in sets)]) == 0
    table = capsys.readouterr().out
    assert "7 classes" in table and "rotation" in table  # 8 and 9 held out, 7 for validation
    written = json.loads(report.read_text())["ood"]
    assert set(written) == {"heldout", "gaussian", "cifar100", "mine"}
    assert set(written["mine"]) == {"msp", "max_logit", "energy", "rotation"}
    # the same model and sets as at the end of training: the same headline (rotation, mean)
    mean = (written["heldout"]["rotation"]["auroc"] + written["gaussian"]["rotation"]["auroc"]) / 2
    assert mean == pytest.approx(summary["ood_auroc"], abs=1e-4)

    np.save(tmp_path / "gray.npy", np.zeros((4, 32, 32), np.uint8))
    bad_inputs = [["--ood", str(tmp_path / "gray.npy")], ["--ood", "svhn"], ["--corruptions", "c"]]
    for bad in bad_inputs:  # a wrong shape, an unknown set, all-class corruptions: one line
        assert main(["evaluate", str(checkpoint), *bad]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "Traceback" not in err


class OneBlockSuite:
    """A corrupted test set of one (fog, severity) block per severity, four images each."""

    corruptions = ("fog",)
    images_per_block = 4

    def __init__(self, labels: list[int]) -> None:
        self._labels = np.array(labels)

    def images(self, corruption: str, severity: int) -> np.ndarray:
        return np.broadcast_to(np.arange(4)[:, None, None, None], (4, 32, 32, 3)).astype(np.uint8)

    def labels(self, severity: int) -> np.ndarray:
        return self._labels


def test_corrupted_test_blocks_keep_only_the_trained_classes_relabelled():
    blocks = materialize(OneBlockSuite([0, 1, 2, 1]), class_map(3, (1,)))
    images, labels = blocks["fog", 3]
    assert labels.tolist() == [0, 1] and images[:, 0, 0, 0].tolist() == [0, 2]
    with pytest.raises(DataError, match=r"raise data\.c_images_per_block"):
        materialize(OneBlockSuite([1, 1, 1, 1]), class_map(3, (1,)))
