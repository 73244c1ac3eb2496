"""The Pareto front of a search: the trials no other trial beats on every objective at once.

With ``search.objectives`` (say clean, corrupted and adversarial validation accuracy, all
maximised) no single trial is "the best": raising one objective often costs another. A trial is
on the front when no other trial is at least as good on every objective and better on one.

    >>> pareto_indices([(0.9, 0.2), (0.8, 0.5), (0.7, 0.4), (0.9, 0.2)])
    [0, 1, 3]

Ties are kept (two trials with equal values dominate neither); trials compete only with trials
that trained as many epochs (an early-stopped trial's metrics are from an earlier epoch).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from auxtune.platform.trials import TrialSummary


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """``a`` is at least as high as ``b`` on every objective and higher on one (maximising)."""
    return all(x >= y for x, y in zip(a, b, strict=True)) and any(x > y for x, y in zip(a, b))


def pareto_indices(points: Sequence[Sequence[float]]) -> list[int]:
    """Indices of the points no other point dominates, in input order (O(n^2): n is trials)."""
    return [
        i
        for i, p in enumerate(points)
        if not any(dominates(q, p) for j, q in enumerate(points) if j != i)
    ]


@dataclass(frozen=True)
class ParetoFront:
    """The front of a search's trials on ``objectives``: ``members`` on it, ``others`` behind."""

    objectives: tuple[str, ...]
    members: tuple[TrialSummary, ...]  # by the first objective, best first
    others: tuple[TrialSummary, ...]  # compared but dominated

    def values(self, trial: TrialSummary) -> tuple[float, ...]:
        return tuple(trial.metrics[m] for m in self.objectives)

    def as_dict(self) -> dict[str, object]:
        """``{"objectives": [...], "members": [{"trial_id", "params", <objective>: value}]}``."""
        return {
            "objectives": list(self.objectives),
            "members": [
                {
                    "trial_id": t.trial_id,
                    "params": t.params,
                    **dict(zip(self.objectives, self.values(t))),
                }
                for t in self.members
            ],
            "dominated": [t.trial_id for t in self.others],
        }


def front_of(trials: Sequence[TrialSummary], objectives: Sequence[str]) -> ParetoFront | None:
    """The front of the trials that did not fail, report every objective and trained the most
    epochs; None when no trial qualifies (or fewer than two objectives)."""
    if len(objectives) < 2:
        return None
    scored = [
        t
        for t in trials
        if t.status != "ERROR" and all(_finite(t.metrics.get(m)) for m in objectives)
    ]
    if not scored:
        return None
    longest = max(t.epochs for t in scored)
    scored = [t for t in scored if t.epochs == longest]
    points = [tuple(t.metrics[m] for m in objectives) for t in scored]
    on_front = set(pareto_indices(points))
    members = sorted((scored[i] for i in on_front), key=lambda t: -t.metrics[objectives[0]])
    others = tuple(t for i, t in enumerate(scored) if i not in on_front)
    return ParetoFront(tuple(objectives), tuple(members), others)


def describe_params(params: dict[str, float | str]) -> str:
    """A trial's choice, short: ``rotation=0.31 jigsaw=0.8``.

    >>> describe_params({"lambda/rotation": 0.3141, "meta_lr": 0.02})
    'rotation=0.314 meta_lr=0.02'
    """
    return " ".join(
        f"{key.removeprefix('lambda/')}={value:.3g}"
        if isinstance(value, float)
        else f"{key}={value}"
        for key, value in params.items()
    )


def front_table(front: ParetoFront) -> tuple[list[str], list[list[str]]]:
    """Headers and rows of the front's members: trial, its lambdas, each objective in percent."""
    headers = ["trial", "lambdas", *(f"{m} %" for m in front.objectives)]
    rows = [
        [t.trial_id, describe_params(t.params) or "-", *(f"{100 * v:.2f}" for v in front.values(t))]
        for t in front.members
    ]
    return headers, rows


def format_front(front: ParetoFront) -> str:
    """The front as aligned plain text (what ``auxtune search`` prints)."""
    headers, rows = front_table(front)
    table = [headers, *rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    compared = len(front.members) + len(front.others)
    title = (
        f"Pareto front on {', '.join(front.objectives)} (maximised): {len(front.members)} of "
        f"{compared} trials"
    )
    return "\n".join([title, *lines])


def _finite(value: object) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)
