"""Adversarial accuracy as what ``auxtune search`` and ``auxtune compare`` optimise and rank, end to
end through the CLI: a multi-objective Optuna search inside a comparison ranked by PGD-20 accuracy,
with the search's Pareto front and the epsilon sweep in its report (slow: Ray, MLflow)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from auxtune.platform.cli import main

#: WRN-10-1 (4 stem channels) on 32 synthetic images, PGD-1 training: seconds per trial
TINY = """\
name: tiny-adv
data: {dataset: synthetic, num_train: 32, num_val: 8, num_test: 8, holdout: 8,
       c_images_per_block: 2, augment: false}
model: {depth: 10, widen_factor: 1, base_width: 4}
optim: {batch_size: 8, epochs: 1}
tasks: {names: [rotation], decoder_width: 4}
runtime: {device: cpu, threads: 1}
adversarial: {train: true, steps: 1, val_images: 8, final_attacks: [pgd20], sweep: [0, 1, 2]}
search: {num_trials: 3, metric: val_adv_accuracy, objectives: [val_accuracy, val_adv_accuracy]}
compare: {strategies: [baseline, optuna], seeds: 1, metric: adv_pgd20_accuracy,
          metrics: [clean_test_accuracy, adv_pgd20_accuracy]}
"""


def test_search_summary_prints_the_front_and_draws_it(tmp_path: Path) -> None:
    from auxtune.platform.commands.search import summary
    from auxtune.platform.pareto import front_of
    from auxtune.platform.search import SearchResult, TrialSummary

    def trial(tid: str, clean: float, adv: float) -> TrialSummary:
        metrics = {"val_accuracy": clean, "val_adv_accuracy": adv}
        return TrialSummary(
            tid, {"lambda/rotation": clean}, metrics, [metrics], 1, 1.0, "TERMINATED", None, None,
            None,
        )  # fmt: skip

    trials = [trial("a", 0.9, 0.1), trial("b", 0.5, 0.4), trial("c", 0.4, 0.3)]
    front = front_of(trials, ("val_accuracy", "val_adv_accuracy"))
    result = SearchResult("optuna", "s", "p", trials[1], trials, 3, 1.0, str(tmp_path), front=front)
    text = summary(result, "val_adv_accuracy")
    assert "Pareto front on val_accuracy, val_adv_accuracy (maximised): 2 of 3 trials" in text
    assert re.search(r"^b\s+rotation=0.5\s+50.00\s+40.00$", text, re.MULTILINE)
    assert not re.search(r"^c\s", text, re.MULTILINE)  # dominated by b
    assert (tmp_path / "pareto_front.png").is_file()


@pytest.mark.slow
def test_compare_ranks_by_adversarial_accuracy_with_a_multi_objective_search(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY)
    out = tmp_path / "report"
    argv = ["compare", "--config", str(config), "--out", str(out), f"tracking.workdir={tmp_path}"]
    assert main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["metric"] == "adv_pgd20_accuracy"
    optuna = next(s for s in results["strategies"] if s["strategy"] == "optuna")
    front = optuna["search"]["pareto_front"]
    assert front["objectives"] == ["val_accuracy", "val_adv_accuracy"]
    assert len(front["members"]) + len(front["dominated"]) == 3  # every trial ran all its epochs
    members = {m["trial_id"] for m in front["members"]}
    assert optuna["search"]["best"]["trial_id"] in members  # the retrained trial is on the front
    for row in results["strategies"]:  # every row measured under attack, swept over epsilon
        assert len(row["retrain"]["adv/eps_2x_accuracy"]) == 1
    report = (out / "report.md").read_text()
    assert "## Pareto front of the optuna search" in report
    assert "## Accuracy under attack by test epsilon" in report
    assert (out / "pareto_optuna.png").is_file() and (out / "epsilon_sweep.png").is_file()
    assert "Highest mean adv_pgd20_accuracy" in capsys.readouterr().out


def test_adversarial_metric_without_the_section_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "plain.yaml"
    config.write_text(TINY.replace("adversarial: {train: true,", "adversarial: {train: false,"))
    assert main(["compare", "--config", str(config), f"tracking.workdir={tmp_path}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "search.metric = 'val_adv_accuracy'" in err[0]
    assert not list(tmp_path.glob("ray_results"))


def test_lambda_sweep_preset_is_one_row_per_rotation_weight() -> None:
    """configs/adversarial-lambda-sweep.yaml: baseline (lambda 0, no head), then lambdas rising,
    all adversarially trained with the preset's attack and swept to 2x its epsilon."""
    from auxtune.platform.config import load_experiment

    root = Path(__file__).resolve().parents[1]
    exp = load_experiment(root / "configs" / "adversarial-lambda-sweep.yaml")
    preset = load_experiment(root / "configs" / "adversarial.yaml")
    assert exp.compare.rows()[0] == "baseline" and exp.row_config("baseline").tasks.names == ()
    lambdas = []
    for row in exp.compare.rows()[1:]:
        cfg = exp.row_config(row)
        assert cfg.adversarial == exp.adversarial and cfg.tasks.names == ("rotation",)
        lambdas.append(cfg.weighting.initial_lambdas(cfg.tasks.names)["rotation"])
    assert lambdas == sorted(lambdas) and len(set(lambdas)) == len(lambdas) >= 3
    assert max(exp.adversarial.sweep) == 2 and exp.adversarial.train
    same = ("epsilon", "steps", "threat_model", "attack_loss", "aux_view")
    assert all(getattr(exp.adversarial, k) == getattr(preset.adversarial, k) for k in same)
    assert (exp.data, exp.model, exp.optim) == (preset.data, preset.model, preset.optim)


def test_adversarial_preset_compares_the_three_rows_of_hendrycks_table() -> None:
    from auxtune.platform.config import load_experiment

    exp = load_experiment(Path(__file__).resolve().parents[1] / "configs" / "adversarial.yaml")
    normal, adversarial, rotation = (exp.row_config(r) for r in exp.compare.rows())
    assert (normal.adversarial.train, normal.adversarial.evaluate) == (False, True)
    assert adversarial.adversarial.train and adversarial.tasks.names == ()
    assert rotation.adversarial.train and rotation.tasks.names == ("rotation",)
    assert exp.compare.metric == "adv_pgd20_accuracy"
