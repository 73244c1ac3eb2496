"""Attack evaluation: our PGD against ART's on a fixed model, the sanity checks against gradient
masking on a trained model (and that they catch a masked one), the metric names trials report,
and ``auxtune evaluate --attack``."""

from __future__ import annotations

import dataclasses
import doctest
import json

import numpy as np
import pytest
import torch
from torch import nn

from auxtune.config import ConfigError
from auxtune.platform.cli import main
from auxtune.platform.config import load_experiment
from auxtune.robust import adversarial_eval, gradient_masking, pgd_eval
from auxtune.robust.adversarial import PGD
from auxtune.robust.adversarial_eval import (
    epoch_metrics,
    final_metrics,
    sweep_metric,
    sweep_multiple,
)
from auxtune.robust.art_attacks import art_accuracy, art_classifier, art_pgd
from auxtune.robust.checkpoint import save_checkpoint
from auxtune.robust.config import (
    AdversarialConfig,
    DataConfig,
    ModelConfig,
    OptimConfig,
    RuntimeConfig,
    TasksConfig,
    TrainConfig,
)
from auxtune.robust.gradient_masking import attack_report, masking_checks, sampling_tolerance
from auxtune.robust.pgd_eval import robust_accuracy, robust_correct
from auxtune.robust.trainer import Trainer, predict
from auxtune.trainables.metrics import reported_metrics

TINY = ModelConfig(depth=10, widen_factor=1, base_width=4)
N = 64  # test images: enough for every check's tolerance (sampling_tolerance(64) = 2.5 points)


def dark_or_bright(num: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Dark noise (class 0, pixels 0-115) or bright noise (class 1, pixels 140-255)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, num)
    low = np.where(labels == 1, 140, 0)[:, None, None, None]
    return (low + rng.integers(0, 116, (num, 32, 32, 3))).astype(np.uint8), labels


@pytest.fixture(scope="module")
def trained():
    """A WRN-10-1 trained one epoch on dark/bright noise: 100 % clean, about half robust at
    epsilon 0.05 and none at 0.1 (measured), so attacks have something to find."""
    images, labels = dark_or_bright(256, seed=0)
    cfg = TrainConfig(
        data=DataConfig(augment=False),
        model=TINY,
        optim=OptimConfig(batch_size=32, epochs=1, lr=0.05),
        tasks=TasksConfig(names=()),
        runtime=RuntimeConfig(device="cpu"),
    )
    trainer = Trainer(cfg, images, labels, num_classes=10)
    trainer.train_epoch()
    return trainer.model.eval(), dark_or_bright(N, seed=1)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("module", [adversarial_eval, gradient_masking, pgd_eval])
def test_doctests_pass(module):
    results = doctest.testmod(module)
    assert results.attempted > 0 and results.failed == 0


def test_zero_epsilon_is_the_clean_accuracy_and_attacks_only_lower_it(trained):
    model, (images, labels) = trained
    clean = predict(model, images, torch.device("cpu")) == torch.as_tensor(labels)
    at_zero = robust_correct(model, images, labels, PGD("linf", 0.0, 0.0, 5))
    attacked = robust_correct(model, images, labels, PGD("linf", 0.05, 0.0125, 10))
    assert torch.equal(at_zero, clean)
    assert not (attacked & ~clean).any()  # robust implies correct clean
    assert attacked.sum() < clean.sum()


def test_evaluation_restores_the_mode_and_leaves_batchnorm_alone(trained):
    model, (images, labels) = trained
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    robust_accuracy(model, images, labels, PGD("linf", 0.05, 0.0125, 3))
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    model.eval()


