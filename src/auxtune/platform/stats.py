"""How sure a comparison is: 95 % intervals over seeds, and paired differences against a control.

Every strategy is retrained with the same seeds as the baseline, so seed k of a strategy and seed k
of the baseline share their data order and initial backbone: the per-seed difference removes that
shared noise, and a paired t-interval (``scipy.stats.ttest_rel``) says whether the mean difference
is distinguishable from zero. A verdict is ``better`` or ``worse`` only when the whole interval is
on one side of zero.

    >>> d = paired_difference({0: 0.80, 1: 0.82, 2: 0.81}, {0: 0.75, 1: 0.78, 2: 0.76})
    >>> round(d.mean_diff, 4), d.verdict, d.n
    (0.0467, 'better', 3)
    >>> paired_difference({0: 0.80, 1: 0.70}, {0: 0.75, 1: 0.76}).verdict
    'no detectable difference'
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

CONFIDENCE = 0.95
BETTER, WORSE, SAME = "better", "worse", "no detectable difference"
TOO_FEW = "undetermined (fewer than 2 paired seeds)"


@dataclass(frozen=True)
class Estimate:
    """A mean over seeds with its 95 % t-interval (None with fewer than two values)."""

    mean: float
    ci95: tuple[float, float] | None
    n: int

    @property
    def half_width(self) -> float | None:
        return None if self.ci95 is None else (self.ci95[1] - self.ci95[0]) / 2


@dataclass(frozen=True)
class PairedDifference:
    """Mean of (strategy - reference) over the seeds both have, its 95 % interval and verdict."""

    mean_diff: float
    ci95: tuple[float, float] | None
    n: int
    verdict: str

    def as_dict(self) -> dict[str, object]:
        return {
            "mean_diff": self.mean_diff,
            "ci95": list(self.ci95) if self.ci95 else None,
            "n": self.n,
            "verdict": self.verdict,
        }


def estimate(values: Sequence[float], confidence: float = CONFIDENCE) -> Estimate | None:
    """Mean and t-interval of ``values`` (None when there are none)."""
    data = np.asarray([v for v in values if math.isfinite(v)], dtype=float)
    if len(data) == 0:
        return None
    mean = float(data.mean())
    if len(data) < 2:
        return Estimate(mean, None, 1)
    from scipy import stats

    sem = float(stats.sem(data))
    if sem == 0.0:
        return Estimate(mean, (mean, mean), len(data))
    low, high = stats.t.interval(confidence, len(data) - 1, loc=mean, scale=sem)
    return Estimate(mean, (float(low), float(high)), len(data))


def paired_difference(
    values: Mapping[int, float], reference: Mapping[int, float], confidence: float = CONFIDENCE
) -> PairedDifference | None:
    """``values - reference`` paired by seed (the keys); None when no seed is shared."""
    seeds = sorted(
        s
        for s in set(values) & set(reference)
        if math.isfinite(values[s]) and math.isfinite(reference[s])
    )
    if not seeds:
        return None
    a = np.array([values[s] for s in seeds], dtype=float)
    b = np.array([reference[s] for s in seeds], dtype=float)
    diff = float(np.mean(a - b))
    if len(seeds) < 2:
        return PairedDifference(diff, None, 1, TOO_FEW)
    if np.allclose(a - b, a[0] - b[0], rtol=0, atol=1e-12):  # no spread: the interval is a point
        ci = (diff, diff)
    else:
        from scipy import stats

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            interval = stats.ttest_rel(a, b).confidence_interval(confidence)
        ci = (float(interval.low), float(interval.high))
    return PairedDifference(diff, ci, len(seeds), verdict(ci))


def verdict(ci: tuple[float, float]) -> str:
    """``better`` / ``worse`` when the interval excludes zero, else no detectable difference."""
    low, high = ci
    if low > 0:
        return BETTER
    if high < 0:
        return WORSE
    return SAME
