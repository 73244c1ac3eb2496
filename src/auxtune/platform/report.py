"""The comparison's report directory: ``report.md``, ``results.json``, ``config.yaml`` and figures.

The directory is built under a hidden staging name beside its destination and renamed into place
only when every file is written, so an interrupted ``auxtune compare`` leaves no half report.

    >>> fmt_pct(0.2345, 0.0123)
    '23.45 ± 1.23'
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from auxtune.errors import UserError
from auxtune.platform.plots import SEARCH_METRIC, draw_all

if TYPE_CHECKING:
    from auxtune.platform.compare import Comparison, StrategyOutcome

REPORT_FILES = ("report.md", "results.json", "config.yaml")
DEFAULT_WORKDIR = "runs"  # TrackingConfig's default: `auxtune ui` with no flags opens its store


# ------------------------------------------------------------------------------ formatting
def ui_hint(tracking_uri: str) -> str:
    """The command that browses ``tracking_uri`` in the MLflow UI, and where to point a browser."""
    from auxtune.platform.tracking import resolve_tracking

    if tracking_uri.startswith(("http://", "https://")):  # a server has its own UI
        return f"open {tracking_uri} in a browser"
    command = "auxtune ui --port 5000"
    if tracking_uri != resolve_tracking(DEFAULT_WORKDIR).uri:
        command += f" --tracking-uri {tracking_uri}"
    return f"{command}   # then open http://127.0.0.1:5000"


def fmt_pct(mean: float | None, std: float | None = None) -> str:
    """Accuracy in percent with its std over seeds (``n/a`` when missing)."""
    if mean is None:
        return "n/a"
    return f"{100 * mean:.2f}" + ("" if std is None else f" ± {100 * std:.2f}")


def fmt_s(seconds: float | None, digits: int = 1) -> str:
    return "n/a" if seconds is None else f"{seconds:.{digits}f}"


HEADERS = (
    "strategy", "retrained lambdas", "clean acc %", "c15 acc %", "c19 acc %",
    "trials", "trial-epochs", "search wall s", "trial s", "s/step",
)  # fmt: skip


def table_rows(comparison: Comparison) -> list[list[str]]:
    """One row per strategy, the cells of :data:`HEADERS`."""
    from auxtune.platform.compare import describe_choice

    steps = comparison.step_seconds()
    rows = []
    for o in comparison.strategies:
        rows.append(
            [
                o.strategy,
                describe_choice(o.retrained),
                fmt_pct(*o.stat("clean_accuracy")),
                fmt_pct(*o.stat("c15")),
                fmt_pct(*o.stat("c19")),
                str(len(o.search.trials)),
                str(o.search.trial_epochs),
                fmt_s(o.search.wall_s),
                fmt_s(o.trial_seconds),
                fmt_s(steps.get(o.strategy), 4),
            ]
        )
    return rows


def format_table(comparison: Comparison) -> str:
    """The result table as aligned plain text (what the command prints)."""
    rows = [list(HEADERS), *table_rows(comparison)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADERS))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(headers: list[str] | tuple[str, ...], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell.replace("|", "/") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def summary_lines(comparison: Comparison) -> list[str]:
    """The headline sentences: who won, by how much, and what the meta-gradient cost."""
    lines = []
    best = comparison.best()
    if best is not None:
        mean, std = best.stat("c15")
        lines.append(
            f"Highest mean 15-corruption accuracy: **{best.strategy}**, {fmt_pct(mean, std)} % "
            f"over {len(best.values('c15'))} seed(s). Differences smaller than the std over seeds "
            "are not evidence of a better strategy."
        )
    meta = comparison.step_seconds().get("meta")
    extra = comparison.meta_extra_step_seconds()
    if meta is not None and extra is not None:
        base = meta - extra
        lines.append(
            f"A meta-gradient step took {meta:.4f} s against {base:.4f} s for a fixed-lambda "
            f"step (median of the other strategies): {extra:+.4f} s per step "
            f"({meta / base:.2f}x), so equal trial-epochs are not equal seconds."
        )
    return lines


def per_corruption_table(comparison: Comparison) -> str:
    from auxtune.data.corruptions import CORRUPTIONS, STANDARD_CORRUPTIONS

    tables = {o.strategy: o.per_corruption() for o in comparison.strategies}
    present = {c for t in tables.values() for c in t}
    names = [c for c in CORRUPTIONS if c in present] + sorted(present - set(CORRUPTIONS))
    rows = []
    for name in names:
        label = name if name in STANDARD_CORRUPTIONS else f"{name} (extra)"
        cells = [fmt_pct(*tables[s][name]) if name in tables[s] else "n/a" for s in tables]
        rows.append([label, *cells])
    return markdown_table(["corruption", *tables], rows)


def choice_lines(outcome: StrategyOutcome) -> str:
    from auxtune.platform.compare import describe_choice

    search = outcome.search
    return (
        f"- **{outcome.strategy}**: {outcome.how}: {describe_choice(outcome.retrained)}. "
        f"Search: {len(search.trials)} trials, {search.trial_epochs} trial-epochs, "
        f"best {SEARCH_METRIC} {fmt_pct(search.best.metrics.get(SEARCH_METRIC))} %; "
        f"MLflow run `{search.parent_run_id}`, Tune results `{search.results_path}`."
    )


def render_markdown(comparison: Comparison, figures: list[str]) -> str:
    """The whole ``report.md``."""
    c = comparison
    cfg = c.config
    data, optim, weighting = cfg["data"], cfg["optim"], cfg["weighting"]
    seeds = ", ".join(map(str, c.seeds))
    clean_key = _clean_source(c)
    parts = [
        f"# Weighting strategies at equal compute: {c.name}",
        "",
        f"{c.created} · dataset `{c.dataset}` · protocol `{c.protocol}` · budget "
        f"{c.budget_trial_epochs} trial-epochs per strategy · seeds {seeds} · whole run {c.wall_s:.0f} s",
        "",
        f"Each strategy searched the lambdas of the tasks {', '.join(cfg['tasks']['names'])} with the "
        f"same budget of {c.budget_trial_epochs} trial-epochs (one trial training one epoch), "
        f"maximising `{SEARCH_METRIC}` (validation images under the 4 extra corruptions; the 15 "
        f"test corruptions are never seen). The best configuration of each was retrained from "
        f"scratch for {optim['epochs']} epochs with each seed and evaluated on the corrupted test "
        f"set: c15 is the mean over the 15 standard corruptions x 5 severities (the headline), "
        f"c19 adds the 4 extra ones (the seed paper's number). Accuracies are mean ± sample std "
        f"over seeds; clean accuracy is `{clean_key}`. Search seconds are wall clock; trial s sums "
        f"the seconds each trial was busy; s/step is the median training step of the search trials.",
        "",
        markdown_table(HEADERS, table_rows(c)),
        "",
        *[f"{line}\n" for line in summary_lines(c)],
        "## What each strategy retrained",
        "",
        *[choice_lines(o) for o in c.strategies],
        "",
        f"Retrains: {len(c.strategies) * len(c.seeds)} runs, {c.retrain_wall_s:.0f} s wall clock.",
        "",
        "## Per-corruption test accuracy (%), mean ± std over seeds",
        "",
        per_corruption_table(c),
        "",
    ]
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
        f"- meta-gradient: warm-up {weighting['warmup_epochs']} epoch(s), meta batch "
        f"{weighting['meta_batch_size']}, update every {weighting['update_every']} step(s)",
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
        f"`{c.mlflow_run_id}` (every search's parent run is nested under it). Browse it with",
        "",
        "```",
        ui_hint(c.tracking_uri),
        "```",
        "",
    ]
    return "\n".join(parts)


def _clean_source(comparison: Comparison) -> str:
    from auxtune.platform.compare import CLEAN_KEYS

    for key in CLEAN_KEYS:
        if any(
            key in r.history[-1] for o in comparison.strategies for r in o.retrains if r.history
        ):
            return f"{key} at the end of training"
    return "not reported"


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
    """``results.json``: the whole comparison plus the derived numbers of the table."""
    data = _finite(dataclasses.asdict(comparison))
    data["protocol"], data["dataset"] = comparison.protocol, comparison.dataset
    steps = comparison.step_seconds()
    for entry, outcome in zip(data["strategies"], comparison.strategies):
        entry["summary"] = _finite(
            {
                key: dict(zip(("mean", "std"), outcome.stat(key)))
                for key in ("clean_accuracy", "c15", "c19")
            }
            | {
                "per_corruption": {
                    c: {"mean": m, "std": s} for c, (m, s) in outcome.per_corruption().items()
                },
                "trial_seconds": outcome.trial_seconds,
                "step_seconds": steps.get(outcome.strategy),
            }
        )
    data["meta_extra_step_seconds"] = comparison.meta_extra_step_seconds()
    best = comparison.best()
    data["best_strategy"] = best.strategy if best else None
    return data


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
    """Refuse a destination that exists and is neither empty nor an earlier report."""
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
