"""What one trial of a preset learns and costs: clean test accuracy, c15/c19, and wall seconds.

Each seed is one training run doing exactly a trial's work without Ray (one torch thread): the
epochs, clean ``val`` and the 500-image corrupted validation set after every epoch, then clean
test and every corruption x severity block at the end. Seeds run ``--jobs`` at a time in separate
processes (the demo runs two trials at a time on 2 cores).

With ``--versus key=value ...`` every seed also trains that variant, and the report pairs them by
seed: the mean difference (variant - base) and its 95 % t-interval over seeds, the test the study
preset's seed count is sized with.

    .venv/bin/python benchmarks/learning.py --config configs/demo.yaml --seeds 0-2 tasks.names=[]
    .venv/bin/python benchmarks/learning.py --config configs/demo.yaml --seeds 0-4 tasks.names=[] \
        --versus tasks.names=[rotation] weighting.init_lambda=0.5

One JSON line per run (``run``), then one ``summary`` line per variant and, with ``--versus``, a
``paired`` line per metric.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from typing import Any

import numpy as np
from scipy import stats

METRICS = ("test_accuracy", "c15_accuracy", "c19_accuracy")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="configs/demo.yaml")
    parser.add_argument("--seeds", default="0-2", help="'0-4' or '0,3,7'")
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time (one thread each)")
    parser.add_argument("--versus", nargs="+", default=None, metavar="key=value")
    parser.add_argument("overrides", nargs="*", metavar="key=value")
    return parser.parse_args()


def parse_seeds(text: str) -> list[int]:
    if "-" in text:
        first, last = map(int, text.split("-"))
        return list(range(first, last + 1))
    return [int(s) for s in text.split(",")]


def one_run(config: str | None, overrides: list[str], seed: int) -> dict[str, Any]:
    """Train and evaluate one seed as a trial would; return its metrics and seconds."""
    import torch

    from auxtune.data.meta_validation import meta_validation_source
    from auxtune.platform.config import load_experiment
    from auxtune.robust.trainer import Trainer
    from auxtune.trainables.data import absolute_data_config, prepare_trial_data
    from auxtune.trainables.function import corruption_metrics

    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
    exp = load_experiment(config, [*overrides, f"seed={seed}", "runtime.threads=1"])
    cfg = exp.train_config()
    cfg = replace(cfg, data=absolute_data_config(cfg.data))
    data = prepare_trial_data(cfg)  # cached after the first call: not part of a trial's time
    splits = data.splits
    # as a trial: the stream of any weighting that needs meta-validation batches (meta,
    # auto_lambda), with its section's protocol and meta_batch_size; None for the others
    meta = meta_validation_source(cfg, splits, paper=data.paper_pool)
    start, cpu_start = time.perf_counter(), time.process_time()
    trainer = Trainer(
        cfg, splits.train.images, splits.train.labels, splits.num_classes, meta_source=meta
    )
    train_s = eval_s = 0.0
    history = []
    while trainer.epoch < cfg.optim.epochs:
        tick = time.perf_counter()
        metrics = trainer.train_epoch()
        train_s += time.perf_counter() - tick
        tick = time.perf_counter()
        val = trainer.evaluate(splits.val.images, splits.val.labels)
        val_c = trainer.evaluate(data.val_corrupt.images, data.val_corrupt.labels)
        eval_s += time.perf_counter() - tick
        history.append(
            {"val": round(val, 4), "val_c": round(val_c, 4), "main": round(metrics["loss/main"], 4)}
        )
    tick = time.perf_counter()
    final = {"test_accuracy": trainer.evaluate(splits.test.images, splits.test.labels)}
    final.update(corruption_metrics(trainer, data))
    final_s = time.perf_counter() - tick
    lambdas = {k: round(v, 3) for k, v in metrics.items() if k.startswith("lambda/")}
    return {
        "kind": "run",
        "seed": seed,
        "overrides": overrides,
        **{m: round(final[m], 4) for m in METRICS if m in final},
        "severity": [round(final[f"c15_s{s}_accuracy"], 4) for s in range(1, 6)],
        "corruptions": {k[2:]: round(v, 4) for k, v in final.items() if k.startswith("c/")},
        "seconds": round(time.perf_counter() - start, 2),
        # one thread: process CPU seconds ~ a quiet machine's wall seconds, whatever the load
        "cpu_s": round(time.process_time() - cpu_start, 2),
        "train_s": round(train_s, 2),
        "epoch_eval_s": round(eval_s, 2),
        "final_eval_s": round(final_s, 2),
        "epochs": history,
        "lambdas": lambdas,
        "load_avg_1min": round(os.getloadavg()[0], 2),
    }


def summary(runs: list[dict[str, Any]], overrides: list[str]) -> dict[str, Any]:
    """Per metric the mean, sd and 95 % t-interval half-width over seeds; the accuracy by
    severity (clean, then the 15 corruptions at 1..5) and the robustness gap (clean - c15)."""
    out: dict[str, Any] = {"kind": "summary", "overrides": overrides, "seeds": len(runs)}
    for key in (*METRICS, "seconds", "cpu_s", "train_s", "final_eval_s"):
        values = [r[key] for r in runs if key in r]
        out[key] = [round(statistics.mean(values), 4), round(_sd(values), 4)]
    out["ci95_half"] = {key: round(_half(np.array([r[key] for r in runs])), 4) for key in METRICS}
    curve = np.array([[r["test_accuracy"], *r["severity"]] for r in runs])
    out["per_severity"] = {
        "severity": ["clean", 1, 2, 3, 4, 5],
        "mean": [round(float(m), 4) for m in curve.mean(axis=0)],
        "ci95_half": [round(_half(curve[:, k]), 4) for k in range(curve.shape[1])],
    }
    gap = np.array([r["test_accuracy"] - r["c15_accuracy"] for r in runs])
    out["clean_minus_c15"] = [round(float(gap.mean()), 4), round(_half(gap), 4)]
    return out


def _half(values: np.ndarray) -> float:
    """Half-width of the 95 % t-interval of the mean (nan for one value)."""
    n = len(values)
    if n < 2:
        return float("nan")
    return float(stats.t.ppf(0.975, n - 1) * values.std(ddof=1) / np.sqrt(n))


def paired(base: list[dict[str, Any]], other: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per-metric mean of (other - base) over seeds and its 95 % t-interval half-width."""
    lines = []
    for key in METRICS:
        diff = np.array([o[key] - b[key] for b, o in zip(base, other)])
        n = len(diff)
        sd = float(diff.std(ddof=1)) if n > 1 else float("nan")
        half = _half(diff)
        lines.append(
            {
                "kind": "paired",
                "metric": key,
                "n": n,
                "mean_diff": round(float(diff.mean()), 4),
                "sd_diff": round(sd, 4),
                "ci95_half": round(half, 4),
            }
        )
    return lines


