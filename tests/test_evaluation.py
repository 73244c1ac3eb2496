"""The corrupted-set report: the 15- and 19-corruption means, partial sets, output, in-memory loop."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from auxtune.data.corruptions import CORRUPTIONS, EXTRA_CORRUPTIONS, STANDARD_CORRUPTIONS
from auxtune.data.evaluation import evaluate_in_memory, summarize
from auxtune.robust.config import ModelConfig, TasksConfig
from auxtune.robust.model import MultiHeadNet
from auxtune.robust.trainer import predict

SEVERITIES = (1, 2, 3, 4, 5)


def _counts(names, correct=lambda c, s: 10 * s, total=100):
    correct_counts = {(c, s): correct(c, s) for c in names for s in SEVERITIES}
    return correct_counts, dict.fromkeys(correct_counts, total)


def test_means_over_15_and_19() -> None:
    # standard corruptions score s/10 at severity s (mean 0.3); the extra ones 0.5 everywhere
    report = summarize(*_counts(CORRUPTIONS, lambda c, s: 50 if c in EXTRA_CORRUPTIONS else 10 * s))
    assert report.mean_15 == pytest.approx(0.3)
    assert report.mean_19 == pytest.approx((15 * 0.3 + 4 * 0.5) / 19)
    assert report.corruption_accuracy()["fog"] == pytest.approx(0.3)
    assert report.accuracy()["fog"][4] == 0.4
    assert report.notes == []


def test_a_missing_corruption_blanks_the_means_and_says_so() -> None:
    report = summarize(*_counts([c for c in CORRUPTIONS if c != "snow"]))
    assert report.mean_15 is None and report.mean_19 is None
    assert report.notes[0] == "mean_15 unavailable: missing snow"
    assert report.mean_present == pytest.approx(0.3)
    assert "partial set" in report.format_table()


def test_a_missing_severity_blanks_the_means() -> None:
    correct, total = _counts(CORRUPTIONS)
    del correct["fog", 5], total["fog", 5]
    report = summarize(correct, total)
    assert report.mean_15 is None and report.mean_19 is None
    assert "fog has severities [1, 2, 3, 4] only" in report.notes


def test_only_the_standard_15_gives_the_headline() -> None:
    report = summarize(*_counts(STANDARD_CORRUPTIONS))
    assert report.mean_15 == pytest.approx(0.3) and report.mean_19 is None


def test_unknown_corruptions_are_shown_but_not_averaged() -> None:
    correct, total = _counts(CORRUPTIONS)
    extra_correct, extra_total = _counts(["my_blur"], lambda c, s: 100)
    report = summarize({**correct, **extra_correct}, {**total, **extra_total})
    assert report.mean_15 == pytest.approx(0.3)
    assert "my_blur" in report.format_table()
    assert report.notes == ["not CIFAR-C corruptions, left out of mean_15/mean_19: my_blur"]


@pytest.mark.parametrize(
    ("correct", "total"),
    [
        ({("fog", 1): 3}, {("fog", 2): 3}),
        ({("fog", 1): 4}, {("fog", 1): 3}),
        ({("fog", 1): 0}, {("fog", 1): 0}),
    ],
)
def test_summarize_rejects_inconsistent_counts(correct, total) -> None:
    with pytest.raises(ValueError):
        summarize(correct, total)


def test_json_and_table(tmp_path: Path) -> None:
    report = summarize(*_counts(CORRUPTIONS), clean=0.95, protocol="paper", skip_first=100)
    path = report.to_json(tmp_path / "out" / "report.json")
    data = json.loads(path.read_text())
    assert data["mean_15"] == pytest.approx(0.3) and data["clean"] == 0.95
    assert data["accuracy"]["fog"]["5"] == 0.5 and data["total"]["fog"]["1"] == 100
    assert data["images"] == 19 * 5 * 100 and data["skip_first"] == 100
    assert [p.name for p in path.parent.iterdir()] == ["report.json"]  # no temp file left
    table = report.format_table()
    assert "mean over the 15 standard corruptions (headline): 30.00%" in table
    assert "clean accuracy: 95.00%" in table
    rows = [line.split()[0] for line in table.splitlines()[2:21]]
    assert rows == list(CORRUPTIONS)


def test_evaluate_in_memory_counts_what_predict_gets_right() -> None:
    torch.manual_seed(0)
    model = MultiHeadNet(ModelConfig(depth=10, widen_factor=1, base_width=4), TasksConfig(), 10)
    rng = np.random.default_rng(0)
    blocks = {
        (c, s): (rng.integers(0, 256, (7, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, 7))
        for c in ("fog", "snow")
        for s in SEVERITIES
    }
    report = evaluate_in_memory(model.eval(), blocks, "cpu", batch_size=3)
    for (c, s), (images, labels) in blocks.items():
        expected = (predict(model, images, torch.device("cpu")).numpy() == labels).sum()
        assert report.correct[c][s] == expected and report.total[c][s] == 7
