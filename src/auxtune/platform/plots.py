"""The comparison's figures, drawn on matplotlib's Agg canvas (no pyplot state, no display).

Each function takes the finished :class:`~auxtune.platform.comparison.Comparison`, writes one PNG and
returns its path, or ``None`` when the comparison holds nothing to draw (e.g. no strategy whose
lambdas move, for the trajectory plot).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from auxtune.platform.comparison import Comparison, Row
    from auxtune.platform.pareto import ParetoFront
    from auxtune.platform.search_result import SearchResult

DPI = 100


def integer_ticks(axes: Any) -> None:
    from matplotlib.ticker import MaxNLocator

    axes.xaxis.set_major_locator(MaxNLocator(integer=True))


def new_figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(figure)
    return figure


def save(figure: Figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, format="png")
    return path


def colors(strategies: Sequence[str]) -> dict[str, Any]:
    """One fixed colour per strategy, the same in every figure."""
    from matplotlib import colormaps

    palette = colormaps["tab10"]
    return {name: palette(i % 10) for i, name in enumerate(strategies)}


# ----------------------------------------------------------------------- accuracy vs compute
def search_curve(search: SearchResult, metric: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(cumulative trial-epochs, ``metric`` of that trial-epoch, best so far) in reporting order.

    Concurrent trials' epochs are put in the order they were reported (``timestamp`` when every
    row has one), else trial by trial: the x axis counts trial-epochs, the compute spent.
    """
    rows: list[tuple[float, int, int, float]] = []
    timed = all("timestamp" in row for trial in search.trials for row in trial.history)
    for t, trial in enumerate(search.trials):
        for e, row in enumerate(trial.history):
            if metric in row and np.isfinite(row[metric]):
                when = float(row["timestamp"]) if timed else 0.0
                rows.append((when, t, e, float(row[metric])))
    rows.sort()
    values = np.array([r[3] for r in rows])
    spent = np.arange(1, len(values) + 1)
    return spent, values, np.maximum.accumulate(values) if len(values) else values


def error_bar(row: Row, metric: str) -> tuple[float, float] | None:
    """(mean, 95 % half-width; 0 with one seed) of ``metric`` over a row's retrains."""
    found = row.estimate(metric)
    return None if found is None else (found.mean, found.half_width or 0.0)


def plot_compute(comparison: Comparison, path: Path) -> Path | None:
    """The search metric against compute, each search's best so far; then each row's retrains."""
    metric = str(comparison.config["search"]["metric"])
    searched = [r for r in comparison.rows if r.search is not None]
    if not searched:
        return None
    figure = new_figure(8.5, 4.2)
    axes = figure.add_subplot()
    palette = colors([r.strategy for r in comparison.rows])
    for row in comparison.rows:
        color, bar = palette[row.strategy], error_bar(row, comparison.metric)
        if row.search is None:
            if bar is not None:
                axes.axhline(
                    bar[0], color=color, ls="--", lw=1, label=f"{row.strategy} (no search)"
                )
            continue
        spent, values, best = search_curve(row.search, metric)
        if len(values):
            axes.scatter(spent, values, s=10, alpha=0.3, color=color)
            axes.step(spent, best, where="post", color=color, label=f"{row.strategy} search")
        if bar is not None:
            axes.errorbar(
                [row.trial_epochs], [bar[0]], yerr=[bar[1]], fmt="*", ms=12, color=color,
                capsize=4, label=f"{row.strategy} retrained",
            )  # fmt: skip
    axes.set_xlabel("compute spent (trial-epochs)")
    axes.set_ylabel("accuracy")
    integer_ticks(axes)
    axes.set_title(
        f"lines: best {metric} so far during each search (dots: every trial-epoch)\n"
        f"stars and dashed lines: {comparison.metric} of the retrains, mean and 95 % interval "
        f"over {len(comparison.seeds)} seeds",
        fontsize=8,
    )
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # never over the data
    return save(figure, path)


# ------------------------------------------------------------------------ per corruption
def plot_per_corruption(comparison: Comparison, path: Path) -> Path | None:
    """Grouped bars: each corruption's accuracy (mean over seeds, 95 % interval) for every row."""
    from auxtune.data.corruptions import CORRUPTIONS, STANDARD_CORRUPTIONS

    present = {c for row in comparison.rows for c in row.corruption_names()}
    names = [c for c in CORRUPTIONS if c in present] + sorted(present - set(CORRUPTIONS))
    if not names:
        return None
    figure = new_figure(max(8.0, 0.45 * len(names) + 2), 4.5)
    axes = figure.add_subplot()
    palette = colors([r.strategy for r in comparison.rows])
    width = 0.8 / len(comparison.rows)
    x = np.arange(len(names))
    for i, row in enumerate(comparison.rows):
        bars = [error_bar(row, f"c/{c}") or (np.nan, 0.0) for c in names]
        offset = (i - (len(comparison.rows) - 1) / 2) * width
        axes.bar(
            x + offset, [b[0] for b in bars], width, yerr=[b[1] for b in bars], capsize=2,
            color=palette[row.strategy], label=row.strategy, error_kw={"elinewidth": 0.6},
        )  # fmt: skip
    standard = sum(c in STANDARD_CORRUPTIONS for c in names)
    if 0 < standard < len(names):  # the 4 extra corruptions are not in the headline mean
        axes.axvline(standard - 0.5, color="gray", lw=0.8, ls=":")
    axes.set_xticks(x, names, rotation=60, ha="right", fontsize=7)
    axes.set_ylabel("test accuracy (mean over severities 1-5)")
    axes.set_title(
        f"per-corruption test accuracy of the retrains, mean and 95 % interval over "
        f"{len(comparison.seeds)} seeds (right of the dotted line: the 4 extra corruptions)",
        fontsize=9,
    )
    axes.grid(axis="y", alpha=0.3)
    axes.legend(fontsize=7, loc="upper right")
    return save(figure, path)