def _sd(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def main() -> None:
    args = parse_args()
    seeds = parse_seeds(args.seeds)
    variants = [args.overrides] + ([[*args.overrides, *args.versus]] if args.versus else [])
    _warm_cache(args.config, variants)
    jobs = [(v, s) for v in range(len(variants)) for s in seeds]
    results: dict[int, list[dict[str, Any]]] = {v: [] for v in range(len(variants))}
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futures = [(v, pool.submit(one_run, args.config, variants[v], s)) for v, s in jobs]
        for v, future in futures:
            run = future.result()
            print(json.dumps(run), flush=True)
            results[v].append(run)
    for v, runs in results.items():
        print(json.dumps(summary(runs, variants[v])), flush=True)
    if args.versus:
        for line in paired(results[0], results[1]):
            print(json.dumps(line), flush=True)


def _warm_cache(config: str | None, variants: list[list[str]]) -> None:
    """Generate the data and corrupted sets once, before the parallel runs race to build them."""
    from auxtune.platform.config import load_experiment
    from auxtune.trainables.data import absolute_data_config, prepare_trial_data

    for overrides in variants:
        cfg = load_experiment(config, overrides).train_config()
        tick = time.perf_counter()
        prepare_trial_data(replace(cfg, data=absolute_data_config(cfg.data)))
        print(
            json.dumps({"kind": "data", "seconds": round(time.perf_counter() - tick, 2)}),
            flush=True,
        )


if __name__ == "__main__":
    main()
