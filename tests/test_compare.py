"""``auxtune compare`` through the CLI: bad input fails fast; a tiny comparison runs end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from auxtune.platform.cli import main

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
STRATEGIES = ("fixed", "meta", "optuna", "pbt")
SEEDS = 2
EPOCHS = 2
BUDGET = 4  # trial-epochs per searched strategy: 2 trials of 2 epochs

TINY = """
name: tiny
data: {{dataset: synthetic, num_train: 96, num_val: 48, num_test: 30, holdout: 48,
        corruptions_dir: {corruptions}}}
model: {{depth: 10, widen_factor: 1, base_width: 4}}
optim: {{batch_size: 32, epochs: {epochs}}}
tasks: {{names: [rotation, rgb_permutation], decoder_width: 8}}
weighting: {{meta: {{warmup_epochs: 0, meta_batch_size: 8}}}}
runtime: {{device: cpu, threads: 1}}
search: {{num_trials: 2, cpus_per_trial: 1, grid: [0.0, 1.0]}}
tracking: {{workdir: {workdir}}}
compare: {{strategies: [{strategies}], budget: {budget}, seeds: {seeds}}}
"""


def write_config(tmp_path: Path, corruptions: Path | None = None) -> Path:
    path = tmp_path / "tiny.yaml"
    text = TINY.format(
        corruptions=corruptions or "null",
        workdir=tmp_path / "work",
        strategies=", ".join(STRATEGIES),
        seeds=SEEDS,
        epochs=EPOCHS,
        budget=BUDGET,
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
        (["--strategies", "fixed,grid"], "unknown strategy 'grid'; valid: fixed"),
        (["--budget", "1"], "compare.budget = 1 trial-epochs is less than one trial"),
        (["--budget", "0"], "--budget 0: give at least one trial's epochs"),
        (["--seeds", "0"], "--seeds 0: give at least 1"),
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
    """baseline, a grid, the meta-gradient, Optuna under ASHA and PBT: equal budgets spent,
    the same seeds for every row, paired intervals against the baseline, one MLflow experiment
    holding comparison -> row -> trials and retrains."""
    from mlflow import MlflowClient

    corruptions = quick_corrupted_set(write_config(tmp_path), tmp_path / "c")
    config = write_config(tmp_path, corruptions)
    out = tmp_path / "report"
    assert main(["compare", "--config", str(config), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    rows = ("baseline", *STRATEGIES)
    for strategy in rows:
        assert any(line.startswith(strategy) for line in captured.out.splitlines())
    assert "auxtune ui --port 5000" in captured.out and "http://127.0.0.1:5000" in captured.out
    assert "Ray's log:" in captured.out
    assert "To visualize your results with TensorBoard" not in captured.out + captured.err

    results = json.loads((out / "results.json").read_text())
    assert [s["strategy"] for s in results["strategies"]] == list(rows)
    for entry in results["strategies"]:
        # equal budgets: every search spends its budget, ASHA's freed epochs included; a trial
        # started with budget left may finish past it (at most one trial per concurrent trial)
        if entry["searched"]:
            assert entry["budget_trial_epochs"] == BUDGET
            assert BUDGET <= entry["trial_epochs"] <= BUDGET + EPOCHS * 2 - 1, entry["strategy"]
        else:
            assert (entry["trials"], entry["trial_epochs"], entry["budget_trial_epochs"]) == (
                0,
                0,
                0,
            )
        # paired seeds: every row retrained with the same seeds
        assert entry["retrain"]["seeds"] == list(range(SEEDS))
        assert entry["retrain"]["status"] == ["TERMINATED"] * SEEDS, entry["strategy"]
        for metric in ("clean_test_accuracy", "c15_accuracy", "c19_accuracy"):
            assert len(entry["retrain"][metric]) == SEEDS
            assert all(0.0 <= v <= 1.0 for v in entry["retrain"][metric])
            if entry["strategy"] != "baseline":
                versus = entry["vs_baseline"][metric]
                assert versus["verdict"] in ("better", "worse", "no detectable difference")
                assert len(versus["ci95"]) == 2
    by_name = {s["strategy"]: s for s in results["strategies"]}
    assert by_name["baseline"]["retrained"] == {
        "overrides": {"tasks.names": [], "weighting.lambdas": {}, "weighting.name": "fixed"}
    }
    assert by_name["meta"]["retrained"]["overrides"] == {"weighting.name": "meta"}
    schedule = by_name["pbt"]["retrained"]["overrides"]["weighting.schedule.per_epoch"]
    assert len(schedule) == EPOCHS
    report = (out / "report.md").read_text()
    assert f"auxtune compare --config {config} --out {out}" in report  # how to reproduce it
    for strategy in rows:
        row = next(line for line in report.splitlines() if line.startswith(f"| {strategy} |"))
        assert "±" in row
    for name in ("corruption_vs_compute.png", "per_corruption.png", "per_severity.png"):
        data = (out / name).read_bytes()
        assert data[:8] == PNG_SIGNATURE and len(data) > 5_000
        with Image.open(out / name) as image:
            image.verify()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".report")]  # no staging

    # MLflow: one experiment; comparison run -> one run per row -> its trials and its retrains
    client = MlflowClient(results["tracking_uri"])
    names = {e.name for e in client.search_experiments()} - {"Default"}
    assert names == {results["experiment_name"]}
    experiment = client.get_experiment_by_name(results["experiment_name"])
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    compare_run = client.get_run(results["mlflow_run_id"])
    assert compare_run.info.status == "FINISHED"
    assert compare_run.data.tags["auxtune.kind"] == "compare"
    assert "meta/c15_accuracy" in compare_run.data.metrics
    artifacts = {f.path for f in client.list_artifacts(compare_run.info.run_id)}
    assert {"report.md", "results.json", "per_severity.png"} <= artifacts

    def children(run_id: str) -> list:
        return client.search_runs(
            [experiment.experiment_id], f"tags.mlflow.parentRunId = '{run_id}'"
        )

    row_runs = {r.data.tags["auxtune.strategy"]: r for r in children(compare_run.info.run_id)}
    assert sorted(row_runs) == sorted(rows)
    for strategy, run in row_runs.items():
        assert run.info.status == "FINISHED"
        assert "c15_accuracy" in run.data.metrics  # the retrains' mean, sortable one level up
        below = children(run.info.run_id)
        retrains = sorted(
            r.info.run_name for r in below if r.data.tags["auxtune.kind"] == "retrain"
        )
        assert retrains == [f"retrain-{strategy}-seed{seed}" for seed in range(SEEDS)]
        trials = [r for r in below if r.data.tags["auxtune.kind"] == "trial"]
        assert len(trials) == by_name[strategy]["trials"]
        # each seed is its own run: a different init and data order, so a different first loss
        first = {
            client.get_metric_history(r.info.run_id, "loss/main")[0].value
            for r in below
            if r.data.tags["auxtune.kind"] == "retrain"
        }
        assert len(first) == SEEDS, strategy
        if strategy == "pbt":  # the retrain replays the best lineage's lambdas epoch by epoch
            for run in (r for r in below if r.data.tags["auxtune.kind"] == "retrain"):
                for task in ("rotation", "rgb_permutation"):
                    replayed = client.get_metric_history(run.info.run_id, f"lambda/{task}")
                    by_step = [m.value for m in sorted(replayed, key=lambda m: m.step)]
                    assert by_step == pytest.approx([epoch[task] for epoch in schedule])
