"""``auxtune train weighting.name=<name>`` end to end for every registered weighting (tiny data)."""

from __future__ import annotations

from pathlib import Path

import pytest

from auxtune.platform.cli import main
from auxtune.robust.checkpoint import config_of, load_checkpoint
from auxtune.robust.weighting import WEIGHTINGS

pytestmark = pytest.mark.slow


def tiny(tmp_path: Path) -> list[str]:
    return [
        "--no-progress",
        f"tracking.workdir={tmp_path}",
        f"data.data_dir={tmp_path / 'cache'}",
        "data.num_train=48",
        "data.num_val=8",
        "data.num_test=8",
        "data.holdout=16",
        "data.augment=false",
        "model.depth=10",
        "model.widen_factor=1",
        "model.base_width=4",
        "tasks.names=[rotation,reconstruction]",
        "tasks.decoder_width=8",
        "optim.batch_size=16",
        "optim.epochs=2",
        "runtime.device=cpu",
        "runtime.threads=1",
    ]


@pytest.mark.parametrize("name", list(WEIGHTINGS))
def test_train_with_every_weighting(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    options = {
        "meta": ["weighting.meta.meta_batch_size=8", "weighting.meta.warmup_epochs=1"],
        "auto_lambda": ["weighting.auto_lambda.meta_batch_size=8"],
        "schedule": ["weighting.schedule.per_epoch=[{rotation: 0.1}, {rotation: 0.9}]"],
    }
    out = tmp_path / "model.pt"
    code = main(
        [
            "train",
            *tiny(tmp_path),
            f"weighting.name={name}",
            "--out",
            str(out),
            *options.get(name, []),
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0, printed
    epochs = [line for line in printed.splitlines() if line.startswith("epoch ")]
    assert len(epochs) == 2 and all("lambda/rotation=" in line for line in epochs)
    assert f"weighting {name}" in printed
    cfg = config_of(load_checkpoint(out))  # the checkpoint's config parses back
    assert cfg.weighting.name == name
    if name == "schedule":
        assert "lambda/rotation=0.1 " in epochs[0] and "lambda/rotation=0.9 " in epochs[1]


def test_flat_keys_of_the_old_schema_still_train(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["weighting.name=meta", "weighting.meta_batch_size=8", "weighting.warmup_epochs=0"]
    with pytest.warns(FutureWarning, match=r"weighting\.meta_batch_size, weighting\.warmup_epochs"):
        code = main(["train", *tiny(tmp_path), *args])
    assert code == 0
    assert "hypergrad/rotation=" in capsys.readouterr().out  # no warm-up: meta updates ran


def test_a_bad_weighting_option_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["train", *tiny(tmp_path), "weighting.name=gradnorm", "weighting.gradnorm.alpha=-1"]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "weighting.gradnorm.alpha = -1.0 must be >= 0" in err
