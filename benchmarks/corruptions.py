"""Throughput of the 19 corruptions, and the projected time to build a CIFAR-10-C-sized set.

    .venv/bin/python benchmarks/corruptions.py [--batch 1000] [--workers 2] [--threads 1]

Times one call per (corruption, severity) on `--batch` synthetic images (after a warm-up call
that builds cached filter operators), projects the seconds to corrupt 10,000 images at all 5
severities of all 19 corruptions, and compares a few of them with per-image loops written the
way the original script works (numpy/scipy, one image at a time), timed back to back. The last line is one JSON
object: images_per_s per corruption, full_set_s (wall), busiest_worker_cpu_s (the wall time
with the cores to ourselves) and cpu_full_set_s (all workers), the baselines and their speed-up
ratios, and the load average (other jobs on the machine stretch the wall time).

The corruptions are spread over one single-threaded process per core: their work is many
small tensor ops, for which a second torch thread adds more synchronisation than speed (3x
slower measured on 2 busy cores), while two processes keep both cores busy.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import torch
from scipy import ndimage

from auxtune.data.corruptions import CORRUPTIONS, SEVERITIES, corrupt, sample_images

FULL_SET_IMAGES = 10_000  # one severity block of CIFAR-10-C


def timed(fn) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def time_corruption(name: str, batch: int) -> dict:
    """Wall and CPU seconds of one call per severity, on `batch` images (runs in a worker)."""
    images = sample_images(batch, seed=0)
    walls, cpus = [], []
    for severity in SEVERITIES:
        corrupt(images[:8], name, severity)  # warm-up: cached operators, allocator
        wall, cpu = timed(lambda: corrupt(images, name, severity, seed=severity))  # noqa: B023
        walls.append(wall)
        cpus.append(cpu)
    print(f"{name:18s} " + " ".join(f"{w * 1000:7.0f}" for w in walls) + " ms", flush=True)
    return {"name": name, "worker": os.getpid(), "wall": walls, "cpu": cpus}


def time_corruptions(batch: int, workers: int, threads: int) -> list[dict]:
    """Every corruption, spread over `workers` processes of `threads` torch threads each."""
    if workers == 1:
        torch.set_num_threads(threads)
        return [time_corruption(name, batch) for name in CORRUPTIONS]
    with ProcessPoolExecutor(
        workers, initializer=torch.set_num_threads, initargs=(threads,)
    ) as pool:
        return list(pool.map(time_corruption, CORRUPTIONS, [batch] * len(CORRUPTIONS)))


# Per-image loops in the style of the original script (numpy / scipy, one image at a time).


def naive_gaussian_noise(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    x = image / 255.0
    return (np.clip(x + rng.normal(size=x.shape, scale=0.08), 0, 1) * 255).astype(np.uint8)


def naive_zoom_blur(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    x = (image / 255.0).astype(np.float32)
    zooms = np.arange(1, 1.16, 0.01)
    out = np.zeros_like(x)
    for zoom in zooms:
        crop = math.ceil(32 / zoom)
        top = (32 - crop) // 2
        zoomed = ndimage.zoom(x[top : top + crop, top : top + crop], (zoom, zoom, 1), order=1)
        trim = (zoomed.shape[0] - 32) // 2
        out += zoomed[trim : trim + 32, trim : trim + 32]
    return (np.clip((x + out) / (len(zooms) + 1), 0, 1) * 255).astype(np.uint8)


def naive_glass_blur(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    blur = lambda x: ndimage.gaussian_filter(x, (0.4, 0.4, 0), mode="nearest")  # noqa: E731
    x = (blur(image / 255.0) * 255).astype(np.uint8)
    for row in range(31, 1, -1):
        for col in range(31, 1, -1):
            dy, dx = rng.integers(-1, 1, size=2)
            x[row, col], x[row + dy, col + dx] = x[row + dy, col + dx], x[row, col]
    return (np.clip(blur(x / 255.0), 0, 1) * 255).astype(np.uint8)


NAIVE = {
    ("gaussian_noise", 3): naive_gaussian_noise,
    ("zoom_blur", 3): naive_zoom_blur,
    ("glass_blur", 3): naive_glass_blur,
}


def time_baselines(images: np.ndarray, count: int) -> dict[str, dict[str, float]]:
    """Images per second of each per-image loop and of the batched corruption, timed back to
    back in this process so that both see the same load."""
    rng = np.random.default_rng(0)
    rates: dict[str, dict[str, float]] = {}
    for (name, severity), fn in NAIVE.items():
        naive, _ = timed(lambda: [fn(image, rng) for image in images[:count]])  # noqa: B023
        batched, _ = timed(lambda: corrupt(images, name, severity))  # noqa: B023
        rates[name] = {"naive": count / naive, "batched": len(images) / batched}
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=1000, help="images per call")
    parser.add_argument("--naive", type=int, default=50, help="images for the per-image loops")
    parser.add_argument("--workers", type=int, default=2, help="processes (one per core)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    args = parser.parse_args()
    timings = time_corruptions(args.batch, args.workers, args.threads)
    scale = FULL_SET_IMAGES / args.batch
    # The set is done when the busiest worker is: its summed wall time, scaled to 10,000 images.
    # Its CPU seconds are what the wall time would be with the cores to ourselves.
    per_worker: dict[int, float] = {}
    per_worker_cpu: dict[int, float] = {}
    for t in timings:
        per_worker[t["worker"]] = per_worker.get(t["worker"], 0.0) + sum(t["wall"])
        per_worker_cpu[t["worker"]] = per_worker_cpu.get(t["worker"], 0.0) + sum(t["cpu"])
    rates = {t["name"]: len(SEVERITIES) * args.batch / sum(t["wall"]) for t in timings}
    torch.set_num_threads(args.threads)
    images = sample_images(args.batch, seed=0)
    baselines = time_baselines(images, args.naive)
    speedups = {
        f"{name}_vs_naive": rate["batched"] / rate["naive"] for name, rate in baselines.items()
    }
    # The floor of any batched pass: uint8 -> float -> uint8 in numpy.
    round_trip, _ = timed(lambda: (images.astype(np.float32) / 255 * 255).astype(np.uint8))
    result = {
        "images_per_s": {name: round(rate, 1) for name, rate in rates.items()},
        "full_set_s": round(max(per_worker.values()) * scale, 1),
        "busiest_worker_cpu_s": round(max(per_worker_cpu.values()) * scale, 1),
        "cpu_full_set_s": round(sum(sum(t["cpu"]) for t in timings) * scale, 1),
        "baselines_images_per_s": {
            name: {kind: round(value, 1) for kind, value in rate.items()}
            for name, rate in baselines.items()
        },
        "speedup": {name: round(ratio, 1) for name, ratio in speedups.items()},
        "float_round_trip_images_per_s": round(args.batch / round_trip, 1),
        "batch": args.batch,
        "workers": args.workers,
        "threads_per_worker": args.threads,
        "cpus": os.cpu_count(),
        "load_average_1min": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