# -------------------------------------------------------------------------- per severity
def plot_severity(comparison: Comparison, path: Path) -> Path | None:
    """Accuracy against corruption severity (0 = clean test), one line per row, 95 % intervals."""
    table = comparison.severities()
    if not any(table.values()):
        return None
    figure = new_figure(6.5, 4.2)
    axes = figure.add_subplot()
    palette = colors([r.strategy for r in comparison.rows])
    for i, row in enumerate(comparison.rows):
        points = {s: (e.mean, e.half_width or 0.0) for s, e in table[row.strategy].items()}
        clean = error_bar(row, "clean_test_accuracy")
        if clean is not None:
            points[0] = clean
        xs = sorted(points)
        jitter = (i - (len(comparison.rows) - 1) / 2) * 0.04  # keep the error bars apart
        axes.errorbar(
            [x + jitter for x in xs], [points[x][0] for x in xs], yerr=[points[x][1] for x in xs],
            marker="o", ms=4, capsize=3, color=palette[row.strategy], label=row.strategy,
        )  # fmt: skip
    axes.set_xticks(range(6), ["clean", "1", "2", "3", "4", "5"])
    axes.set_xlabel("severity (mean over the 15 standard corruptions)")
    axes.set_ylabel("test accuracy")
    axes.set_title(
        f"accuracy by severity, mean and 95 % interval over {len(comparison.seeds)} seeds",
        fontsize=9,
    )
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7)
    return save(figure, path)


# --------------------------------------------------------------------- lambda trajectories
def lambda_series(
    history: Sequence[Mapping[str, float]],
) -> dict[str, tuple[list[float], list[float]]]:
    """``{task: (epochs, lambdas)}`` from per-epoch rows holding ``lambda/<task>``."""
    series: dict[str, tuple[list[float], list[float]]] = {}
    for i, row in enumerate(history):
        epoch = float(row.get("epoch", row.get("step", i + 1)))
        for key, value in row.items():
            if key.startswith("lambda/"):
                epochs, values = series.setdefault(key.removeprefix("lambda/"), ([], []))
                epochs.append(epoch)
                values.append(float(value))
    return series


def moves(history: Sequence[Mapping[str, float]]) -> bool:
    """True when some lambda takes more than one value over ``history``."""
    return any(len(set(values)) > 1 for _, values in lambda_series(history).values())


def plot_lambdas(comparison: Comparison, path: Path) -> Path | None:
    """Lambda of each task against epoch for the rows whose lambdas move (learned or scheduled).

    Solid: the best search trial. Dashed: every retrain (a meta-gradient learns again in each; a
    PBT schedule is replayed, so its retrains retrace the best trial's lineage).
    """
    dynamic = [
        r
        for r in comparison.rows
        if any(moves(x.history) for x in r.retrains) or (r.search and moves(r.search.best.history))
    ]
    if not dynamic:
        return None
    figure = new_figure(4.2 * len(dynamic), 3.6)
    tasks = sorted({t for r in dynamic for x in r.retrains for t in lambda_series(x.history)})
    palette = colors(tasks)
    for i, row in enumerate(dynamic):
        axes = figure.add_subplot(1, len(dynamic), i + 1)
        if row.search is not None:
            for task, (epochs, values) in lambda_series(row.search.best.history).items():
                axes.plot(epochs, values, marker="o", ms=3, color=palette.get(task), label=task)
        for retrain in row.retrains:
            for task, (epochs, values) in lambda_series(retrain.history).items():
                axes.plot(epochs, values, ls="--", lw=0.8, color=palette.get(task, "gray"))
        title = f"best trial {row.search.best.trial_id}" if row.search else "retrains"
        axes.set_title(f"{row.strategy}: {title}", fontsize=9)
        axes.set_xlabel("epoch")
        axes.set_ylabel("lambda")
        integer_ticks(axes)
        axes.grid(alpha=0.3)
        if tasks and row.search is not None:
            axes.legend(fontsize=7, loc="upper left")
    return save(figure, path)