@pytest.mark.parametrize("threat_model,epsilon", [("linf", 0.05), ("l2", 1.5)])
def test_our_pgd_matches_arts_pgd_on_a_fixed_model(trained, threat_model, epsilon):
    """Same radius, step and steps, both starting at x (no randomness): the two PGDs take the same
    path, so the accuracies differ by at most the images ours fools at an earlier iterate but
    ART's last iterate does not (ours counts every iterate), i.e. ours <= ART's, within a few."""
    model, (images, labels) = trained
    pgd = PGD(threat_model, epsilon, epsilon / 4, 10, random_start=False)
    ours = robust_accuracy(model, images, labels, pgd)
    x_adv = art_pgd(art_classifier(model), pgd, random_inits=0).generate(
        x=images.transpose(0, 3, 1, 2).astype(np.float32) / 255, y=labels
    )
    theirs = art_accuracy(model, images, labels, x_adv, threat_model, epsilon)
    assert 0.1 < theirs < 0.9, "the radius should leave something to find and to keep"
    assert theirs - 3 / N <= ours <= theirs + 1e-9


def test_our_pgd20_with_a_random_start_is_as_strong_as_arts(trained):
    model, (images, labels) = trained
    ours = adversarial_eval.run_attack("pgd20", model, images, labels, "linf", 0.05)
    theirs = adversarial_eval.run_attack("art-pgd20", model, images, labels, "linf", 0.05)
    assert abs(ours.accuracy - theirs.accuracy) <= sampling_tolerance(N)


@pytest.mark.slow  # every attack of the checks, ART's APGD included: ~10 s of CPU
def test_the_sanity_checks_pass_on_a_trained_model(trained):
    """Accuracy falls with epsilon, is ~0 at a large one, PGD-100 <= PGD-20 and ART's APGD
    (CE + DLR) is no weaker than our PGD-20, each within sampling_tolerance(64) = 2.5 points."""
    model, (images, labels) = trained
    report = attack_report(
        model, images, labels, ["pgd20"], "linf", 0.05, sweep=(0.5, 1, 2), checks=True
    )
    assert [c.name for c in report.checks] == [
        "monotone in epsilon",
        "about 0 at a large epsilon",
        "PGD-100 <= PGD-20",
        "apgd <= PGD-20",
    ]
    assert all(c.passed for c in report.checks), report.format_table()
    assert list(report.sweep) == [0.025, 0.05, 0.1]
    assert report.sweep[0.1] < report.sweep[0.025] < report.clean_accuracy


class GradientMasked(nn.Module):
    """The trained model behind a rounding to 1/255: the same predictions, zero input gradients."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model, self.num_classes = model, model.num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(torch.round(x * 255) / 255)


@pytest.mark.slow  # as above, on a model no gradient attack moves: every image, every step
def test_the_checks_catch_a_model_that_masks_its_gradients(trained):
    model, (images, labels) = trained
    masked = GradientMasked(model).eval()
    report = attack_report(masked, images, labels, [], "linf", 0.05, sweep=(1,), checks=True)
    failed = {c.name for c in report.checks if not c.passed}
    assert "about 0 at a large epsilon" in failed, report.format_table()


def test_masking_checks_fail_on_each_symptom():
    ok = masking_checks({0: 0.9, 0.1: 0.5, 0.2: 0.2}, 0.5, 0.48, (0.5, 0.0), ("apgd", 0.45))
    assert all(c.passed for c in ok)
    bad = masking_checks({0: 0.9, 0.1: 0.5, 0.2: 0.6}, 0.5, 0.6, (0.5, 0.3), ("apgd", 0.7))
    assert not any(c.passed for c in bad)
    assert "0.500 at 0.1 -> 0.600 at 0.2" in bad[0].detail


# ---------------------------------------------------------------------------------- metric names


def test_sweep_metric_names_round_trip():
    for multiple in (0.0, 0.25, 1.0, 1.5, 2.0):
        assert sweep_multiple(sweep_metric(multiple)) == multiple
    assert sweep_multiple("adv_pgd20_accuracy") is None


def test_reported_metrics_list_exactly_what_the_evaluation_returns(trained):
    model, (images, labels) = trained
    split = type("Split", (), {"images": images, "labels": labels})()
    cfg = AdversarialConfig(evaluate=True, epsilon=0.05, val_images=16, test_images=16)
    cfg = dataclasses.replace(cfg, sweep=(0.0, 1.0, 2.0), final_attacks=("pgd3", "art-pgd2"))
    listed = reported_metrics(TrainConfig(adversarial=cfg))
    epoch = {k for k in epoch_metrics(model, split, cfg) if not k.startswith("time/")}
    final = set(final_metrics(model, split, cfg))
    assert epoch == {k for k, when in listed.items() if when == "epoch"} - {
        "val_accuracy",
        "val_corrupt_accuracy",
    }
    assert final == {k for k, when in listed.items() if when == "final" and "adv" in k}
    assert not any("adv" in k for k in reported_metrics(TrainConfig()))
    off = dataclasses.replace(cfg, evaluate=False)
    assert epoch_metrics(model, split, off) == {} and final_metrics(model, split, off) == {}


def test_search_may_maximise_adversarial_accuracy_only_when_it_is_reported():
    exp = load_experiment(None, ["adversarial.evaluate=true", "search.metric=val_adv_accuracy"])
    assert exp.search.metric == "val_adv_accuracy"
    with pytest.raises(ConfigError, match=r"val_adv_accuracy.*not reported every epoch"):
        load_experiment(None, ["search.metric=val_adv_accuracy"])


# ---------------------------------------------------------------------------------- the CLI


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A tiny model's checkpoint whose data section is 32 synthetic test images."""
    data = DataConfig(num_train=64, num_val=16, num_test=32, holdout=0, augment=False)
    cfg = TrainConfig(
        data=data,
        model=TINY,
        optim=OptimConfig(batch_size=32, epochs=1),
        tasks=TasksConfig(names=()),
        runtime=RuntimeConfig(device="cpu"),
        adversarial=AdversarialConfig(evaluate=True, epsilon=2 / 255),
    )
    images, labels = dark_or_bright(64, seed=2)
    trainer = Trainer(cfg, images, labels, num_classes=10)
    trainer.train_epoch()
    return save_checkpoint(trainer, tmp_path_factory.mktemp("ckpt") / "model.pt")


