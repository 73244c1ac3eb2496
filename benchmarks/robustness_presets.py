"""The label-noise and OOD presets' rows, trained through ``auxtune train`` one process each.

``auxtune compare --config configs/<preset>.yaml`` runs the preset's table (its
``compare.variants``, every row retrained with the same seeds, paired 95 % intervals, MLflow and a
report); this script is the lighter per-preset benchmark without Ray or MLflow: the same rows (read
from the preset's ``compare`` section: the reference first, each variant its overrides), trained
once per seed (``seed=k``: the same initial weights, data order and noise per seed across rows),
``--jobs`` at a time with one torch thread each. It prints one row per variant (mean and sample std
over the seeds of the preset's ``compare.metric``) and each variant's paired difference from the
first with a 95 % t-interval (and, for OOD, every set and detector's mean AUROC), then one JSON
line: every value, the wall times, and ``ratio`` = the last variant's error (1 - metric) over the
first's.

    .venv/bin/python benchmarks/robustness_presets.py label-noise --seeds 3 --jobs 2
    .venv/bin/python benchmarks/robustness_presets.py ood --seeds 3 --only baseline,rotation
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from scipy import stats

ROOT = Path(__file__).resolve().parents[1]

PRESETS = ("label-noise", "ood")
#: a trial's metric -> the key of ``auxtune train``'s final JSON line, where they differ
TRAIN_NAMES = {"clean_test_accuracy": "test_accuracy"}


def preset_rows(preset: str) -> tuple[str, dict[str, list[str]]]:
    """The metric the preset ranks by and ``{row: overrides}``, the reference first, as
    ``auxtune compare`` runs them (``compare.variants``; ``baseline``: no auxiliary task)."""
    from auxtune.platform.config import load_experiment

    exp = load_experiment(ROOT / "configs" / f"{preset}.yaml")
    rows = {
        row: [f"{key}={json.dumps(value)}" for key, value in exp.compare.overrides(row).items()]
        for row in exp.compare.rows()
    }
    return exp.compare.metric, rows


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("preset", choices=PRESETS)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2, help="trainings at once (1 thread each)")
    parser.add_argument("--only", default="", help="comma-separated variants (default: all)")
    parser.add_argument("--out", default=None, help="directory for checkpoints and logs")
    parser.add_argument("overrides", nargs="*", help="key=value overrides for every run")
    return parser.parse_intermixed_args()  # overrides may follow the flags


def train(config: Path, overrides: list[str], seed: int, out: Path) -> dict[str, Any]:
    """One ``auxtune train`` run; its final JSON line plus the wall seconds."""
    out.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "auxtune.platform.cli",
        "train",
        "--config",
        str(config),
        "--no-progress",
        "--no-mlflow",
        "--out",
        str(out / "model.pt"),
        "runtime.threads=1",
        f"seed={seed}",
        *overrides,
    ]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=ROOT)
    (out / "train.log").write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    result = json.loads(
        next(line for line in reversed(done.stdout.splitlines()) if line.startswith("{"))
    )
    return {**result, "wall_s": time.perf_counter() - start}


def paired_interval(diffs: list[float]) -> tuple[float, float, float]:
    """Mean paired difference and its 95 % t-interval (nan bounds with one seed)."""
    mean = statistics.fmean(diffs)
    if len(diffs) < 2:
        return mean, float("nan"), float("nan")
    half = stats.t.ppf(0.975, len(diffs) - 1) * statistics.stdev(diffs) / len(diffs) ** 0.5
    return mean, mean - half, mean + half


def main() -> None:
    args = parse_args()
    metric, variants = preset_rows(args.preset)
    metric = TRAIN_NAMES.get(metric, metric)
    if args.only:
        variants = {name: variants[name] for name in args.only.split(",")}
    config = ROOT / "configs" / f"{args.preset}.yaml"
    out = Path(args.out or tempfile.mkdtemp(prefix=f"auxtune-{args.preset}-"))
    jobs = [(name, seed) for seed in range(args.seeds) for name in variants]
    os.environ.setdefault("PYTHONPATH", str(ROOT / "src"))
    start = time.perf_counter()
    with ThreadPoolExecutor(args.jobs) as pool:
        futures = {
            job: pool.submit(
                train,
                config,
                [*args.overrides, *variants[job[0]]],
                job[1],
                out / f"{job[0]}-s{job[1]}",
            )
            for job in jobs
        }
        results = {job: future.result() for job, future in futures.items()}
    total = time.perf_counter() - start
    values = {v: [results[v, s][metric] for s in range(args.seeds)] for v in variants}
    reference = next(iter(variants))
    print(f"{args.preset}: {metric}, {args.seeds} seeds, {total / 60:.1f} min wall ({out})")
    summary: dict[str, Any] = {}
    for name, vals in values.items():
        std = statistics.stdev(vals) if len(vals) > 1 else float("nan")
        diff, low, high = paired_interval([a - b for a, b in zip(vals, values[reference])])
        wall = statistics.fmean(results[name, s]["wall_s"] for s in range(args.seeds))
        print(
            f"  {name:<14} {statistics.fmean(vals):.4f} ± {std:.4f}   vs {reference}: "
            f"{diff:+.4f} [{low:+.4f}, {high:+.4f}]   {wall:.0f} s/run"
        )
        summary[name] = {
            "values": vals,
            "mean": statistics.fmean(vals),
            "std": std,
            "diff": diff,
            "diff_95": [low, high],
            "wall_s": wall,
            "runs": [results[name, s] for s in range(args.seeds)],
        }
    detail = sorted({k for r in results.values() for k in r if k.startswith("ood/")})
    detail = [k for k in detail if k.endswith("/auroc")]  # the JSON line has AUPR and FPR95 too
    if detail:
        print("  AUROC per set and detector (mean over seeds):")
    for key in detail:
        means = {
            name: statistics.fmean(results[name, s][key] for s in range(args.seeds))
            for name in variants
            if key in results[name, 0]
        }
        print(f"    {key:<32}" + "  ".join(f"{n}={m:.4f}" for n, m in means.items()))
    last = list(variants)[-1]
    ratio = (1 - summary[last]["mean"]) / max(1 - summary[reference]["mean"], 1e-12)
    print(
        json.dumps(
            {
                "preset": args.preset,
                "metric": metric,
                "seeds": args.seeds,
                "wall_s": total,
                "variants": summary,
                "ratio": ratio,
            }
        )
    )


if __name__ == "__main__":
    main()
