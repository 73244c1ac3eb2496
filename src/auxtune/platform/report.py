"""The comparison's report directory: ``report.md``, ``results.json``, ``config.yaml`` and figures.

The directory is built under a hidden staging name beside its destination and renamed into place
only when every file is written, so an interrupted ``auxtune compare`` leaves no half report.

Accuracies (and OOD AUROC, AUPR, FPR95) are shown in percent as ``mean ± h``, where h is the
half-width of the 95 % t-interval over seeds; a difference to the reference is ``+d [low, high]``
in points, paired by seed, and its verdict says which is better (lower, for FPR95).

    >>> fmt_pct(0.2345, 0.0123)
    '23.45 ± 1.23'
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from auxtune.errors import UserError
from auxtune.platform.comparison import Comparison, Row, describe_choice
from auxtune.platform.pareto import front_table
from auxtune.platform.plots import draw_all, epsilon_sweep, pareto_figure_name, training_epsilon
from auxtune.platform.stats import PairedDifference
from auxtune.trainables.metrics import higher_is_better

if TYPE_CHECKING:
    from auxtune.robust.gradient_masking import Check

REPORT_FILES = ("report.md", "results.json", "config.yaml")
DEFAULT_WORKDIR = "runs"  # TrackingConfig's default: `auxtune ui` with no flags opens its store


# ------------------------------------------------------------------------------ formatting
def ui_hint(tracking_uri: str, experiment_id: str | None = None) -> str:
    """The command that browses ``tracking_uri`` in the MLflow UI, and where to point a browser:
    the experiment's runs table when ``experiment_id`` is known (MLflow 3.17 otherwise opens an
    experiment on its GenAI overview)."""
    from auxtune.platform.tracking import experiment_url, resolve_tracking

    def page(base: str) -> str:
        return experiment_url(base, experiment_id) if experiment_id else base

    if tracking_uri.startswith(("http://", "https://")):  # a server has its own UI
        return f"open {page(tracking_uri)} in a browser"
    command = "auxtune ui --port 5000"
    if tracking_uri != resolve_tracking(DEFAULT_WORKDIR).uri:
        command += f" --tracking-uri {tracking_uri}"
    return f"{command}   # then open {page('http://127.0.0.1:5000')}"


def fmt_pct(mean: float | None, half_width: float | None = None) -> str:
    """Accuracy in percent with the half-width of its interval (``n/a`` when missing)."""
    if mean is None:
        return "n/a"
    return f"{100 * mean:.2f}" + ("" if half_width is None else f" ± {100 * half_width:.2f}")


def fmt_diff(diff: PairedDifference | None) -> str:
    """``+1.23 [-0.40, +2.86] no detectable difference`` (percentage points)."""
    if diff is None:
        return "reference"
    text = f"{100 * diff.mean_diff:+.2f}"
    if diff.ci95 is not None:
        text += f" [{100 * diff.ci95[0]:+.2f}, {100 * diff.ci95[1]:+.2f}]"
    return f"{text} {diff.verdict}"


def fmt_s(seconds: float | None, digits: int = 1) -> str:
    return "n/a" if seconds is None else f"{seconds:.{digits}f}"


def metric_label(metric: str) -> str:
    """Column header of a metric: ``c15 %``, ``clean test %``, ``ood fpr95 % (lower is better)``."""
    label = metric.removesuffix("_accuracy").replace("_", " ")
    return f"{label} %" + ("" if higher_is_better(metric) else " (lower is better)")


def row_estimate(row: Row, metric: str) -> str:
    found = row.estimate(metric)
    return "n/a" if found is None else fmt_pct(found.mean, found.half_width)


def median_retrain_s(row: Row) -> float | None:
    seconds = sorted(r.seconds for r in row.retrains if r.seconds > 0)
    return seconds[len(seconds) // 2] if seconds else None


def headers(comparison: Comparison) -> list[str]:
    return [
        "strategy",
        "retrained",
        *(metric_label(m) for m in comparison.metrics),
        f"{comparison.metric.removesuffix('_accuracy')} vs {comparison.reference} (points)",
        "trials",
        "trial-epochs / budget",
        "search s",
        "retrain s",
        "s/step",
    ]


def table_rows(comparison: Comparison) -> list[list[str]]:
    """One row per strategy or variant, the cells of :func:`headers`."""
    batch = int(comparison.config["optim"]["batch_size"])
    return [
        [
            row.strategy,
            describe_choice(row.retrained),
            *(row_estimate(row, m) for m in comparison.metrics),
            fmt_diff(comparison.versus_reference(row, comparison.metric)),
            str(row.trials),
            f"{row.trial_epochs} / {row.budget_trial_epochs}" if row.search else "-",
            fmt_s(row.search.wall_s) if row.search else "-",
            fmt_s(median_retrain_s(row)),
            fmt_s(row.step_seconds(batch), 4),
        ]
        for row in comparison.rows
    ]


def format_table(comparison: Comparison) -> str:
    """The result table as aligned plain text (what the command prints), then the verdict."""
    head = headers(comparison)
    rows = [head, *table_rows(comparison)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append("")
    lines.append(f"({interval_note(comparison)})")
    lines.extend(summary_lines(comparison, markdown=False))
    return "\n".join(lines)


def markdown_table(headers: list[str] | tuple[str, ...], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell.replace("|", "/") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def interval_note(comparison: Comparison) -> str:
    seeds = ", ".join(map(str, comparison.seeds))
    return (
        f"metrics in percent: mean ± half-width of the 95 % t-interval over seeds {seeds}; vs "
        f"{comparison.reference}: mean difference [95 % interval] paired by seed"
    )


def summary_lines(comparison: Comparison, markdown: bool = True) -> list[str]:
    """The answer in words: who leads, whether the lead is detectable, what beats the control."""
    bold = "**" if markdown else ""
    metric, lines = comparison.metric, []
    leader = comparison.leader()
    if leader is not None:
        best, second, diff = leader
        found = best.estimate(metric)
        text = (
            f"Highest mean {metric}: {bold}{best.strategy}{bold}, "
            f"{fmt_pct(found.mean, found.half_width) if found else 'n/a'} % over "
            f"{len(best.by_seed(metric))} seed(s)."
        )
        if second is not None:
            if diff is None or diff.ci95 is None:
                text += (
                    f" Its lead over {second.strategy} cannot be tested with fewer than two "
                    "paired seeds: no winner is named."
                )
            elif diff.verdict == "better":
                text += (
                    f" Its lead over the runner-up {second.strategy} is {fmt_diff(diff)}: "
                    "detectable at 95 %."
                )
            else:
                text += (
                    f" Its lead over the runner-up {second.strategy} is {fmt_diff(diff)}: the "
                    "interval includes zero, so it is NOT a detectable winner."
                )
        lines.append(text)
    verdicts: dict[str, list[str]] = {}
    for row in comparison.rows:
        diff = comparison.versus_reference(row, metric)
        if diff is not None:
            verdicts.setdefault(diff.verdict, []).append(row.strategy)
    if verdicts:
        parts = [f"{v}: {', '.join(names)}" for v, names in verdicts.items()]
        lines.append(f"Against {comparison.reference} on {metric} -- " + "; ".join(parts) + ".")
    return lines


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


def choice_line(row: Row, metric: str) -> str:
    line = f"- **{row.strategy}**: {row.how}: {describe_choice(row.retrained)}."
    search = row.search
    if search is not None:
        line += (
            f" Search: {len(search.trials)} trials, {search.trial_epochs} of "
            f"{row.budget_trial_epochs} trial-epochs, best {metric} "
            f"{fmt_pct(search.best.metrics.get(metric))} %; MLflow run `{search.parent_run_id}`, "
            f"Tune results `{search.results_path}`."
        )
    failed = [r for r in row.retrains if r.status != "TERMINATED"]
    if failed:
        line += " Failed retrains: " + "; ".join(f"seed {r.seed}: {r.error}" for r in failed) + "."
    return line


def render_markdown(comparison: Comparison, figures: list[str]) -> str:
    """The whole ``report.md``."""
    c = comparison
    cfg = c.config
    data, optim, weighting = cfg["data"], cfg["optim"], cfg["weighting"]
    seeds = ", ".join(map(str, c.seeds))
    searched = [r.strategy for r in c.rows if r.search is not None]
    parts = [
        f"# Weighting strategies at equal compute: {c.name}",
        "",
        f"{c.created} · dataset `{c.dataset}` · protocol `{c.protocol}` · budget "
        f"{c.budget_trial_epochs} trial-epochs per searched strategy · seeds {seeds} · "
        f"whole run {c.wall_s:.0f} s",
        "",
        (
            f"Searched strategies ({', '.join(searched)}) spent the same budget of "
            f"{c.budget_trial_epochs} trial-epochs (one trial training one epoch) maximising "
            f"`{cfg['search']['metric']}` (validation images; the 15 test corruptions are never "
            "seen). "
            if searched
            else "No row was searched: every row is a fixed configuration. "
        )
        + f"Every row -- each strategy's best configuration and the fixed rows, "
        f"`{c.reference}` being the reference -- was retrained from scratch for "
        f"{optim['epochs']} epochs with each of the same seeds and evaluated on the clean test "
        f"split and the corrupted test set: c15 is the mean over the 15 standard corruptions x 5 "
        f"severities, c19 adds the 4 extra ones (the seed paper's number). Rows are ranked by "
        f"`{c.metric}`. {interval_note(c).capitalize()}.",
        "",
        *[f"{note}\n" for note in metric_notes(c)],
        markdown_table(headers(c), table_rows(c)),
        "",
        *[f"{line}\n" for line in summary_lines(c)],
        f"## Against {c.reference}, paired by seed (percentage points)",
        "",
        versus_table(c),
        "",
        "## Accuracy by severity (%), 15 standard corruptions",
        "",
        severity_table(c),
        "",
        *epsilon_section(c),
        *masking_section(c),
        *pareto_section(c),
        "## What each row retrained",
        "",
        *[choice_line(r, cfg["search"]["metric"]) for r in c.rows],
        "",
        f"Retrains: {sum(len(r.retrains) for r in c.rows)} runs, {c.retrain_wall_s:.0f} s wall clock.",
        "",
        "## Per-corruption test accuracy (%), mean ± 95 % half-width over seeds",
        "",
        per_corruption_table(c),
        "",
    ]
    shown_above = {"epsilon_sweep.png", *(pareto_figure_name(r.strategy) for r in c.rows)}
    figures = [name for name in figures if name not in shown_above]
    if figures:
        parts += ["## Figures", ""]
        parts += [f"![{name}]({name})\n" for name in figures]
    parts += [
        "## Protocol and data",
        "",
        f"- protocol `{c.protocol}`: " + _protocol_text(c.protocol),
        f"- dataset `{c.dataset}`: {_data_text(data)}",
        f"- corrupted test set: {data.get('corruptions_dir') or 'generated from the test split (cached)'}"
        f", {data.get('c_images_per_block') or 'all'} images per (corruption, severity) block",
        f"- network WRN-{cfg['model']['depth']}-{cfg['model']['widen_factor']} (base width "
        f"{cfg['model']['base_width']}); SGD lr {optim['lr']} cosine to {optim['min_lr']}, momentum "
        f"{optim['momentum']} (Nesterov {optim['nesterov']}), weight decay {optim['weight_decay']}, "
        f"batch {optim['batch_size']}, {optim['epochs']} epochs per trial",
        f"- weighting section as run: `{json.dumps(weighting, sort_keys=True)}`",
        f"- seeds of the retrains: {seeds}",
        "",
        "## Versions",
        "",
        markdown_table(["package", "version"], [[k, v] for k, v in c.versions.items()]),
        "",
        "## Reproduce",
        "",
        "```",
        *([c.command, "# or, from this directory's resolved configuration:"] if c.command else []),
        "auxtune compare --config config.yaml",
        "```",
        "",
        "## MLflow",
        "",
        f"Tracking URI `{c.tracking_uri}`, experiment `{c.experiment_name}`, comparison run "
        f"`{c.mlflow_run_id}`: under it one run per row, and under each row its search trials "
        "and its retrains. Browse it with",
        "",
        "```",
        ui_hint(c.tracking_uri, c.experiment_id),
        "```",
        "",
    ]
    return "\n".join(parts)


def _protocol_text(protocol: str) -> str:
    if protocol == "paper":
        return (
            "the seed paper's: meta-validation images are the first 100 of every CIFAR-C block "
            "(test corruptions leak into training); evaluation skips those images."
        )
    return (
        "leak-free: meta-validation draws held-out training images under the 4 extra "
        "corruptions; no test image or test corruption is used for training or selection."
    )


def _data_text(data: dict[str, Any]) -> str:
    if data["dataset"] == "synthetic":
        return (
            f"embedded synthetic images, {data['num_train']} train / {data['num_val']} val / "
            f"{data['holdout']} holdout / {data['num_test']} test (seed {data['seed']})"
        )
    return f"{data.get('data_dir')}, {data['num_val']} val and {data['holdout']} holdout images kept out"


# ------------------------------------------------------------------------------ results.json
def results_dict(comparison: Comparison) -> dict[str, Any]:
    """``results.json``: per strategy its spend and budget, its retrains' metrics by seed and its
    paired differences to the reference (``vs_baseline``), plus the whole comparison's settings."""
    c = comparison
    strategies = []
    for row in c.rows:
        seeds = [r.seed for r in row.retrains]
        metrics = sorted({*c.metrics, *(k for r in row.retrains for k in r.metrics)})
        versus = {
            m: d.as_dict() for m in c.metrics if (d := c.versus_reference(row, m)) is not None
        }
        strategies.append(
            {
                "strategy": row.strategy,
                "searched": row.search is not None,
                "trials": row.trials,
                "trial_epochs": row.trial_epochs,
                "budget_trial_epochs": row.budget_trial_epochs,
                "retrained": row.retrained,
                "how": row.how,
                "retrain": {
                    "seeds": seeds,
                    **{m: [r.value(m) for r in row.retrains] for m in metrics},
                    "seconds": [r.seconds for r in row.retrains],
                    "status": [r.status for r in row.retrains],
                },
                "vs_baseline": versus,
                "summary": {
                    m: {"mean": e.mean, "ci95": list(e.ci95) if e.ci95 else None, "n": e.n}
                    for m in metrics
                    if (e := row.estimate(m)) is not None
                },
                "search": _search_dict(row),
                "mlflow_run_id": row.mlflow_run_id,
            }
        )
    leader = c.leader()
    return _finite(
        {
            "name": c.name,
            "created": c.created,
            "reference": c.reference,
            "metric": c.metric,
            "metrics": list(c.metrics),
            "higher_is_better": {m: higher_is_better(m) for m in c.metrics},
            "seeds": list(c.seeds),
            "budget_trial_epochs": c.budget_trial_epochs,
            "strategies": strategies,
            "leader": None
            if leader is None
            else {
                "strategy": leader[0].strategy,
                "runner_up": leader[1].strategy if leader[1] else None,
                "vs_runner_up": leader[2].as_dict() if leader[2] else None,
            },
            "protocol": c.protocol,
            "dataset": c.dataset,
            "config": c.config,
            "command": c.command,
            "versions": c.versions,
            "tracking_uri": c.tracking_uri,
            "experiment_name": c.experiment_name,
            "mlflow_run_id": c.mlflow_run_id,
            "wall_s": c.wall_s,
            "retrain_wall_s": c.retrain_wall_s,
        }
    )


