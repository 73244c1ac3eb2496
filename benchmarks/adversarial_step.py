"""Cost of adversarial training and of attack evaluation, each against its clean baseline.

Training: three trainers with the same initial weights and batch, timed one real ``Trainer._step``
each per round, in rotating order (median over rounds):

* clean: the ordinary multi-head step (``adversarial.train=false``);
* pgd: PGD-k adversarial training, the attack maximising the main loss (the default);
* pgd_total: the same with ``attack_loss=total`` (every PGD step runs every head).

A PGD step is a forward plus an input-gradient backward of the main batch, about one clean step's
main-head work, so the goal is ``pgd_over_clean <= (k + 1) x 1.1``.

Evaluation: PGD-``eval_steps`` accuracy (``robust_correct``: eval mode, float32, one start) against
the plain no-grad forward loop (``predict``) on the same images, labelled with the model's own
predictions so that PGD attacks every one (the evaluation skips images already misclassified);
interleaved the same way and reported
as images per second and their ratio (about 1 + eval_steps x (forward + input backward) / forward).

    .venv/bin/python benchmarks/adversarial_step.py                      # CPU: WRN-16-2, ~2 min idle
    .venv/bin/python benchmarks/adversarial_step.py --device cuda --batch 128 --rounds 20

The last line is JSON: ``pgd_over_clean`` (goal <= ``goal``), ``pgd_total_over_clean``, the same
in process CPU time, ``pgd_eval_images_per_s``, ``forward_images_per_s``, ...
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from auxtune.robust.config import (
    AdversarialConfig,
    DataConfig,
    ModelConfig,
    OptimConfig,
    RuntimeConfig,
    TasksConfig,
    TrainConfig,
)
from auxtune.robust.device import resolve_device
from auxtune.robust.pgd_eval import pgd_k, robust_correct
from auxtune.robust.trainer import Trainer, predict

NUM_CLASSES = 10


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--depth", type=int, default=16)
    parser.add_argument("--widen", type=int, default=2)
    parser.add_argument("--batch", type=int, default=64, help="training images per step")
    parser.add_argument("--k", type=int, default=10, help="PGD steps of the training attack")
    parser.add_argument("--tasks", default="rotation", help="comma list of auxiliary tasks")
    parser.add_argument("--eval-steps", type=int, default=20, help="PGD steps of the evaluation")
    parser.add_argument("--eval-images", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds (median)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    return parser.parse_args()


def make_trainer(args: argparse.Namespace, device: torch.device, **adversarial: Any) -> Trainer:
    cfg = TrainConfig(
        data=DataConfig(augment=False),  # data work, not the step's cost
        model=ModelConfig(depth=args.depth, widen_factor=args.widen),
        optim=OptimConfig(batch_size=args.batch, epochs=100),
        tasks=TasksConfig(names=tuple(t for t in args.tasks.split(",") if t)),
        runtime=RuntimeConfig(device=str(device)),
        adversarial=AdversarialConfig(steps=args.k, **adversarial),
    )
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (args.batch, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, NUM_CLASSES, args.batch)
    return Trainer(cfg, images, labels, NUM_CLASSES, device=device)


def timed(run: Callable[[], Any], device: torch.device) -> tuple[float, float]:
    """(wall-clock, process CPU) seconds of ``run()``."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    sync()
    return time.perf_counter() - wall, time.process_time() - cpu


def interleaved(
    sides: dict[str, Callable[[], Any]], device: torch.device, rounds: int, warmup: int
) -> dict[str, tuple[float, float]]:
    """Median (wall, CPU) seconds of each side, timed once per round in rotating order."""
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in sides}
    names = list(sides)
    for round_ in range(warmup + rounds):
        order = names[round_ % len(names) :] + names[: round_ % len(names)]
        seconds = {}
        for name in order:
            torch.manual_seed(round_)  # the same task and random-start draws on every side
            seconds[name] = timed(sides[name], device)
            if round_ >= warmup:
                times[name].append(seconds[name])
        kind = "warmup" if round_ < warmup else "round"
        print(f"{kind} {round_}: " + ", ".join(f"{n} {s[0]:.3f} s" for n, s in seconds.items()))
    return {
        name: (statistics.median(t[0] for t in ts), statistics.median(t[1] for t in ts))
        for name, ts in times.items()
    }


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    trainers = {
        "clean": make_trainer(args, device),
        "pgd": make_trainer(args, device, train=True),
        "pgd_total": make_trainer(args, device, train=True, attack_loss="total"),
    }
    for trainer in trainers.values():  # one initialisation for all three
        trainer.model.load_state_dict(trainers["clean"].model.state_dict())
    every = {name: torch.arange(len(t.images), device=t.device) for name, t in trainers.items()}
    steps: dict[str, Callable[[], Any]] = {  # the whole set is one batch, main and tasks alike
        name: functools.partial(t._step, every[name], every[name]) for name, t in trainers.items()
    }
    train = interleaved(steps, device, args.rounds, args.warmup)

    model = trainers["clean"].model.eval()
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (args.eval_images, 32, 32, 3), dtype=np.uint8)
    # labelled as predicted: every image is correct clean, so PGD attacks all of them (worst case)
    labels = predict(model, images, device).cpu().numpy()
    pgd = pgd_k("linf", 8 / 255, args.eval_steps)
    evaluation = interleaved(
        {
            "pgd_eval": lambda: robust_correct(model, images, labels, pgd, batch_size=256),
            "forward": lambda: predict(model, images, device, batch_size=256),
        },
        device,
        args.rounds,
        args.warmup,
    )

    wall = {name: value[0] for name, value in {**train, **evaluation}.items()}
    cpu = {name: value[1] for name, value in {**train, **evaluation}.items()}
    result = {
        "pgd_over_clean": round(wall["pgd"] / wall["clean"], 3),
        "goal": round((args.k + 1) * 1.1, 2),
        "pgd_total_over_clean": round(wall["pgd_total"] / wall["clean"], 3),
        # process CPU time: the same ratios, less sensitive to other load on the machine
        "pgd_over_clean_cpu": round(cpu["pgd"] / cpu["clean"], 3),
        "pgd_total_over_clean_cpu": round(cpu["pgd_total"] / cpu["clean"], 3),
        "ms_per_step": {n: round(1000 * wall[n], 1) for n in ("clean", "pgd", "pgd_total")},
        "k": args.k,
        f"pgd{args.eval_steps}_eval_images_per_s": round(args.eval_images / wall["pgd_eval"], 1),
        "forward_images_per_s": round(args.eval_images / wall["forward"], 1),
        "pgd_eval_over_forward": round(wall["pgd_eval"] / wall["forward"], 2),
        "pgd_eval_over_forward_cpu": round(cpu["pgd_eval"] / cpu["forward"], 2),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "threads": torch.get_num_threads(),
        "load_avg_1min": os.getloadavg()[0],  # other work on the machine while this ran
        "model": f"WRN-{args.depth}-{args.widen}",
        "tasks": args.tasks.split(","),
        "batch": args.batch,
        "rounds": args.rounds,
        "torch": torch.__version__,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
