"""The comparison's report directory: ``report.md``, ``results.json``, ``config.yaml`` and figures.

The directory is built under a hidden staging name beside its destination and renamed into place
only when every file is written, so an interrupted ``auxtune compare`` leaves no half report.
``report.md`` opens with the result table (:mod:`~auxtune.platform.report_tables`, also what the
command prints), then the robustness and Pareto sections (:mod:`~auxtune.platform.report_sections`),
what each row retrained, the protocol and the data, and how to reproduce the comparison.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path
from typing import Any

import yaml

from auxtune.errors import UserError
from auxtune.platform.comparison import Comparison, Row, describe_choice
from auxtune.platform.plots import draw_all, pareto_figure_name
from auxtune.platform.report_sections import (
    epsilon_section,
    masking_section,
    metric_notes,
    pareto_section,
    per_corruption_table,
    severity_table,
    versus_table,
)
from auxtune.platform.report_tables import (
    fmt_pct,
    headers,
    interval_note,
    markdown_table,
    summary_lines,
    table_rows,
)
from auxtune.robust.config import EMBEDDED_DATASETS
from auxtune.trainables.metrics import higher_is_better

REPORT_FILES = ("report.md", "results.json", "config.yaml")
DEFAULT_WORKDIR = "runs"  # TrackingConfig's default: `auxtune ui` with no flags opens its store


# ------------------------------------------------------------------------------ report.md
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
    fraction = data.get("labeled_fraction", 1.0)
    labels = (
        f"; the main loss sees {fraction:g} of the training labels (the tasks every image)"
        if fraction < 1
        else ""
    )
    if data["dataset"] in EMBEDDED_DATASETS:
        return (
            f"embedded {data['dataset']} images, {data['num_train']} train / {data['num_val']} val / "
            f"{data['holdout']} holdout / {data['num_test']} test (seed {data['seed']}){labels}"
        )
    return (
        f"{data.get('data_dir')}, {data['num_val']} val and {data['holdout']} holdout images kept "
        f"out{labels}"
    )


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
