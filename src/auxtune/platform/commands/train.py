"""``auxtune train``: train one model locally (no Ray), print metrics per epoch, write a checkpoint."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from auxtune.errors import UserError


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train one model locally",
        description="Train one multi-head model on this machine and write a checkpoint.",
    )
    parser.add_argument("--config", help="experiment YAML (defaults apply when omitted)")
    parser.add_argument(
        "--out", default=None, help="checkpoint path (default <workdir>/train/<name>/model.pt)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from auxtune.platform.config import load_experiment
    from auxtune.robust.checkpoint import save_checkpoint
    from auxtune.robust.trainer import DivergenceError, Trainer

    exp = load_experiment(args.config, args.overrides)
    cfg = exp.train_config()
    splits, meta_source = _load_data(exp)
    out = Path(args.out or Path(exp.tracking.workdir) / "train" / exp.name / "model.pt")
    trainer = Trainer(
        cfg, splits.train.images, splits.train.labels, splits.num_classes, meta_source=meta_source
    )
    print(
        f"training WRN-{cfg.model.depth}-{cfg.model.widen_factor} on {splits.name} "
        f"({len(splits.train.labels)} images, {cfg.optim.epochs} epochs, tasks {list(cfg.tasks.names)}, "
        f"weighting {cfg.weighting.name}) on {trainer.device}"
    )
    for _ in range(cfg.optim.epochs):
        bar = tqdm(
            total=trainer.steps_per_epoch,
            desc=f"epoch {trainer.epoch + 1}",
            disable=args.no_progress,
            leave=False,
            unit="step",
        )

        def tick(_metrics: dict[str, Any], bar: Any = bar) -> None:
            bar.update()

        try:
            metrics = trainer.train_epoch(on_step=tick)
        except DivergenceError as err:
            raise UserError(str(err)) from err
        finally:
            bar.close()
        metrics["val_accuracy"] = trainer.evaluate(splits.val.images, splits.val.labels)
        print(format_metrics(metrics), flush=True)
        save_checkpoint(trainer, out)
    test_accuracy = trainer.evaluate(splits.test.images, splits.test.labels)
    print(json.dumps({"test_accuracy": round(test_accuracy, 4), "checkpoint": str(out)}))
    return 0


def _load_data(exp: Any) -> tuple[Any, Any]:
    from auxtune.data.datasets import load_dataset

    splits = load_dataset(exp.data)
    if exp.weighting.name != "meta":
        return splits, None
    from auxtune.data.meta_validation import meta_validation_stream

    stream = meta_validation_stream(
        exp.weighting.protocol, splits, exp.data, exp.weighting.meta_batch_size, exp.seed
    )
    return splits, stream


def format_metrics(metrics: dict[str, float]) -> str:
    """One line per epoch: epoch, losses, lambdas, accuracy, throughput."""
    parts = [f"epoch {int(metrics['epoch'])}"]
    for key in sorted(metrics):
        if key.startswith(("loss/", "lambda/", "hypergrad/", "meta/")) or key.endswith("accuracy"):
            parts.append(f"{key}={metrics[key]:.4g}")
    parts.append(f"lr={metrics['lr']:.3g}")
    parts.append(f"{metrics['images_per_s']:.0f} img/s")
    return "  ".join(parts)
