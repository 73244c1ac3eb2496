"""What MLflow's records of a retrain cost on the driver: its model (log_model) and its datasets.

    .venv/bin/python benchmarks/log_model_cost.py [--config configs/demo.yaml] [--models 4]

Trains nothing: builds the experiment's network from its config (untrained weights weigh the
same), saves it as a checkpoint, and logs it ``--models`` times as the model of fresh runs in a
temporary SQLite store, in this one process, as the Tune driver's writer thread does for a
comparison's retrains (``auxtune.platform.tracking.log_retrained_model``: ``torch.export`` to
MLflow's pt2 format, signature, input example). The first call pays the imports of torch.export
and MLflow's model code. Then the dataset inputs of one run (the experiment's splits, the
corrupted validation and test sets) are timed. The last line is one JSON object: seconds of the
first and of each later log_model, the datasets' seconds, the model's size and the load average
(other jobs on the machine stretch every number).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from auxtune.platform import tracking
from auxtune.platform.config import load_experiment
from auxtune.platform.tracking.models import CHECKPOINT_FILE


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="configs/demo.yaml")
    parser.add_argument("--models", type=int, default=4, help="log_model calls (>= 2)")
    args = parser.parse_args()
    exp = load_experiment(args.config)
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = write_checkpoint(exp, Path(tmp, "checkpoint"))
        target = tracking.resolve_tracking(Path(tmp, "store"))
        client = tracking.client(target.uri)
        experiment = tracking.ensure_experiment(client, "cost", target)
        seconds = []
        for n in range(args.models):
            run_id = client.create_run(experiment, run_name=f"retrain-{n}").info.run_id
            start = time.perf_counter()
            tracking.log_retrained_model(client, run_id, checkpoint)
            seconds.append(time.perf_counter() - start)
        start = time.perf_counter()
        records = tracking.experiment_datasets(exp.train_config().data)
        tracking.log_datasets(client, run_id, records)
        datasets_s = time.perf_counter() - start
        size = sum(p.stat().st_size for p in Path(tmp, "store").rglob("*") if p.is_file())
    result = {
        "config": args.config,
        "first_log_model_s": round(seconds[0], 2),
        "later_log_model_s": [round(s, 2) for s in seconds[1:]],
        "datasets_s": round(datasets_s, 3),
        "datasets": len(records),
        "store_bytes_per_model": size // args.models,
        "load_avg_1min": round(os.getloadavg()[0], 1),
    }
    print(json.dumps(result))


def write_checkpoint(exp, directory: Path) -> Path:
    """A retrain's Tune checkpoint directory (``trainer.pt``) for the experiment's network."""
    import numpy as np

    from auxtune.robust.checkpoint import save_checkpoint
    from auxtune.robust.trainer import Trainer

    cfg = exp.train_config()
    images = np.zeros((cfg.optim.batch_size, 32, 32, 3), np.uint8)
    labels = np.zeros(cfg.optim.batch_size, np.int64)
    trainer = Trainer(cfg, images, labels, num_classes=10)
    save_checkpoint(trainer, directory / CHECKPOINT_FILE)
    return directory


if __name__ == "__main__":
    main()
