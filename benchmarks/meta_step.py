"""Cost and exactness of the ``meta`` weighting's step (WRN-16-2, four heads, batch 64, meta batch 25).

Times, in one process and interleaved round by round, three real training steps on the same model:
(a) the plain multi-head step with fixed lambdas, (b) the meta step (update every step) and (c) the
paper-style second-order step (autograd through the lookahead, then the update with the new
lambdas). Then checks the cheap hypergradient against the second-order one in float64, for both
lookaheads. The last line is JSON; goals: ``hypergrad_max_rel_err <= 1e-4``, ``meta_over_plain <= 1.5``.

    .venv/bin/python benchmarks/meta_step.py [--steps 7] [--device auto]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

import torch

from auxtune.robust.config import ModelConfig, RuntimeConfig, TasksConfig, WeightingConfig
from auxtune.robust.device import autocast_factory, memory_format, resolve_device
from auxtune.robust.model import MultiHeadNet
from auxtune.robust.training import compute_losses, train_step
from auxtune.robust.weighting import StepContext, Weighting, create_weighting, weighted_sum
from auxtune.robust.weighting._reference import meta_hypergradient_reference
from auxtune.robust.weighting.fixed import FixedWeighting
from auxtune.robust.weighting.meta import meta_gradient

TASKS = ("rotation", "colorization", "reconstruction", "blur_reconstruction")
BATCH, META_BATCH, NUM_CLASSES = 64, 25, 10
LR = 0.05  # a mid-schedule learning rate: alpha_t of every step


class SecondOrderWeighting(FixedWeighting):
    """(c): the paper's update, hypergradient by double backward (not registered: benchmark only)."""

    def backward(self, losses: Mapping[str, torch.Tensor], ctx: StepContext) -> dict[str, Any]:
        assert ctx.meta_batch is not None
        args = (ctx.model, losses, self.lambdas, ctx.lr, ctx.meta_batch(), ctx.optimizer)
        options = self.cfg.section("meta")
        hypergrad, _ = meta_hypergradient_reference(*args, options.lookahead, ctx.autocast)
        step = dict(zip(self.lambdas, (options.meta_lr * hypergrad).tolist()))
        self.lambdas = {t: max(v - step[t], 0.0) for t, v in self.lambdas.items()}
        weighted_sum(losses, self.lambdas).backward()  # the graph create_graph kept
        return self.lambda_metrics()


def build(device: torch.device, runtime: RuntimeConfig) -> tuple[MultiHeadNet, torch.optim.SGD]:
    torch.manual_seed(0)
    model = MultiHeadNet(
        ModelConfig(depth=16, widen_factor=2), TasksConfig(names=TASKS), NUM_CLASSES
    )
    model.to(device).to(memory_format=memory_format(runtime)).train()
    optimizer = torch.optim.SGD(
        model.parameters(), lr=LR, momentum=0.9, nesterov=True, weight_decay=5e-4
    )
    return model, optimizer


def timed_step(
    model: MultiHeadNet,
    optimizer: torch.optim.Optimizer,
    weighting: Weighting,
    batch: tuple[torch.Tensor, torch.Tensor],
    meta: tuple[torch.Tensor, torch.Tensor],
    autocast: Callable[[], Any],
    step: int,
) -> tuple[float, float]:
    """(wall-clock, process CPU) seconds of one real ``train_step``."""
    ctx = StepContext(
        model, optimizer, epoch=0, step=step, meta_batch=lambda: meta, autocast=autocast
    )
    sync = torch.cuda.synchronize if batch[0].is_cuda else (lambda: None)
    sync()
    wall, cpu = time.perf_counter(), time.process_time()
    train_step(model, optimizer, weighting, *batch, ctx)
    sync()
    return time.perf_counter() - wall, time.process_time() - cpu


