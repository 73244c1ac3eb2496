"""A search trial with label noise, GLC and OOD detection, run without Ray (``tune`` faked): it
reports every metric ``reported_metrics`` lists, GLC's stage 1 once, resumes exactly from its
checkpoint without re-running stage 1, and refuses settings its data was not prepared for."""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from auxtune.config import ConfigError, apply_overrides, from_dict, to_dict
from auxtune.robust.config import TrainConfig
from auxtune.trainables import function
from auxtune.trainables.data import absolute_data_config, prepare_trial_data
from auxtune.trainables.metrics import epoch_metrics, reported_metrics

pytestmark = pytest.mark.slow

OVERRIDES = [
    "model.depth=10",
    "model.widen_factor=1",
    "model.base_width=4",
    "tasks.names=[rotation]",
    "optim.epochs=2",
    "optim.batch_size=16",
    "data.num_train=96",
    "data.num_val=40",
    "data.num_test=30",
    "data.holdout=16",
    "data.c_images_per_block=10",
    "runtime.device=cpu",
    "runtime.threads=1",
    "label_noise.rate=0.3",
    "label_noise.trusted_fraction=0.2",
    "label_noise.correction=glc",
    "ood.test_classes=[9]",
    "ood.val_classes=[8]",
    "ood.sets=[heldout,uniform]",
    "ood.detector=rotation",
]


class FakeCheckpoint:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @contextlib.contextmanager
    def as_directory(self) -> Any:
        yield str(self.directory)


def run_trial(
    monkeypatch: pytest.MonkeyPatch,
    cfg: TrainConfig,
    data: Any,
    keep: Path,
    *,
    resume_from: Path | None = None,
    config: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Run ``auxtune_trial`` with a fake ``tune``; each report's checkpoint is copied to keep/<n>."""
    reports: list[dict[str, Any]] = []

    def report(metrics: dict[str, Any], checkpoint: str) -> None:
        shutil.copytree(checkpoint, keep / str(len(reports)))
        reports.append(metrics)

    fake = SimpleNamespace(
        get_context=lambda: SimpleNamespace(get_trial_id=lambda: "trial-1"),
        get_checkpoint=lambda: None if resume_from is None else FakeCheckpoint(resume_from),
        report=report,
        Checkpoint=SimpleNamespace(from_directory=str),
    )
    monkeypatch.setattr(function, "tune", fake)
    monkeypatch.setattr(function, "_node_id", lambda: "")  # it would start Ray to ask
    setup = {"train": to_dict(cfg), "threads": 1, "diverged_dir": None}
    function.auxtune_trial(config or {}, setup=setup, data=data)
    return reports


def test_a_noisy_ood_trial_reports_everything_listed_and_resumes_exactly(monkeypatch, tmp_path):
    monkeypatch.setenv("AUXTUNE_CACHE", str(tmp_path / "cache"))
    cfg = from_dict(TrainConfig, apply_overrides({}, OVERRIDES))
    cfg = from_dict(TrainConfig, {**to_dict(cfg), "data": to_dict(absolute_data_config(cfg.data))})
    data = prepare_trial_data(cfg)
    (tmp_path / "full").mkdir()
    reports = run_trial(monkeypatch, cfg, data, tmp_path / "full")

    assert len(reports) == 2
    for report in reports:
        assert set(epoch_metrics(cfg)) <= set(report)
    assert set(reported_metrics(cfg)) <= set(reports[-1])
    assert {"glc/stage1_s", "glc/matrix_error"} <= set(reports[0])  # stage 1: before epoch 1
    assert "glc/stage1_s" not in reports[1]
    assert 0 <= reports[0]["glc/matrix_error"] < 0.2
    assert 0.0 <= reports[-1]["ood/heldout/rotation/auroc"] <= 1.0

    (tmp_path / "resumed").mkdir()
    resumed = run_trial(
        monkeypatch, cfg, data, tmp_path / "resumed", resume_from=tmp_path / "full" / "0"
    )
    assert len(resumed) == 1 and "glc/stage1_s" not in resumed[0]  # C_hat came from the checkpoint
    for key in ("clean_test_accuracy", "ood_auroc", "val_ood_auroc", "loss/main"):
        assert resumed[0][key] == reports[1][key], key

    (tmp_path / "other").mkdir()
    with pytest.raises(ConfigError, match="label_noise"):
        run_trial(monkeypatch, cfg, data, tmp_path / "other", config={"label_noise.rate": 0.1})
