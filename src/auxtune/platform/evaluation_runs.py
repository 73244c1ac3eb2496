"""``auxtune evaluate`` in MLflow: one run per evaluation, in the experiment ``<model>-evaluate``.

The run holds what was evaluated (params: the checkpoint, the protocol, the images per block),
the corrupted test set as its dataset (directory, manifest), the accuracies under the names a
trial reports them (``c15_accuracy``, ``c19_accuracy``, ``c15_s<k>_accuracy``, ``c/<corruption>``)
and the evaluation table (``evaluation.txt``, ``evaluation.json``) as artifacts. ``<model>`` is the
checkpoint's directory (``runs/train/demo/model.pt`` -> ``demo-evaluate``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from auxtune.platform import tracking


def evaluation_store(args: argparse.Namespace) -> tracking.TrackingTarget | None:
    """The store the evaluation goes to, checked before any work; None with ``--no-mlflow``."""
    if args.no_mlflow:
        return None
    from auxtune.platform.config import TrackingConfig

    return tracking.open_store(TrackingConfig().workdir, args.tracking_uri)


def record_evaluation(
    store: tracking.TrackingTarget | None,
    args: argparse.Namespace,
    report: Any | None,
    extra_metrics: dict[str, float] | None = None,
) -> str:
    """The evaluation's run (a corruption ``report`` and/or ``extra_metrics``: accuracy under
    attack, OOD detection); returns the line that says where it is."""
    checkpoint = Path(args.checkpoint).resolve()
    model = checkpoint.parent.name or checkpoint.stem
    corruptions = Path(args.corruptions).resolve() if report is not None else None
    what = corruptions.name if corruptions is not None else "test-split"
    with tracking.start_run(
        store,
        f"{model}-evaluate",
        f"evaluate-{what}-{args.protocol}",
        kind="evaluate",
        description=f"`auxtune evaluate` runs of the checkpoints in {checkpoint.parent}.",
        params={
            "checkpoint": str(checkpoint),
            "corruptions": str(corruptions or ""),
            "protocol": args.protocol,
            "images_per_block": str(args.images_per_block),
            "batch_size": str(args.batch_size),
            "attacks": str(getattr(args, "attack", None) or ""),
            "ood": ",".join(getattr(args, "ood", None) or []),
        },
        datasets=(
            [tracking.directory_dataset(corruptions, corruptions.name, "test")]
            if corruptions is not None
            else []
        ),
        tags={tracking.CHECKPOINT_TAG: str(checkpoint)},
    ) as run:
        run.log_metrics({**(evaluation_metrics(report) if report else {}), **(extra_metrics or {})})
        if report is not None:
            run.log_artifacts(
                {
                    "evaluation.txt": report.format_table() + "\n",
                    "evaluation.json": json.dumps(report.to_dict(), indent=1, default=str),
                }
            )
    return run.describe()


def evaluation_metrics(report: Any) -> dict[str, float]:
    """A :class:`~auxtune.data.evaluation.CorruptionReport` under the names trials report."""
    metrics = {f"c/{name}": value for name, value in report.corruption_accuracy().items()}
    for severity, value in report.severity_means().items():
        metrics[f"c15_s{severity}_accuracy"] = value
    means = {
        "c15_accuracy": report.mean_15,
        "c19_accuracy": report.mean_19,
        "c_present_accuracy": report.mean_present,
        "clean_test_accuracy": report.clean,
    }
    metrics.update({key: value for key, value in means.items() if value is not None})
    return metrics