# ------------------------------------------------------------------------- Pareto front
def plot_pareto(front: ParetoFront, path: Path, title: str = "") -> Path:
    """Every pair of objectives: dominated trials grey, the front's members coloured and named.

    Two objectives make one scatter (the front joined as a staircase); three make three panels.
    """
    from itertools import combinations

    pairs = list(combinations(range(len(front.objectives)), 2))
    figure = new_figure(4.2 * len(pairs), 4.0)
    for k, (i, j) in enumerate(pairs):
        axes = figure.add_subplot(1, len(pairs), k + 1)
        others = np.array([front.values(t) for t in front.others]).reshape(
            -1, len(front.objectives)
        )
        members = np.array([front.values(t) for t in front.members])
        axes.scatter(others[:, i], others[:, j], s=16, color="0.6", label="dominated")
        axes.scatter(members[:, i], members[:, j], s=30, color="C3", zorder=3, label="front")
        if len(pairs) == 1:  # the two-objective front is a staircase: draw it
            order = np.argsort(-members[:, i])
            axes.step(members[order, i], members[order, j], where="post", color="C3", lw=0.8)
        for trial, point in zip(front.members, members):
            axes.annotate(trial.trial_id, (point[i], point[j]), fontsize=6, xytext=(3, 3),
                          textcoords="offset points")  # fmt: skip
        axes.set_xlabel(front.objectives[i])
        axes.set_ylabel(front.objectives[j])
        axes.grid(alpha=0.3)
        if k == 0:
            axes.legend(fontsize=7)
    figure.suptitle(
        title
        or f"Pareto front: {len(front.members)} of "
        f"{len(front.members) + len(front.others)} trials (all objectives maximised)",
        fontsize=9,
    )
    return save(figure, path)


def pareto_figure_name(strategy: str) -> str:
    return f"pareto_{strategy}.png"


# ----------------------------------------------------------------------- epsilon sweep
def epsilon_sweep(row: Row) -> dict[float, tuple[float, float]]:
    """``{multiple of the training epsilon: (mean accuracy, 95 % half-width)}`` of a row's
    retrains, from their ``adv/eps_<m>x_accuracy`` metrics (empty when there are none)."""
    from auxtune.robust.adversarial_eval import sweep_multiple

    names = {k for r in row.retrains for k in r.metrics}
    points = {}
    for name in names:
        multiple = sweep_multiple(name)
        bar = error_bar(row, name) if multiple is not None else None
        if multiple is not None and bar is not None:
            points[multiple] = bar
    return dict(sorted(points.items()))


def training_epsilon(comparison: Comparison, row: Row) -> float:
    """The training epsilon of a row: its override of ``adversarial.epsilon``, else the config's."""
    overrides = row.retrained.get("overrides") or {}
    return float(overrides.get("adversarial.epsilon", comparison.config["adversarial"]["epsilon"]))


def plot_epsilon_sweep(comparison: Comparison, path: Path) -> Path | None:
    """Accuracy against test epsilon, one line per row: mean over seeds and its 95 % band."""
    sweeps = {row.strategy: epsilon_sweep(row) for row in comparison.rows}
    if not any(sweeps.values()):
        return None
    figure = new_figure(6.5, 4.2)
    axes = figure.add_subplot()
    palette = colors([r.strategy for r in comparison.rows])
    for row in comparison.rows:
        points = sweeps[row.strategy]
        if not points:
            continue
        eps = training_epsilon(comparison, row)
        xs = np.array([m * eps for m in points])
        mean = np.array([p[0] for p in points.values()])
        half = np.array([p[1] for p in points.values()])
        color = palette[row.strategy]
        axes.plot(xs, mean, marker="o", ms=3, color=color, label=row.strategy)
        band = np.clip(mean - half, 0, 1), np.clip(mean + half, 0, 1)  # an accuracy stays in [0, 1]
        axes.fill_between(xs, *band, color=color, alpha=0.15, lw=0)
    epsilon = float(comparison.config["adversarial"]["epsilon"])
    axes.axvline(epsilon, color="gray", ls=":", lw=0.8)  # right of it: beyond the training radius
    axes.set_xlabel(f"test epsilon ({comparison.config['adversarial']['threat_model']})")
    axes.set_ylabel("test accuracy under PGD")
    axes.set_title(
        f"accuracy vs test epsilon, mean and 95 % band over {len(comparison.seeds)} seeds\n"
        f"(dotted: the training epsilon {epsilon:.4g})",
        fontsize=9,
    )
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7)
    return save(figure, path)


PLOTS = {
    "corruption_vs_compute.png": plot_compute,
    "per_corruption.png": plot_per_corruption,
    "per_severity.png": plot_severity,
    "lambda_trajectories.png": plot_lambdas,
    "epsilon_sweep.png": plot_epsilon_sweep,
}


def draw_all(comparison: Comparison, directory: Path) -> list[str]:
    """Write every figure that has something to show into ``directory``; their file names."""
    written = []
    for name, draw in PLOTS.items():
        if draw(comparison, directory / name) is not None:
            written.append(name)
    for row in comparison.rows:  # a multi-objective search's front, one figure per row
        if row.search is not None and row.search.front is not None:
            name = pareto_figure_name(row.strategy)
            plot_pareto(row.search.front, directory / name, f"{row.strategy} search: Pareto front")
            written.append(name)
    return written