def random_batch(
    n: int, device: torch.device, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.rand(n, 3, 32, 32, device=device, dtype=dtype), torch.randint(NUM_CLASSES, (n,))


def time_steps(device: torch.device, steps: int, warmup: int) -> dict[str, tuple[float, float]]:
    """Median (wall, CPU) seconds per step of (a) fixed, (b) meta, (c) second-order, interleaved."""
    runtime = RuntimeConfig()
    model, optimizer = build(device, runtime)
    autocast = autocast_factory(device, runtime)
    fmt = memory_format(runtime)
    cfg = WeightingConfig.create("meta", warmup_epochs=0)
    weightings: dict[str, Weighting] = {
        "plain": create_weighting(WeightingConfig(), TASKS),
        "meta": create_weighting(cfg, TASKS),
        "second_order": SecondOrderWeighting(cfg, TASKS),
    }
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in weightings}
    for step in range(warmup + steps):
        x, y = random_batch(BATCH, device, torch.float32)
        meta = random_batch(META_BATCH, device, torch.float32)
        batch = (x.contiguous(memory_format=fmt), y.to(device))
        meta = (meta[0].contiguous(memory_format=fmt), meta[1].to(device))
        for name, weighting in weightings.items():
            seconds = timed_step(model, optimizer, weighting, batch, meta, autocast, step)
            print(f"step {step} {name}: {seconds[0]:.2f} s", file=sys.stderr, flush=True)
            if step >= warmup:
                times[name].append(seconds)
    return {name: median_pair(values) for name, values in times.items()}


def median_pair(values: list[tuple[float, float]]) -> tuple[float, float]:
    return statistics.median(v[0] for v in values), statistics.median(v[1] for v in values)


def hypergrad_error(lookahead: str) -> float:
    """max_i |cheap_i - reference_i| / max_i |reference_i| in float64, on CPU, after a real step."""
    model, optimizer = build(torch.device("cpu"), RuntimeConfig())
    model.double()
    optimizer = torch.optim.SGD(model.parameters(), **optimizer.defaults)
    batch, meta = (
        random_batch(BATCH, torch.device("cpu"), torch.float64),
        random_batch(META_BATCH, torch.device("cpu"), torch.float64),
    )
    lambdas = WeightingConfig().initial_lambdas(TASKS)

    def losses() -> dict[str, torch.Tensor]:
        torch.manual_seed(1)  # the same task views both times
        return compute_losses(model, *batch)

    for _ in range(1):  # momentum buffers exist, so the nesterov lookahead has all its terms
        optimizer.zero_grad()
        weighted_sum(losses(), lambdas).backward()
        optimizer.step()
    args = (lambdas, LR, meta, optimizer, lookahead)
    cheap = meta_gradient(model, losses(), *args).hypergrad
    reference, _ = meta_hypergradient_reference(model, losses(), *args)
    return float((cheap - reference).abs().max() / reference.abs().max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5, help="timed steps per variant (median)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    torch.set_num_threads(2)
    device = resolve_device(args.device)
    seconds = time_steps(device, args.steps, args.warmup)
    errors = {mode: hypergrad_error(mode) for mode in ("sgd", "nesterov")}
    for name, (wall_s, cpu_s) in seconds.items():
        print(f"{name:>13}: {wall_s * 1000:8.1f} ms/step wall, {cpu_s * 1000:8.1f} ms CPU")
    print(f"hypergradient max relative error (float64): {errors}")
    wall = {name: value[0] for name, value in seconds.items()}
    cpu = {name: value[1] for name, value in seconds.items()}
    result = {
        "device": str(device),
        "hypergrad_max_rel_err": max(errors.values()),
        "meta_over_plain": wall["meta"] / wall["plain"],
        "second_order_over_plain": wall["second_order"] / wall["plain"],
        # process CPU time: the same ratios, less sensitive to other load on the machine
        "meta_over_plain_cpu": cpu["meta"] / cpu["plain"],
        "second_order_over_plain_cpu": cpu["second_order"] / cpu["plain"],
        "ms_per_step": {name: round(value * 1000, 1) for name, value in wall.items()},
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
