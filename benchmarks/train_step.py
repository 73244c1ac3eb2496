"""Step time of the trainer against a hand-written PyTorch loop of the same model (goal: <= 1.05).

Both sides train their own copy of one ``MultiHeadNet`` (same initial weights, same uint8 batch,
same random draws: the global seed is reset before every step) and are timed one step each per
round, in alternating order; the report is the ratio of the median step times.

* trainer: the real ``Trainer._step`` (uint8 -> float input, ``StepContext``, ``train_step`` with the
  fixed weighting's backward, SGD, the cosine schedule), with the runtime's bf16 autocast on CUDA
  and channels_last;
* plain: the same math written inline below: the model's modules and the tasks' own transforms and
  losses, but no auxtune training code.

Random crop/flip is off on both sides (``data.augment=false``): it is data work, not trainer cost.
As a check that both sides do the same work, their total losses are compared step by step.

    .venv/bin/python benchmarks/train_step.py              # CPU: WRN-16-2, rotation, ~1 min idle
    .venv/bin/python benchmarks/train_step.py --tasks all  # all seven heads (~15 s a step on 2 CPUs)
    .venv/bin/python benchmarks/train_step.py --depth 40 --widen 2 --device cuda --steps 50

The last line is JSON: ``trainer_over_plain`` (goal <= 1.05), ``images_per_s`` (trainer), ...
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from auxtune.robust.config import (
    DataConfig,
    ModelConfig,
    OptimConfig,
    RuntimeConfig,
    TasksConfig,
    TrainConfig,
    WeightingConfig,
)
from auxtune.robust.device import resolve_device
from auxtune.robust.model import MultiHeadNet
from auxtune.robust.tasks import TASKS
from auxtune.robust.trainer import Trainer

NUM_CLASSES = 10
LAMBDA = 0.5  # every task's weight (the fixed weighting's default)
CPU_DEFAULT_TASKS = ("rotation",)  # the decoder heads make a CPU step ~5x longer; --tasks all


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--depth", type=int, default=16)
    parser.add_argument("--widen", type=int, default=2)
    parser.add_argument("--base-width", type=int, default=16, help="WRN stem channels")
    parser.add_argument("--decoder-width", type=int, default=256, help="the decoders' first width")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--tasks", default=None, help="comma list or 'all' (default: all on CUDA)")
    parser.add_argument(
        "--steps", type=int, default=None, help="timed rounds (default 5 CPU, 50 GPU)"
    )
    parser.add_argument("--warmup", type=int, default=None, help="untimed rounds (default 1, 10)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    return parser.parse_args()


def choose_tasks(arg: str | None, device: torch.device) -> tuple[str, ...]:
    if arg is None:
        return tuple(TASKS) if device.type == "cuda" else CPU_DEFAULT_TASKS
    if arg == "all":
        return tuple(TASKS)
    return tuple(t for t in arg.split(",") if t)


def make_trainer(args: argparse.Namespace, tasks: tuple[str, ...], device: torch.device) -> Trainer:
    cfg = TrainConfig(
        data=DataConfig(augment=False),
        model=ModelConfig(depth=args.depth, widen_factor=args.widen, base_width=args.base_width),
        optim=OptimConfig(batch_size=args.batch, epochs=100),  # a long schedule: lr stays high
        tasks=TasksConfig(names=tasks, decoder_width=args.decoder_width),
        weighting=WeightingConfig(init_lambda=LAMBDA),
        runtime=RuntimeConfig(device=str(device)),
    )
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (args.batch, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, NUM_CLASSES, args.batch)
    return Trainer(cfg, images, labels, NUM_CLASSES, device=device)


class PlainLoop:
    """The step a PyTorch user would write by hand for the same model, optimizer and schedule."""

    def __init__(self, trainer: Trainer) -> None:
        cfg, device = trainer.cfg, trainer.device
        on_cuda = device.type == "cuda"
        self.fmt = trainer.memory_format  # what a PyTorch user would pick: channels_last
        self.dtype = torch.bfloat16 if on_cuda else None
        self.device_type = device.type
        self.model = MultiHeadNet(cfg.model, cfg.tasks, NUM_CLASSES).to(device)
        self.model.to(memory_format=self.fmt).train()
        self.model.load_state_dict(trainer.model.state_dict())
        self.optimizer = torch.optim.SGD(
            self.model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4
        )
        total_steps = cfg.optim.epochs * trainer.steps_per_epoch
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
            self.optimizer, T_max=total_steps, eta_min=1e-6
        )

    def step(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        model = self.model
        x = images.permute(0, 3, 1, 2).float().div_(255).contiguous(memory_format=self.fmt)
        self.optimizer.zero_grad(set_to_none=True)
        with torch.autocast(self.device_type, dtype=self.dtype, enabled=self.dtype is not None):
            logits = model.classifier(model.backbone.forward_features(x))
            loss = F.cross_entropy(logits.float(), labels)
            for name in model.tasks:
                task = model.task(name)  # typed: ModuleDict values are plain Modules
                inputs, targets = task.make_inputs(x)
                prediction = task(model.backbone.forward_features(inputs))
                loss = loss + LAMBDA * task.loss(prediction, targets)
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        return loss.detach()


def timed(run: Callable[[], Any], device: torch.device) -> tuple[float, float, Any]:
    """(wall-clock, process CPU) seconds of ``run()``, and its result."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    wall, cpu = time.perf_counter(), time.process_time()
    out = run()
    sync()
    return time.perf_counter() - wall, time.process_time() - cpu, out


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    on_cuda = device.type == "cuda"
    steps = args.steps if args.steps is not None else (50 if on_cuda else 5)
    warmup = args.warmup if args.warmup is not None else (10 if on_cuda else 1)
    tasks = choose_tasks(args.tasks, device)

    trainer = make_trainer(args, tasks, device)
    plain = PlainLoop(trainer)
    images, labels = trainer.images, trainer.labels
    every = torch.arange(len(images), device=images.device)

    def total_loss(metrics: dict[str, torch.Tensor]) -> torch.Tensor:  # untimed: the check only
        return metrics["loss/main"] + LAMBDA * sum(metrics[f"loss/{t}"] for t in tasks)

    sides: dict[str, Callable[[], Any]] = {
        "trainer": lambda: trainer._step(every, every),  # the whole set is one batch
        "plain": lambda: plain.step(images, labels),
    }
    times: dict[str, list[float]] = {name: [] for name in sides}
    cpu_times: dict[str, list[float]] = {name: [] for name in sides}
    losses: dict[str, list[torch.Tensor]] = {name: [] for name in sides}
    for round_ in range(warmup + steps):
        order = list(sides) if round_ % 2 == 0 else list(reversed(sides))
        this_round = {}
        for name in order:
            torch.manual_seed(round_)  # the same transform draws on both sides
            this_round[name], cpu, out = timed(sides[name], device)
            if round_ >= warmup:
                times[name].append(this_round[name])
                cpu_times[name].append(cpu)
                losses[name].append(total_loss(out) if name == "trainer" else out)
        kind = "warmup" if round_ < warmup else "round"
        print(f"{kind} {round_}: " + ", ".join(f"{n} {s:.3f} s" for n, s in this_round.items()))

    median = {name: statistics.median(t) for name, t in times.items()}
    median_cpu = {name: statistics.median(t) for name, t in cpu_times.items()}
    diffs = [
        abs(float(a) - float(b)) / abs(float(b)) for a, b in zip(losses["trainer"], losses["plain"])
    ]
    result = {
        "trainer_over_plain": round(median["trainer"] / median["plain"], 4),
        "images_per_s": round(args.batch / median["trainer"], 1),
        "plain_images_per_s": round(args.batch / median["plain"], 1),
        # process CPU time: the overhead measure that survives a busy shared machine
        "trainer_over_plain_cpu": round(median_cpu["trainer"] / median_cpu["plain"], 4),
        "trainer_ms": round(1000 * median["trainer"], 2),
        "plain_ms": round(1000 * median["plain"], 2),
        "max_loss_rel_diff": max(diffs),
        "device": torch.cuda.get_device_name(device) if on_cuda else "cpu",
        "threads": torch.get_num_threads(),
        "load_avg_1min": os.getloadavg()[0],  # other work on the machine while this ran
        "model": f"WRN-{args.depth}-{args.widen}"
        + (f" (base width {args.base_width})" if args.base_width != 16 else ""),
        "tasks": list(tasks),
        "batch": args.batch,
        "steps": steps,
        "bf16": on_cuda,
        "channels_last": trainer.memory_format == torch.channels_last,
        "torch": torch.__version__,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
