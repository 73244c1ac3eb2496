"""``auxtune train``: train one model locally (no Ray), print metrics per epoch, write a checkpoint.

The run is recorded in MLflow (experiment ``<name>-train``: params, per-epoch metrics, the data,
the lambda trajectory and the trained model) unless ``--no-mlflow``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from auxtune.errors import UserError
from auxtune.platform.commands import add_mlflow_flags


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train one model locally",
        description="Train one multi-head model on this machine, write a checkpoint and record "
        "the run in MLflow.",
    )
    parser.add_argument("--config", help="experiment YAML (defaults apply when omitted)")
    parser.add_argument(
        "--out", default=None, help="checkpoint path (default <workdir>/train/<name>/model.pt)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_mlflow_flags(parser)
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import sys

    from auxtune.data._files import save_json
    from auxtune.data.experiment import prepare_experiment_data
    from auxtune.data.meta_validation import meta_validation_source
    from auxtune.platform import tracking
    from auxtune.platform.config import load_experiment
    from auxtune.platform.outputs import check_writable
    from auxtune.platform.preflight import check_run_here, memory_errors_as_user_errors
    from auxtune.robust import adversarial_eval
    from auxtune.robust.checkpoint import save_checkpoint
    from auxtune.robust.trainer import Trainer
    from auxtune.trainables.robustness import gold_stage_one, ood_epoch_metrics, ood_final_metrics

    exp = load_experiment(args.config, args.overrides)
    cfg = exp.train_config()
    # everything that could fail after training fails now: the model's place, device, data, store
    out = check_writable(
        args.out or _default_out(exp), "--out" if args.out else "checkpoint under tracking.workdir"
    )
    for note in check_run_here(exp):
        print(note, file=sys.stderr)
    experiment = prepare_experiment_data(cfg)  # OOD classes held out, labels corrupted
    splits = experiment.splits
    meta_source = meta_validation_source(cfg, splits)
    # the store last: opening a local one creates it, and a refused input must leave nothing behind
    store = None
    if not args.no_mlflow:
        store = tracking.open_store(
            exp.tracking.workdir, args.tracking_uri or exp.tracking.tracking_uri
        )
    if experiment.label_noise is not None:
        print(experiment.label_noise.summary())
        save_json(out.parent / "label_noise.json", experiment.label_noise.to_dict())
    with memory_errors_as_user_errors():  # a model or batch too big for this machine: one line
        if cfg.label_noise.correction == "glc":
            print(f"GLC stage 1: {cfg.optim.epochs} epochs on the untrusted images, then C_hat")
        corruption, final = gold_stage_one(
            cfg, experiment, meta_source, on_epoch=lambda m: print("  stage 1 " + format_metrics(m))
        )
        trainer = Trainer(
            cfg,
            splits.train.images,
            splits.train.labels,
            splits.num_classes,
            meta_source=meta_source,
            trusted=experiment.trusted,
            corruption_matrix=corruption,
        )
        print(
            f"training WRN-{cfg.model.depth}-{cfg.model.widen_factor} on {splits.name} "
            f"({_images_text(splits.train.labels)}, {cfg.optim.epochs} epochs, tasks "
            f"{list(cfg.tasks.names)}, weighting {describe_weighting(trainer.weighting)}) "
            f"on {trainer.device}"
        )
        with tracking.start_run(
            store,
            f"{exp.name}-train",
            f"train-{cfg.weighting.name}-seed{cfg.seed}",
            kind="train",
            description=f"`auxtune train` runs of experiment {exp.name!r}, one run per command.",
            params=train_params(cfg),
            datasets=tracking.split_datasets(cfg.data, splits),
        ) as record:
            history = []
            for _ in range(cfg.optim.epochs):
                metrics = _train_epoch(trainer, args.no_progress)
                metrics["val_accuracy"] = trainer.evaluate(splits.val.images, splits.val.labels)
                metrics.update(
                    adversarial_eval.epoch_metrics(trainer.model, splits.val, cfg.adversarial)
                )
                metrics.update(ood_epoch_metrics(trainer, cfg, experiment))
                print(format_metrics(metrics), flush=True)
                save_checkpoint(trainer, out)
                record.log_metrics(metrics, step=trainer.epoch)
                history.append(metrics)
            final["test_accuracy"] = trainer.evaluate(splits.test.images, splits.test.labels)
            final.update(
                adversarial_eval.final_metrics(trainer.model, splits.test, cfg.adversarial)
            )
            final.update(ood_final_metrics(trainer, cfg, experiment))
            record.log_metrics(final, step=trainer.epoch)
            record.log_artifacts(train_artifacts(cfg, history, exp.name))
            record.log_model(out, example_images=splits.test.images, step=trainer.epoch)
    # the last line holds every final metric (benchmarks/robustness_presets.py reads it)
    print(json.dumps({**{k: round(v, 4) for k, v in final.items()}, "checkpoint": str(out)}))
    if record.run_id:
        print(record.describe())
    return 0


def _default_out(exp: Any) -> Path:
    """``<tracking.workdir>/train/<name>/model.pt`` (the name is one safe path component)."""
    return Path(exp.tracking.workdir).expanduser() / "train" / exp.name / "model.pt"


def describe_weighting(weighting: Any) -> str:
    """``meta (meta-validation batches, per-task gradients)``: the name and what it costs."""
    needs = [
        text
        for need, text in (
            (weighting.needs_meta_batch, "meta-validation batches"),
            (weighting.needs_task_gradients, "per-task gradients"),
        )
        if need
    ]
    return weighting.name + (f" ({', '.join(needs)})" if needs else "")


def _train_epoch(trainer: Any, quiet: bool) -> dict[str, Any]:
    """One epoch with a progress bar of its steps; a diverged loss is one line for the user."""
    from tqdm import tqdm

    from auxtune.robust.trainer import DivergenceError

    bar = tqdm(
        total=trainer.steps_per_epoch,
        desc=f"epoch {trainer.epoch + 1}",
        disable=quiet,
        leave=False,
        unit="step",
    )
    try:
        return dict(trainer.train_epoch(on_step=lambda _metrics: bar.update()))
    except DivergenceError as err:
        raise UserError(str(err)) from err
    finally:
        bar.close()


def train_params(cfg: Any) -> dict[str, str]:
    """The run's params: the resolved training config, each task's initial lambda, versions."""
    from auxtune.config import to_dict
    from auxtune.platform import tracking

    params = tracking.as_params(to_dict(cfg), "train.")
    initial = cfg.weighting.initial_lambdas(cfg.tasks.names)
    params.update({f"lambda/{task}": str(value) for task, value in initial.items()})
    params.update({f"version.{k}": v for k, v in tracking.library_versions().items()})
    return params


def train_artifacts(cfg: Any, history: list[dict[str, Any]], name: str) -> dict[str, bytes | str]:
    """The resolved config and the lambda trajectory, as the run's artifacts."""
    import yaml

    from auxtune.config import to_dict
    from auxtune.platform.svg import lambda_trajectory_svg

    title = f"{name}: {cfg.weighting.name} weighting, seed {cfg.seed}"
    return {
        "config.yaml": yaml.safe_dump(to_dict(cfg), sort_keys=False),
        "lambda_trajectory.svg": lambda_trajectory_svg(history, title),
    }


def format_metrics(metrics: dict[str, float]) -> str:
    """One line per epoch: epoch, losses, lambdas (and what else the weighting reports), accuracy,
    throughput."""
    parts = [f"epoch {int(metrics['epoch'])}"]
    for key in sorted(metrics):
        if ("/" in key and not key.startswith("time/")) or key.endswith(("accuracy", "auroc")):
            parts.append(f"{key}={metrics[key]:.4g}")
    parts.append(f"lr={metrics['lr']:.3g}")
    parts.append(f"{metrics['images_per_s']:.0f} img/s")
    return "  ".join(parts)


def _images_text(labels: Any) -> str:
    """'1500 images', or with few labels '1500 images, 75 of them labelled'."""
    labelled = int((labels >= 0).sum())
    if labelled == len(labels):
        return f"{len(labels)} images"
    return f"{len(labels)} images, {labelled} of them labelled"
