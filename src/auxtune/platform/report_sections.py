"""The sections of ``report.md`` after the result table: the paired differences to the reference,
accuracy by severity and by corruption, accuracy by test epsilon, the sanity checks against
gradient masking, each search's Pareto front, and what the label-noise and OOD numbers mean.

Each ``*_section`` gives its Markdown lines, none when no row measured what it shows.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from auxtune.platform.comparison import Comparison
from auxtune.platform.pareto import front_table
from auxtune.platform.plots import epsilon_sweep, pareto_figure_name, training_epsilon
from auxtune.platform.report_tables import (
    fmt_diff,
    fmt_pct,
    markdown_table,
    metric_label,
    row_estimate,
)

if TYPE_CHECKING:
    from auxtune.robust.gradient_masking import Check


def metric_notes(comparison: Comparison) -> list[str]:
    """What the label-noise and OOD numbers of the table are, in words (none for plain runs)."""
    cfg, notes = comparison.config, []
    noise = cfg.get("label_noise") or {}
    if noise.get("rate", 0) > 0:
        notes.append(
            f"Training labels were corrupted ({noise['kind']} noise at rate {noise['rate']}, "
            f"{100 * noise['trusted_fraction']:g} % of the training images trusted and kept "
            f"clean, noise seed {noise['seed']}); the test labels are clean, so "
            "clean_test_accuracy is accuracy on clean labels."
        )
    ood = cfg.get("ood") or {}
    if ood.get("sets") and any(m.startswith("ood") for m in comparison.metrics):
        notes.append(
            f"OOD detection: the test split against each of the sets {', '.join(ood['sets'])}"
            + (f" (heldout: classes {ood['test_classes']})" if "heldout" in ood["sets"] else "")
            + "; ood_auroc, ood_aupr and ood_fpr95 are the mean over the sets for the row's "
            f"ood.detector ({ood['detector']} unless the row sets it), "
            "ood/<set>/<detector>/<measure> one set and detector. FPR at 95 % TPR is "
            "lower-is-better: its verdicts say better when it falls."
        )
    return notes


def versus_table(comparison: Comparison) -> str:
    """Every metric's paired difference to the reference, with its interval and verdict."""
    rows = [
        [row.strategy, *(fmt_diff(comparison.versus_reference(row, m)) for m in comparison.metrics)]
        for row in comparison.rows
        if row.strategy != comparison.reference
    ]
    return markdown_table(["strategy", *(metric_label(m) for m in comparison.metrics)], rows)


def severity_table(comparison: Comparison) -> str:
    table = comparison.severities()
    rows = []
    for row in comparison.rows:
        by_severity = table[row.strategy]
        cells = [
            fmt_pct(by_severity[s].mean, by_severity[s].half_width) if s in by_severity else "n/a"
            for s in range(1, 6)
        ]
        rows.append([row.strategy, row_estimate(row, "clean_test_accuracy"), *cells])
    return markdown_table(["strategy", "clean", *(f"severity {s}" for s in range(1, 6))], rows)


def per_corruption_table(comparison: Comparison) -> str:
    from auxtune.data.corruptions import CORRUPTIONS, STANDARD_CORRUPTIONS

    present = {c for row in comparison.rows for c in row.corruption_names()}
    names = [c for c in CORRUPTIONS if c in present] + sorted(present - set(CORRUPTIONS))
    rows = []
    for name in names:
        label = name if name in STANDARD_CORRUPTIONS else f"{name} (extra)"
        rows.append([label, *(row_estimate(row, f"c/{name}") for row in comparison.rows)])
    return markdown_table(["corruption", *(r.strategy for r in comparison.rows)], rows)


def epsilon_table(comparison: Comparison) -> str | None:
    """Accuracy (%) at each test epsilon of the sweep, one line per row (None without sweeps)."""
    sweeps = {row.strategy: epsilon_sweep(row) for row in comparison.rows}
    multiples = sorted({m for points in sweeps.values() for m in points})
    if not multiples:
        return None
    rows = []
    for row in comparison.rows:
        eps, points = training_epsilon(comparison, row), sweeps[row.strategy]
        cells = [fmt_pct(*points[m]) if m in points else "n/a" for m in multiples]
        rows.append([row.strategy, f"{eps:.4g}", *cells])
    return markdown_table(["strategy", "train epsilon", *(f"{m:g}x" for m in multiples)], rows)


