"""``auxtune compare`` ranked by a label-noise or OOD metric, and the presets' variants as rows.

Fast: the config checks, the verdict's direction for FPR95, the report's words; slow: a tiny
comparison through the CLI ranked by ``ood_auroc`` with a GLC and a rotation-detector variant.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from auxtune.config import ConfigError
from auxtune.platform.cli import main
from auxtune.platform.comparison import Comparison, Retrain, Row, oriented
from auxtune.platform.config import load_experiment
from auxtune.platform.report import render_markdown, results_dict
from auxtune.platform.report_tables import format_table, metric_label
from auxtune.platform.stats import paired_difference

ROOT = Path(__file__).resolve().parents[1]
OOD = ["ood.test_classes=[8,9]", "ood.sets=[heldout,uniform]"]


# ----------------------------------------------------------------------------- the presets
def test_label_noise_preset_compares_its_variants_with_paired_seeds() -> None:
    exp = load_experiment(ROOT / "configs" / "label-noise.yaml")
    assert exp.compare.rows() == ("baseline", "rotation", "glc", "glc-rotation")
    assert exp.compare.metric == "clean_test_accuracy" and exp.compare.seeds == 3
    glc_rotation = exp.row_config("glc-rotation")
    assert glc_rotation.label_noise.correction == "glc"
    assert glc_rotation.tasks.names == ("rotation",)
    assert glc_rotation.label_noise.rate == exp.label_noise.rate == 0.6  # the same noisy labels
    assert exp.row_config("baseline").label_noise.correction == "none"


def test_ood_preset_scores_the_rotation_row_by_its_rotation_head() -> None:
    exp = load_experiment(ROOT / "configs" / "ood.yaml")
    assert exp.compare.rows() == ("baseline", "rotation")
    assert exp.compare.metric == "ood_auroc"
    rotation = exp.row_config("rotation")
    assert (rotation.ood.detector, rotation.tasks.names) == ("rotation", ("rotation",))
    assert exp.row_config("baseline").ood.detector == "msp"
    # a column only the rotation row reports is valid (n/a for the baseline)
    assert "ood/heldout/rotation/auroc" in exp.compare.metrics


# ------------------------------------------------------------------------- parse-time checks
def test_lower_is_better_metric_cannot_rank_but_is_a_column() -> None:
    with pytest.raises(ConfigError, match=r"compare.metric = 'ood_fpr95' is lower-is-better"):
        load_experiment(None, [*OOD, "compare.metric=ood_fpr95"])
    exp = load_experiment(None, [*OOD, "compare.metric=ood_auroc", "compare.metrics=[ood_fpr95]"])
    assert exp.compare.metrics == ("ood_fpr95",)


def test_ood_metrics_need_the_ood_section() -> None:
    with pytest.raises(ConfigError, match=r"compare.metric: 'ood_auroc' is not a metric"):
        load_experiment(None, ["compare.metric=ood_auroc"])


def test_a_variant_may_not_change_the_shared_data() -> None:
    base = ["label_noise.rate=0.4", "label_noise.trusted_fraction=0.1", *OOD]
    for change, named in (
        ("{label_noise.rate: 0.2}", "label_noise.rate 0.4 -> 0.2"),
        ("{label_noise.seed: 3}", "label_noise.seed 0 -> 3"),
        ("{ood.test_classes: [9]}", "held_out [8, 9] -> [9]"),
        ("{ood.sets: [heldout]}", "ood_sets ['heldout', 'uniform'] -> ['heldout']"),
    ):
        with pytest.raises(ConfigError, match=r"compare.variants.v changes the data") as err:
            load_experiment(None, [*base, f"compare.variants={{v: {change}}}"])
        assert named in str(err.value)
    # what the prepared data does not depend on: the correction, the tasks, the detector
    exp = load_experiment(
        None,
        [
            *base,
            "compare.variants={v: {label_noise.correction: glc, tasks.names: [rotation], "
            "ood.detector: rotation}}",
        ],
    )
    assert exp.row_config("v").ood.detector == "rotation"


def test_a_variant_bad_value_is_named() -> None:
    with pytest.raises(ConfigError, match=r"compare.variants.g: label_noise.trusted_fraction = 0"):
        load_experiment(
            None, ["label_noise.rate=0.4", "compare.variants={g: {label_noise.correction: glc}}"]
        )


# ------------------------------------------------------------------------ direction, report
def test_fpr95_verdict_says_better_when_it_falls() -> None:
    lower = paired_difference({0: 0.30, 1: 0.32, 2: 0.31}, {0: 0.40, 1: 0.41, 2: 0.42})
    assert lower is not None and lower.verdict == "worse"  # the raw difference is negative
    assert oriented(lower, "ood_fpr95").verdict == "better"
    assert oriented(lower, "ood/heldout/msp/fpr95").verdict == "better"
    assert oriented(lower, "ood_auroc") is lower
    unclear = paired_difference({0: 0.30, 1: 0.45}, {0: 0.40, 1: 0.41})
    assert oriented(unclear, "ood_fpr95").verdict == "no detectable difference"
    assert metric_label("ood_fpr95") == "ood fpr95 % (lower is better)"
    assert metric_label("ood_auroc") == "ood auroc %"


#: (ood_auroc, ood_fpr95) of each row at seeds 0, 1, 2
OOD_VALUES = {
    "baseline": ((0.70, 0.60), (0.72, 0.58), (0.71, 0.62)),
    "rotation": ((0.80, 0.40), (0.83, 0.41), (0.81, 0.43)),  # AUROC up, FPR95 down: better twice
}


def ood_comparison() -> Comparison:
    exp = load_experiment(
        None,
        [
            *OOD,
            "label_noise.rate=0.3",
            "compare.metric=ood_auroc",
            "compare.variants={rotation: {}}",
        ],
    )
    rows = tuple(
        Row(
            name,
            None,
            {"overrides": {}},
            "fixed configuration",
            tuple(
                Retrain(name, seed, {"ood_auroc": a, "ood_fpr95": f}, [], 1, 1.0, "TERMINATED")
                for seed, (a, f) in enumerate(values)
            ),
            0,
        )
        for name, values in OOD_VALUES.items()
    )
    return Comparison(
        name="ood",
        created="2026-12-01T12:00:00Z",
        budget_trial_epochs=0,
        seeds=(0, 1, 2),
        rows=rows,
        reference="baseline",
        metric="ood_auroc",
        metrics=("ood_auroc", "ood_fpr95"),
        config=exp.to_dict(),
        command="",
        versions={},
        tracking_uri="sqlite:////tmp/mlflow.db",
        experiment_name="ood-compare",
        mlflow_run_id=None,
        wall_s=1.0,
        retrain_wall_s=1.0,
    )


def test_report_ranks_by_ood_auroc_and_orients_fpr95() -> None:
    c = ood_comparison()
    assert [r.strategy for r in c.ranking()] == ["rotation", "baseline"]
    table = format_table(c)
    assert "ood fpr95 % (lower is better)" in table
    assert "Highest mean ood_auroc: rotation" in table
    assert "Against baseline on ood_auroc -- better: rotation" in table
    results = results_dict(c)
    versus = results["strategies"][1]["vs_baseline"]
    assert versus["ood_fpr95"]["verdict"] == "better" and versus["ood_fpr95"]["mean_diff"] < 0
    assert versus["ood_auroc"]["verdict"] == "better"
    assert results["higher_is_better"] == {"ood_auroc": True, "ood_fpr95": False}
    text = render_markdown(c, [])
    assert "Rows are ranked by `ood_auroc`" in text
    assert "No row was searched" in text and "Searched strategies" not in text
    assert (
        "uniform noise at rate 0.3" in text and "clean_test_accuracy is accuracy on clean" in text
    )
    assert "heldout, uniform (heldout: classes [8, 9])" in text


# ---------------------------------------------------------------------------- end to end
TINY = """
name: tinyood
data: {{dataset: synthetic, num_train: 120, num_val: 60, num_test: 60, holdout: 40,
        c_images_per_block: 6, corruptions_dir: {corruptions}}}
