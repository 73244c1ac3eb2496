"""Training-step time of every registered weighting, divided by the fixed-lambda step.

One WRN-16-2 with all seven heads and one optimizer are shared by every weighting; each round runs
one real ``train_step`` per weighting (the order rotates from round to round, so none always runs
first), on the same batch and meta batch. Learned weightings update every step (``meta`` without
warm-up). The report is the ratio of median step times to ``fixed``'s, in wall-clock and in process
CPU time (the latter survives other load on a shared machine better).

Goals: every weighting that needs per-task gradients (``needs_task_gradients``) <= 1.6x fixed;
``meta`` cheaper than ``auto_lambda``.

    .venv/bin/python benchmarks/weighting_step.py                  # CPU, batch 64, ~10 min on 2 cores
    .venv/bin/python benchmarks/weighting_step.py --batch 128 --steps 5 --device cuda

The last line is JSON: ``ratio`` (wall) and ``ratio_cpu`` per weighting, ``ms_per_step``, the goals.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from typing import Any

import torch

from auxtune.robust.config import ModelConfig, RuntimeConfig, TasksConfig, WeightingConfig
from auxtune.robust.device import autocast_factory, memory_format, resolve_device
from auxtune.robust.model import MultiHeadNet
from auxtune.robust.tasks import TASKS
from auxtune.robust.training import train_step
from auxtune.robust.weighting import WEIGHTINGS, StepContext, Weighting, create_weighting

NUM_CLASSES = 10
META_BATCH = 25
LR = 0.05  # a mid-schedule learning rate: alpha_t of every step
#: every learned weighting updates its lambdas at every timed step
OPTIONS: dict[str, dict[str, Any]] = {"meta": {"warmup_epochs": 0}}
MAX_RATIO = 1.6  # the goal for weightings that need per-task gradients


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=3, help="timed rounds (median)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first")
    parser.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N | auto")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads")
    parser.add_argument("--only", default=None, help="comma list of weightings (fixed is added)")
    return parser.parse_args()


def build(device: torch.device, runtime: RuntimeConfig) -> tuple[MultiHeadNet, torch.optim.SGD]:
    torch.manual_seed(0)
    model = MultiHeadNet(
        ModelConfig(depth=16, widen_factor=2), TasksConfig(names=tuple(TASKS)), NUM_CLASSES
    )
    model.to(device).to(memory_format=memory_format(runtime)).train()
    optimizer = torch.optim.SGD(
        model.parameters(), lr=LR, momentum=0.9, nesterov=True, weight_decay=5e-4
    )
    return model, optimizer


def weightings(names: list[str]) -> dict[str, Weighting]:
    return {
        name: create_weighting(WeightingConfig.create(name, **OPTIONS.get(name, {})), tuple(TASKS))
        for name in names
    }


def timed_step(
    model: MultiHeadNet,
    optimizer: torch.optim.Optimizer,
    weighting: Weighting,
    batch: tuple[torch.Tensor, torch.Tensor],
    meta: tuple[torch.Tensor, torch.Tensor],
    runtime: RuntimeConfig,
    step: int,
) -> tuple[float, float]:
    """(wall-clock, process CPU) seconds of one real ``train_step``."""
    device = batch[0].device
    ctx = StepContext(
        model,
        optimizer,
        epoch=1,
        step=step,
        meta_batch=lambda: meta,
        autocast=autocast_factory(device, runtime),
    )
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    wall, cpu = time.perf_counter(), time.process_time()
    train_step(model, optimizer, weighting, *batch, ctx)
    sync()
    return time.perf_counter() - wall, time.process_time() - cpu


def random_batch(n: int, device: torch.device, fmt: torch.memory_format) -> tuple[Any, Any]:
    images = torch.rand(n, 3, 32, 32, device=device).contiguous(memory_format=fmt)
    return images, torch.randint(NUM_CLASSES, (n,), device=device)


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    runtime = RuntimeConfig()
    fmt = memory_format(runtime)
    names = list(WEIGHTINGS) if args.only is None else ["fixed", *args.only.split(",")]
    model, optimizer = build(device, runtime)
    variants = weightings(list(dict.fromkeys(names)))
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    for round_ in range(args.warmup + args.steps):
        batch = random_batch(args.batch, device, fmt)
        meta = random_batch(META_BATCH, device, fmt)
        order = list(variants)
        shift = round_ % len(order)
        for name in order[shift:] + order[:shift]:
            seconds = timed_step(model, optimizer, variants[name], batch, meta, runtime, round_)
            print(f"round {round_} {name}: {seconds[0]:.2f} s", file=sys.stderr, flush=True)
            if round_ >= args.warmup:
                times[name].append(seconds)
    wall = {name: statistics.median(t[0] for t in ts) for name, ts in times.items()}
    cpu = {name: statistics.median(t[1] for t in ts) for name, ts in times.items()}
    ratio = {name: round(wall[name] / wall["fixed"], 3) for name in wall}
    ratio_cpu = {name: round(cpu[name] / cpu["fixed"], 3) for name in cpu}
    gradient_based = [name for name in variants if variants[name].needs_task_gradients]
    for name in variants:
        print(
            f"{name:>12}: {wall[name] * 1000:8.0f} ms wall ({ratio[name]:.2f}x), "
            f"{cpu[name] * 1000:8.0f} ms CPU ({ratio_cpu[name]:.2f}x)"
        )
    result = {
        "ratio": ratio,
        "ratio_cpu": ratio_cpu,
        "ms_per_step": {name: round(value * 1000, 1) for name, value in wall.items()},
        "goal_gradient_based_max": MAX_RATIO,
        "over_goal": sorted(name for name in gradient_based if ratio[name] > MAX_RATIO),
        "meta_cheaper_than_auto_lambda": (
            ratio["meta"] < ratio["auto_lambda"] if {"meta", "auto_lambda"} <= set(ratio) else None
        ),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "threads": torch.get_num_threads(),
        "model": "WRN-16-2",
        "tasks": list(TASKS),
        "batch": args.batch,
        "meta_batch": META_BATCH,
        "steps": args.steps,
        "load_avg_1min": os.getloadavg()[0],  # other work on the machine while this ran
        "torch": torch.__version__,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