def epsilon_section(comparison: Comparison) -> list[str]:
    """The report's epsilon sweep section (nothing when no row reports ``adv/eps_<m>x_accuracy``)."""
    table = epsilon_table(comparison)
    if table is None:
        return []
    return [
        "## Accuracy under attack by test epsilon (%), mean ± 95 % half-width over seeds",
        "",
        "Test epsilon as a multiple of each row's training epsilon (0x: clean test accuracy); "
        "every point is PGD-20 (one random start, step epsilon / 4) on the test images.",
        "",
        table,
        "",
        "![epsilon_sweep.png](epsilon_sweep.png)",
        "",
    ]


def masking_section(comparison: Comparison) -> list[str]:
    """The sanity checks against gradient masking, on every retrain measured under PGD-20 and
    PGD-100 (nothing when none was): how many seeds of each row pass each check, and what failed."""
    from auxtune.robust.gradient_masking import sampling_tolerance

    adversarial, data = comparison.config["adversarial"], comparison.config["data"]
    images = min(adversarial["test_images"] or data["num_test"], data["num_test"])
    tolerance = sampling_tolerance(images)
    rows = []
    for row in comparison.rows:
        passed: dict[str, list[int]] = {}
        failed: dict[str, list[str]] = {}
        for retrain in row.retrains:
            for check in retrain_masking_checks(retrain.metrics, tolerance):
                passed.setdefault(check.name, [])
                failed.setdefault(check.name, [])
                if check.passed:
                    passed[check.name].append(retrain.seed)
                else:
                    failed[check.name].append(f"seed {retrain.seed}: {check.detail}")
        for name, seeds in passed.items():
            total = len(seeds) + len(failed[name])
            rows.append([row.strategy, name, f"{len(seeds)}/{total}", "; ".join(failed[name])])
    if not rows:
        return []
    return [
        "## Sanity checks against gradient masking",
        "",
        f"Per retrain, on its {images} attacked test images, each check allowing "
        f"{100 * tolerance:.2g} points of sampling noise: accuracy never rises with the test "
        "epsilon (the sweep above), PGD-100 is no weaker than PGD-20, and the library's attack "
        "(ART) is no weaker than our PGD-20. A failure suggests masked gradients: trust that "
        "row's attack accuracy less (`auxtune evaluate --attack ... --checks` adds accuracy at a "
        "large epsilon).",
        "",
        markdown_table(["strategy", "check", "seeds passing", "failures"], rows),
        "",
    ]


#: the final metrics of attacks a maintained library runs (ART): the masking checks' yardstick
LIBRARY_ATTACK_METRIC = re.compile(r"adv_(?P<attack>art-pgd[0-9]+|apgd|autoattack)_accuracy")


def retrain_masking_checks(metrics: dict[str, float], tolerance: float) -> list[Check]:
    """The masking checks one retrain's final metrics allow (none without PGD-20 and PGD-100)."""
    from auxtune.robust.adversarial_eval import sweep_multiple
    from auxtune.robust.gradient_masking import masking_checks

    if "adv_pgd20_accuracy" not in metrics or "adv_pgd100_accuracy" not in metrics:
        return []
    sweep = {m: v for k, v in metrics.items() if (m := sweep_multiple(k)) is not None}
    library = [
        (match["attack"], value)
        for key, value in metrics.items()
        if (match := LIBRARY_ATTACK_METRIC.fullmatch(key)) is not None
    ]
    return masking_checks(
        sweep,
        metrics["adv_pgd20_accuracy"],
        metrics["adv_pgd100_accuracy"],
        None,
        min(library, key=lambda item: item[1]) if library else None,
        tolerance=tolerance,
    )


def pareto_section(comparison: Comparison) -> list[str]:
    """For each multi-objective search: its Pareto front's members and their figure."""
    parts: list[str] = []
    metric = comparison.config["search"]["metric"]
    for row in comparison.rows:
        search = row.search
        if search is None or search.front is None:
            continue
        front = search.front
        headers, rows = front_table(front)
        parts += [
            f"## Pareto front of the {row.strategy} search",
            "",
            f"{len(front.members)} of {len(front.members) + len(front.others)} trials are "
            f"non-dominated on {', '.join(front.objectives)} (all maximised, validation images); "
            f"the retrained trial `{search.best.trial_id}` is the member with the highest "
            f"`{metric}`.",
            "",
            markdown_table(headers, rows),
            "",
            f"![{pareto_figure_name(row.strategy)}]({pareto_figure_name(row.strategy)})",
            "",
        ]
    return parts
