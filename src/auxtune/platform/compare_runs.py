"""What a comparison records in MLflow: one experiment per comparison, the comparison run, a run
per row that is not searched (a searched strategy's row is its search's parent run), and at the
end each row's means and paired differences, the report as artifacts and the leading row's model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from pathlib import Path
from typing import Any

from auxtune.platform import invocation, tracking
from auxtune.platform.compare_plan import ComparePlan
from auxtune.platform.comparison import Comparison, Row
from auxtune.platform.config import ExperimentConfig
from auxtune.platform.tracking.lifecycle import open_run

Say = Callable[[str], None]  # one progress line for the console


def describe_comparison(exp: ExperimentConfig, plan: ComparePlan, command: str) -> str:
    return (
        f"auxtune compare: {', '.join(plan.rows)} on {exp.data.dataset} "
        f"({plan.budget} trial-epochs per searched strategy, seeds "
        f"{', '.join(map(str, plan.seeds))}), each row against {exp.compare.reference} by "
        f"{exp.compare.metric}." + (f"\n\n`{command}`" if command else "")
    )


def open_compare_run(
    client: Any, experiment_id: str, exp: ExperimentConfig, plan: ComparePlan, command: str
) -> AbstractContextManager[str]:
    params = {
        "strategies": ",".join(plan.rows),
        "budget_trial_epochs": str(plan.budget),
        "seeds": ",".join(map(str, plan.seeds)),
        "command": command,
    }
    params.update(tracking.as_params(exp.to_dict(), "config."))
    params.update({f"version.{k}": v for k, v in tracking.library_versions().items()})
    return open_run(
        client,
        experiment_id,
        run_name=f"compare-{datetime.now().strftime('%Y%m%d-%H%M%S')}",
        tags={
            "auxtune.kind": "compare",
            tracking.NOTE_TAG: describe_comparison(exp, plan, command),
            **invocation.source_tags(),
        },
        params=params,
    )


def create_row_run(
    client: Any,
    experiment_id: str,
    compare_run: str,
    row: str,
    exp: ExperimentConfig,
    datasets: Sequence[tracking.DatasetRecord] = (),
) -> str:
    """The run of a row that is not searched (baseline, a variant) under the comparison run."""
    overrides = exp.compare.overrides(row)
    run = client.create_run(
        experiment_id,
        run_name=row,
        tags={
            tracking.PARENT_TAG: compare_run,
            "auxtune.kind": "row",
            "auxtune.strategy": row,
            **invocation.source_tags(),
        },
    )
    tracking.log_datasets(client, run.info.run_id, datasets)
    params = {"strategy": row, **{f"override.{k}": str(v) for k, v in overrides.items()}}
    tracking.log_batch(client, run.info.run_id, params=params)
    return str(run.info.run_id)


def finish_runs(client: Any, comparison: Comparison, out: Path, say: Say) -> None:
    """Each row's retrain means and paired differences on its run and on the comparison run
    (``<row>/c15_accuracy``, ...), the report as the comparison run's artifacts."""
    summary: dict[str, float] = {"wall_s": comparison.wall_s}
    for row in comparison.rows:
        metrics: dict[str, float] = {}
        for metric in comparison.metrics:
            found = row.estimate(metric)
            if found is not None:
                metrics[metric] = found.mean
                if found.half_width is not None:
                    metrics[f"{metric}_ci95_half"] = found.half_width
            diff = comparison.versus_reference(row, metric)
            if diff is not None:
                metrics[f"{metric}_vs_{comparison.reference}"] = diff.mean_diff
        metrics["trial_epochs"] = float(row.trial_epochs)
        metrics["budget_trial_epochs"] = float(row.budget_trial_epochs)
        if row.mlflow_run_id:
            tracking.log_batch(client, row.mlflow_run_id, metrics=metrics)
            if row.search is None:
                client.set_terminated(row.mlflow_run_id, "FINISHED")
        summary.update({f"{row.strategy}/{k}": v for k, v in metrics.items()})
    leader = comparison.leader()
    tags = {"best_strategy": leader[0].strategy} if leader else {}
    if leader:
        tags.update(register_best(client, comparison, leader[0], say))
    run_id = str(comparison.mlflow_run_id)
    tracking.log_batch(client, run_id, metrics=summary, tags=tags)
    client.log_artifacts(run_id, str(out))
    client.set_terminated(run_id, "FINISHED")


def register_best(client: Any, comparison: Comparison, row: Row, say: Say) -> dict[str, str]:
    """The leading row's best seed's model as a new version of ``<name>-best`` (alias ``best``)."""
    metric = comparison.metric
    seeds = [r for r in row.retrains if r.mlflow_run_id and r.value(metric) is not None]
    if not seeds:
        return {}
    best = max(seeds, key=lambda r: r.value(metric) or 0.0)
    name = f"{comparison.name}-best"
    description = (
        f"{row.strategy} ({row.how}), seed {best.seed}: {metric} {best.value(metric):.4f}; the "
        f"leading row of comparison {comparison.mlflow_run_id}"
    )
    try:
        version = tracking.register_best_model(
            client, str(best.mlflow_run_id), name, description=description
        )
    except ValueError as err:  # its model was not logged (see the run's records_error tag)
        say(f"no model registered: {err}")
        return {}
    say(f"registered {name} version {version} (models:/{name}@{tracking.BEST_ALIAS})")
    return {"best_model": f"{name}/{version}"}