def _search_dict(row: Row) -> dict[str, Any] | None:
    search = row.search
    if search is None:
        return None
    return {
        "experiment_dir": search.results_path,
        "mlflow_run_id": search.parent_run_id,
        "wall_s": search.wall_s,
        "trial_seconds": row.trial_seconds,
        "weighting": search.weighting,
        "best": {
            "trial_id": search.best.trial_id,
            "params": search.best.params,
            "metrics": search.best.metrics,
        },
        "trials": [
            {
                "trial_id": t.trial_id,
                "params": t.params,
                "epochs": t.epochs,
                "status": t.status,
                "error": t.error,
                "history": t.history,
            }
            for t in search.trials
        ],
        "pareto_front": search.front.as_dict() if search.front is not None else None,
    }


def _finite(value: Any) -> Any:
    """JSON-safe: NaN and infinities become null, tuples lists, other objects strings."""
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if hasattr(value, "item"):  # numpy scalars
        return _finite(value.item())
    return str(value)


# ------------------------------------------------------------------------------ the directory
def check_out_dir(out: Path) -> None:
    """Refuse a destination that cannot be written, or that exists and is neither empty nor an
    earlier report (checked before any search: a report lost after them is hours lost)."""
    from auxtune.platform.outputs import check_writable

    check_writable(out, "--out", directory=True)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not is_report(out))):
        raise UserError(
            f"--out {out} exists and is not an auxtune compare report: choose a new directory"
        )


def is_report(path: Path) -> bool:
    return all((path / name).is_file() for name in REPORT_FILES)


def write_report(comparison: Comparison, out: str | Path) -> Path:
    """Write the report directory ``out`` atomically (an earlier report there is replaced)."""
    out = Path(out)
    check_out_dir(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        figures = draw_all(comparison, staging)
        results = json.dumps(results_dict(comparison), indent=1, allow_nan=False)
        (staging / "results.json").write_text(results + "\n")
        (staging / "config.yaml").write_text(yaml.safe_dump(comparison.config, sort_keys=False))
        (staging / "report.md").write_text(render_markdown(comparison, figures))
        _swap_in(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


def _swap_in(staging: Path, out: Path) -> None:
    """Rename ``staging`` to ``out``; an earlier ``out`` is moved aside first, then removed."""
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    if out.exists():
        os.rename(out, old)
    os.rename(staging, out)
    shutil.rmtree(old, ignore_errors=True)
