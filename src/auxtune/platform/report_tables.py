"""The result table and its verdict in words: what ``auxtune compare`` prints, and what
``report.md`` opens with.

Accuracies (and OOD AUROC, AUPR, FPR95) are shown in percent as ``mean ± h``, where h is the
half-width of the 95 % t-interval over seeds; a difference to the reference is ``+d [low, high]``
in points, paired by seed, and its verdict says which is better (lower, for FPR95).

    >>> fmt_pct(0.2345, 0.0123)
    '23.45 ± 1.23'
"""

from __future__ import annotations

from auxtune.platform.comparison import Comparison, Row, describe_choice
from auxtune.platform.stats import PairedDifference
from auxtune.trainables.metrics import higher_is_better


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
