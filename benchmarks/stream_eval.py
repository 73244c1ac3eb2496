"""Ray Data streaming evaluation against the plain in-memory PyTorch loop, same data, same model.

19 corruptions x 5 severities x ``--per-block`` random uint8 images (content does not change the
cost of a forward pass) are written as Parquet to a temp directory; a small WRN is trained for one
epoch with the real :class:`~auxtune.robust.trainer.Trainer` and saved as a checkpoint. Then

- in memory: load the checkpoint, :func:`evaluate_in_memory` over the arrays (Ray not running;
  once before and once after the stream, the faster run counts);
- streaming: :func:`evaluate_stream` over the Parquet files on a local Ray of ``--cpus`` CPUs.

Both timings include loading the model; the streaming one also includes Ray Data's planning and
reading Parquet and, with ``--actors``, starting the actors (a new process importing torch: by
default on one machine the driver process runs the model, see :mod:`auxtune.data.streaming`).
Ray's own start-up is excluded and reported as ``ray_start_s``. The two reports must agree exactly. The machine's load average is printed:
other processes depress the numbers. Last line JSON; goal ``stream_over_inmemory >= 0.8``.

    .venv/bin/python benchmarks/stream_eval.py [--per-block 200] [--batch-size 200] [--actors 1]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from typing import Any

os.environ.setdefault("RAY_AUTH_MODE", "disabled")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--per-block", type=int, default=200, help="images per (corruption, severity)"
    )
    parser.add_argument(
        "--batch-size", type=int, default=None, help="images per forward pass (default --per-block)"
    )
    parser.add_argument(
        "--actors", type=int, default=None, help="default: the driver (CPU) / one per GPU"
    )
    parser.add_argument("--depth", type=int, default=16)
    parser.add_argument("--widen", type=int, default=2)
    parser.add_argument("--cpus", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    args.batch_size = args.batch_size or args.per_block  # the in-memory loop batches per block

    import torch

    from auxtune.data.streaming import evaluate_stream, ray_session

    workdir = tempfile.mkdtemp(prefix="auxtune-stream-bench-")
    checkpoint = _train_checkpoint(args.depth, args.widen, workdir)
    blocks = _write_blocks(f"{workdir}/parquet", args.per_block)
    images = sum(len(labels) for _, labels in blocks.values())
    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(
        f"{images} images, WRN-{args.depth}-{args.widen}, {device}, load {os.getloadavg()}",
        flush=True,
    )

    # the in-memory loop runs before and after the stream and its faster run counts: on a busy
    # machine that is the conservative choice for the ratio
    reference, before_s = _in_memory(checkpoint, blocks, device, args.batch_size)
    start = time.perf_counter()
    with ray_session(num_cpus=args.cpus):
        ray_start_s = time.perf_counter() - start
        start = time.perf_counter()
        streamed = evaluate_stream(
            checkpoint, f"{workdir}/parquet", batch_size=args.batch_size, num_actors=args.actors
        )
        stream_s = time.perf_counter() - start
    _, after_s = _in_memory(checkpoint, blocks, device, args.batch_size)
    inmemory_s = min(before_s, after_s)
    result = {
        "images": images,
        "model": f"WRN-{args.depth}-{args.widen}",
        "device": device,
        "cpus": args.cpus,
        "batch_size": args.batch_size,
        "inmemory_s": round(inmemory_s, 2),
        "inmemory_runs_s": [round(before_s, 2), round(after_s, 2)],
        "stream_s": round(stream_s, 2),
        "ray_start_s": round(ray_start_s, 2),
        "inmemory_images_per_s": round(images / inmemory_s, 1),
        "stream_images_per_s": round(images / stream_s, 1),
        "stream_over_inmemory": round(inmemory_s / stream_s, 3),
        "results_equal": streamed.correct == reference.correct
        and streamed.total == reference.total,
        "load_average": [round(x, 1) for x in os.getloadavg()],
    }
    print(json.dumps(result))


def _in_memory(checkpoint: str, blocks: dict, device: str, batch_size: int) -> tuple[Any, float]:
    """The plain loop, timed from loading the checkpoint to the last block's counts."""
    from auxtune.data.evaluation import evaluate_in_memory, load_for_inference

    start = time.perf_counter()
    model, autocast, fmt = load_for_inference(checkpoint, device)
    report = evaluate_in_memory(model, blocks, device, batch_size, autocast=autocast, fmt=fmt)
    return report, time.perf_counter() - start


def _train_checkpoint(depth: int, widen: int, workdir: str) -> str:
    """One short epoch of the real trainer on synthetic images, saved like `auxtune train` does."""
    from auxtune.data.synthetic import make_synthetic
    from auxtune.robust.checkpoint import save_checkpoint
    from auxtune.robust.config import ModelConfig, OptimConfig, TrainConfig
    from auxtune.robust.trainer import Trainer

    images, labels = make_synthetic(256, seed=0)
    cfg = TrainConfig(
        model=ModelConfig(depth=depth, widen_factor=widen),
        optim=OptimConfig(batch_size=64, epochs=1),
    )
    trainer = Trainer(cfg, images, labels, num_classes=10)
    trainer.train_epoch()
    return str(save_checkpoint(trainer, f"{workdir}/model.pt"))


def _write_blocks(out: str, per_block: int) -> dict:
    """Random blocks of all 19 corruptions by (corruption, severity), also written as Parquet."""
    import numpy as np

    from auxtune.data.corruptions import CORRUPTIONS
    from auxtune.data.parquet import write_parquet_from_arrays

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, per_block)
    severities = np.repeat(np.arange(1, 6), per_block)
    blocks = {}
    for name in CORRUPTIONS:
        images = rng.integers(0, 256, (5 * per_block, 32, 32, 3), dtype=np.uint8)
        write_parquet_from_arrays(out, name, images, np.tile(labels, 5), severities)
        for s in range(1, 6):
            blocks[name, s] = (images[(s - 1) * per_block : s * per_block], labels)
    return blocks


if __name__ == "__main__":
    main()
