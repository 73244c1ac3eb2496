"""Ray Data streaming evaluation equals the in-memory loop; ``auxtune evaluate`` end to end.

One local Ray session serves the module (started by the fixture, shut down after the last test).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from auxtune.data.corruptions import CORRUPTIONS
from auxtune.data.evaluation import evaluate_in_memory, load_for_inference
from auxtune.data.parquet import write_parquet_from_arrays
from auxtune.platform.cli import main
from auxtune.robust.checkpoint import save_checkpoint
from auxtune.robust.config import ModelConfig, OptimConfig, RuntimeConfig, TrainConfig
from auxtune.robust.trainer import Trainer

pytestmark = pytest.mark.slow

N = 8  # images per severity block
SEVERITIES = (1, 2, 3, 4, 5)


@pytest.fixture(scope="module")
def ray_session():
    ray = pytest.importorskip("ray")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RAY_AUTH_MODE", "disabled")  # no token file written in a sandbox
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
        try:
            yield
        finally:
            ray.shutdown()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    rng = np.random.default_rng(0)
    cfg = TrainConfig(
        model=ModelConfig(depth=10, widen_factor=1, base_width=4),
        optim=OptimConfig(batch_size=16, epochs=1),
        runtime=RuntimeConfig(device="cpu"),
    )
    images = rng.integers(0, 256, (32, 32, 32, 3), dtype=np.uint8)
    trainer = Trainer(cfg, images, rng.integers(0, 10, 32), num_classes=10)
    trainer.train_epoch()
    return save_checkpoint(trainer, tmp_path_factory.mktemp("ckpt") / "model.pt")


@pytest.fixture(scope="module")
def corrupted(tmp_path_factory) -> tuple[Path, dict]:
    """All 19 corruptions as Parquet, and the same arrays by (corruption, severity)."""
    rng = np.random.default_rng(1)
    root = tmp_path_factory.mktemp("parquet")
    labels = rng.integers(0, 10, N)
    blocks = {}
    for name in CORRUPTIONS:
        images = rng.integers(0, 256, (5 * N, 32, 32, 3), dtype=np.uint8)
        severities = np.repeat(SEVERITIES, N)
        write_parquet_from_arrays(
            root, name, images, np.tile(labels, 5), severities, rows_per_file=3 * N
        )
        for s in SEVERITIES:
            blocks[name, s] = (images[(s - 1) * N : s * N], labels)
    return root, blocks


def _in_memory(checkpoint: Path, blocks: dict, skip: int = 0, keep: int = N):
    model, autocast, fmt = load_for_inference(checkpoint, "cpu")
    sliced = {k: (x[skip : skip + keep], y[skip : skip + keep]) for k, (x, y) in blocks.items()}
    return evaluate_in_memory(model, sliced, "cpu", 64, autocast=autocast, fmt=fmt)


@pytest.mark.timeout(600)
def test_stream_equals_in_memory(ray_session, checkpoint, corrupted) -> None:
    from auxtune.data.streaming import evaluate_stream

    root, blocks = corrupted
    # two actors on two CPUs: they must leave Ray Data's listing and read tasks a CPU or it hangs
    streamed = evaluate_stream(
        checkpoint, root, batch_size=16, num_actors=2, skip_first=2, first_k=3
    )
    expected = _in_memory(checkpoint, blocks, skip=2, keep=3)
    assert streamed.total == expected.total and streamed.correct == expected.correct
    assert (streamed.skip_first, streamed.first_k) == (2, 3)


def test_cli_evaluate_writes_json(ray_session, checkpoint, corrupted, tmp_path, capsys) -> None:
    root, blocks = corrupted
    out = tmp_path / "report.json"
    code = main(
        [
            "evaluate",
            str(checkpoint),
            "--corruptions",
            str(root),
            "--json",
            str(out),
            "--batch-size",
            "50",
            "--no-mlflow",  # tests/test_command_runs.py checks the run
        ]
    )
    assert code == 0
    report = json.loads(out.read_text())
    expected = _in_memory(checkpoint, blocks)
    assert report["mean_15"] == pytest.approx(expected.mean_15)
    assert report["mean_19"] == pytest.approx(expected.mean_19)
    assert report["images"] == 19 * 5 * N
    printed = capsys.readouterr().out
    assert "mean over the 15 standard corruptions (headline)" in printed
    assert json.loads(printed.splitlines()[-1])["mean_19"] == pytest.approx(expected.mean_19)


@pytest.mark.parametrize(
    ("which", "message"),
    [
        ("missing-checkpoint", "does not exist"),
        ("not-a-checkpoint", "not an auxtune checkpoint"),
        ("npy-directory", "auxtune data convert"),
        ("missing-directory", "does not exist"),
    ],
)
def test_cli_bad_input_exits_2(checkpoint, corrupted, tmp_path, capsys, which, message) -> None:
    ckpt, root = checkpoint, corrupted[0]
    if which == "missing-checkpoint":
        ckpt = tmp_path / "nope.pt"
    elif which == "not-a-checkpoint":
        ckpt = tmp_path / "junk.pt"
        ckpt.write_bytes(b"not torch")
    elif which == "npy-directory":
        root = tmp_path / "npy"
        root.mkdir()
        np.save(root / "fog.npy", np.zeros((5, 32, 32, 3), np.uint8))
    else:
        root = tmp_path / "nowhere"
    assert main(["evaluate", str(ckpt), "--corruptions", str(root), "--no-mlflow"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_the_default_cpu_pool_on_one_machine_runs_in_this_process(ray_session, checkpoint):
    from auxtune.data.streaming import _actor_options, _one_cpu_actor_here

    default = _actor_options(str(checkpoint), None, None)
    assert _one_cpu_actor_here(default, None)
    assert not _one_cpu_actor_here(_actor_options(str(checkpoint), 2, None), 2)  # asked for
    assert not _one_cpu_actor_here({**default, "num_gpus": 1}, None)