model: {{depth: 10, widen_factor: 1, base_width: 4}}
optim: {{batch_size: 20, epochs: 1}}
tasks: {{names: [rotation], decoder_width: 4}}
label_noise: {{rate: 0.3, trusted_fraction: 0.2}}
ood: {{test_classes: [8, 9], val_classes: [7], sets: [heldout, uniform]}}
runtime: {{device: cpu, threads: 1}}
search: {{num_trials: 2, cpus_per_trial: 1, grid: [0.0, 1.0], metric: val_ood_auroc}}
tracking: {{workdir: {workdir}}}
compare:
  seeds: 2
  variants:
    rotation: {{ood.detector: rotation}}
    glc: {{label_noise.correction: glc}}
  metric: ood_auroc
  metrics: [ood_auroc, ood_fpr95, ood/heldout/rotation/auroc, clean_test_accuracy]
"""


@pytest.mark.slow
def test_compare_ranks_by_ood_auroc_end_to_end(tmp_path: Path, capsys) -> None:
    """baseline, a searched grid, a rotation-detector and a GLC variant, 2 paired seeds, 1 epoch:
    every row reports the OOD metrics, the report and results.json rank by ood_auroc."""
    from test_compare import quick_corrupted_set

    config = tmp_path / "tiny.yaml"
    config.write_text(TINY.format(corruptions="null", workdir=tmp_path / "work"))
    corruptions = quick_corrupted_set(config, tmp_path / "c")
    config.write_text(TINY.format(corruptions=corruptions, workdir=tmp_path / "work"))
    out = tmp_path / "report"
    argv = ["compare", "--config", str(config), "--strategies", "baseline,fixed,rotation,glc"]
    assert main([*argv, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "ood fpr95 % (lower is better)" in printed and "Highest mean ood_auroc" in printed

    results = json.loads((out / "results.json").read_text())
    assert results["metric"] == "ood_auroc"
    rows = {s["strategy"]: s for s in results["strategies"]}
    assert list(rows) == ["baseline", "fixed", "rotation", "glc"]
    for name, row in rows.items():
        assert row["retrain"]["seeds"] == [0, 1] and row["retrain"]["status"] == ["TERMINATED"] * 2
        assert all(0.0 <= v <= 1.0 for v in row["retrain"]["ood_auroc"]), name
        assert len(row["retrain"]["ood/heldout/msp/auroc"]) == 2
        if name != "baseline":
            assert set(row["vs_baseline"]) >= {"ood_auroc", "ood_fpr95"}
    # each row scored by its own detector: the rotation row's headline is its rotation head's
    rotation = rows["rotation"]["retrain"]
    assert rotation["ood_auroc"] != rotation["ood/heldout/msp/auroc"]
    assert rows["baseline"]["retrain"]["ood/heldout/rotation/auroc"] == [None, None]  # no head
    assert rows["glc"]["retrained"]["overrides"] == {"label_noise.correction": "glc"}
    assert all(0 <= e <= 1 for e in rows["glc"]["retrain"]["glc/matrix_error"])
    ranked = sorted(rows, key=lambda n: -rows[n]["summary"]["ood_auroc"]["mean"])
    assert results["leader"]["strategy"] == ranked[0]
    report = (out / "report.md").read_text()
    assert "Rows are ranked by `ood_auroc`" in report and "| ood auroc % |" in report


def test_an_experiment_scored_by_a_heads_detector_keeps_a_baseline_scored_by_msp() -> None:
    """``auxtune train`` with ``ood.detector=rotation`` builds every row's config too: the
    no-auxiliary control, which has no rotation head, falls back to the softmax score."""
    exp = load_experiment(
        None, ["tasks.names=[rotation]", "ood.val_classes=[7]", "ood.detector=rotation"]
    )
    assert exp.ood.detector == "rotation"
    baseline = exp.row_config("baseline")
    assert (baseline.tasks.names, baseline.ood.detector) == ((), "msp")
