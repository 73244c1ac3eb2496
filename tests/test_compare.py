"""``auxtune compare`` through the CLI: bad input fails fast; a tiny comparison runs end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from auxtune.platform.cli import main

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
STRATEGIES = ("fixed", "meta", "pbt")
SEEDS = 2

TINY = """
name: tiny
data: {{dataset: synthetic, num_train: 96, num_val: 48, num_test: 30, holdout: 48,
        corruptions_dir: {corruptions}}}
model: {{depth: 10, widen_factor: 1, base_width: 4}}
optim: {{batch_size: 32, epochs: 2}}
tasks: {{names: [rotation, rgb_permutation], decoder_width: 8}}
weighting: {{warmup_epochs: 0, meta_batch_size: 8}}
runtime: {{device: cpu, threads: 1}}
search: {{num_trials: 2, cpus_per_trial: 1, grid: [0.0, 1.0]}}
tracking: {{workdir: {workdir}}}
compare: {{strategies: [{strategies}], budget: 4, seeds: {seeds}}}
"""


def write_config(tmp_path: Path, corruptions: Path | None = None) -> Path:
    path = tmp_path / "tiny.yaml"
    text = TINY.format(
        corruptions=corruptions or "null",
        workdir=tmp_path / "work",
        strategies=", ".join(STRATEGIES),
        seeds=SEEDS,
    )
    path.write_text(text)
    return path


def quick_corrupted_set(config: Path, root: Path) -> Path:
    """All 19 CIFAR-C files for the tiny test split, made by cheap noise (not the real
    corruptions, which :mod:`tests.test_make_c` covers): the comparison only needs the layout."""
    from auxtune.data.cifar_c import write_corruption, write_labels
    from auxtune.data.corruptions import CORRUPTIONS
    from auxtune.data.datasets import load_dataset
    from auxtune.platform.config import load_experiment

    test = load_dataset(load_experiment(config).data).test
    rng = np.random.default_rng(0)
    write_labels(root, test.labels)
    for name in CORRUPTIONS:
        noise = [rng.integers(-9 * s, 9 * s + 1, test.images.shape) for s in range(1, 6)]
        blocks = [np.clip(test.images + n, 0, 255).astype(np.uint8) for n in noise]
        write_corruption(root, name, np.concatenate(blocks))
    return root


# ------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--strategies", "fixed,grid"], "unknown strategy 'grid'; valid strategies: fixed"),
        (["--budget", "1"], "compare.budget = 1 trial-epochs is less than one trial"),
        (["--budget", "0"], "--budget 0: give at least one trial's epochs"),
        (["--seeds", "0"], "compare.seeds = 0 must be >= 1"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], message: str
) -> None:
    config = write_config(tmp_path)
    assert main(["compare", "--config", str(config), *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    assert err.startswith("auxtune compare: error: ") and message in err
    assert not (tmp_path / "work").exists()  # nothing started


def test_command_text_rebuilds_the_command() -> None:
    from auxtune.platform.cli import build_parser
    from auxtune.platform.commands.compare import command_text

    argv = ["compare", "--config", "my c.yaml", "--budget", "6", "optim.lr=0.05"]
    args = build_parser().parse_args(argv)
    assert command_text(args) == "auxtune compare --config 'my c.yaml' --budget 6 optim.lr=0.05"


# ------------------------------------------------------------------------------ end to end
@pytest.mark.slow
@pytest.mark.integration
def test_compare_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mlflow import MlflowClient

    corruptions = quick_corrupted_set(write_config(tmp_path), tmp_path / "c")
    config = write_config(tmp_path, corruptions)
    out = tmp_path / "report"
    assert main(["compare", "--config", str(config), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    for strategy in STRATEGIES:
        assert any(line.startswith(strategy) for line in printed.splitlines())
    assert "auxtune ui --port 5000" in printed and "http://127.0.0.1:5000" in printed

    # the report: every strategy with numbers, valid non-empty figures
    results = json.loads((out / "results.json").read_text())
    assert [s["strategy"] for s in results["strategies"]] == list(STRATEGIES)
    for entry in results["strategies"]:
        assert entry["search"]["trial_epochs"] <= 4
        assert entry["search"]["wall_s"] > 0
        assert len(entry["retrains"]) == SEEDS
        # each seed is its own run: a different init and data order, so a different first loss
        first_losses = {r["history"][0]["loss/main"] for r in entry["retrains"]}
        assert len(first_losses) == SEEDS, entry["retrains"]
        assert [r["seed"] for r in entry["retrains"]] == list(range(SEEDS))
        assert 0.0 <= entry["summary"]["c15"]["mean"] <= 1.0
        assert 0.0 <= entry["summary"]["c19"]["mean"] <= 1.0
        assert len(entry["summary"]["per_corruption"]) == 19
    assert results["strategies"][1]["retrained"]["weighting.name"] == "meta"
    report = (out / "report.md").read_text()
    assert f"auxtune compare --config {config} --out {out}" in report  # how to reproduce it
    for strategy in STRATEGIES:
        row = next(line for line in report.splitlines() if line.startswith(f"| {strategy} |"))
        assert "n/a" not in row and "±" in row
    for name in ("corruption_vs_compute.png", "per_corruption.png", "lambda_trajectories.png"):
        data = (out / name).read_bytes()
        assert data[:8] == PNG_SIGNATURE and len(data) > 5_000
        with Image.open(out / name) as image:
            image.verify()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".report")]  # no staging

    # MLflow: each search's parent run and the retrains nested under the comparison run
    client = MlflowClient(results["tracking_uri"])
    compare_run = client.get_run(results["mlflow_run_id"])
    assert compare_run.info.status == "FINISHED"
    assert compare_run.data.tags["auxtune.kind"] == "compare"
    assert "meta/c15" in compare_run.data.metrics
    artifacts = {f.path for f in client.list_artifacts(compare_run.info.run_id)}
    assert {"report.md", "results.json", "corruption_vs_compute.png"} <= artifacts
    for entry in results["strategies"]:
        search_run = client.get_run(entry["search"]["parent_run_id"])
        assert search_run.data.tags["mlflow.parentRunId"] == compare_run.info.run_id
        assert search_run.data.tags["auxtune.strategy"] == entry["strategy"]
    experiment = client.get_experiment_by_name(results["experiment_name"])
    nested = client.search_runs(
        [experiment.experiment_id],
        f"tags.mlflow.parentRunId = '{compare_run.info.run_id}'",
    )
    retrain_runs = [r for r in nested if r.data.tags.get("auxtune.kind") == "retrain"]
    assert len(retrain_runs) == 1
    per_seed = client.search_runs(
        [experiment.experiment_id],
        f"tags.mlflow.parentRunId = '{retrain_runs[0].info.run_id}'",
    )
    assert sorted(r.info.run_name for r in per_seed) == sorted(
        f"retrain-{s}-seed{seed}" for s in STRATEGIES for seed in range(SEEDS)
    )