def test_cli_attacks_a_checkpoint_prints_a_table_and_writes_json(checkpoint, tmp_path, capsys):
    out = tmp_path / "attacks.json"
    args = ["evaluate", str(checkpoint), "--attack", "pgd5,art-pgd5", "--epsilon", "4/255"]
    store = f"sqlite:///{tmp_path}/mlflow.db"
    assert main([*args, "--images", "16", "--json", str(out), "--tracking-uri", store]) == 0
    printed = capsys.readouterr().out
    assert "linf epsilon 0.01569 (4/255), 16 test images" in printed
    report = json.loads(out.read_text())["adversarial"]
    assert set(report["attacks"]) == {"pgd5", "art-pgd5"} and report["images"] == 16
    assert report["epsilon"] == pytest.approx(4 / 255)
    summary = json.loads(next(line for line in printed.splitlines() if line.startswith("{")))
    assert summary["adversarial"]["pgd5"] == pytest.approx(
        report["attacks"]["pgd5"]["accuracy"], abs=1e-4
    )
    from mlflow import MlflowClient  # the evaluation is an MLflow run with the attack metrics

    (run,) = MlflowClient(store).search_runs(
        [e.experiment_id for e in MlflowClient(store).search_experiments()]
    )
    assert run.data.metrics["adv_pgd5_accuracy"] == pytest.approx(
        report["attacks"]["pgd5"]["accuracy"], abs=1e-6
    )


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--attack", "fgsm"], "unknown attack 'fgsm'"),
        (["--attack", "pgd20", "--epsilon", "-1"], "--epsilon -1 must be > 0"),
        (["--attack", "pgd20", "--epsilon", "8/0"], "is not a number"),
        (["--attack", "pgd20", "--epsilon", "2"], "must be <= 1 for linf"),
        (["--attack", "pgd20", "--restarts", "0"], "--restarts 0 must be >= 1"),
        ([], "nothing to evaluate"),
    ],
)
def test_cli_bad_attack_input_exits_2_with_one_line(checkpoint, capsys, flags, message):
    assert main(["evaluate", str(checkpoint), *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
