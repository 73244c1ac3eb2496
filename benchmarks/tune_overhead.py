"""How busy a search keeps the machine, and what MLflow logging costs (8 short trials on local Ray).

Runs a ``fixed`` search of 8 trials (one lambda grid point each, a few seconds per epoch on one
CPU thread) through :func:`auxtune.platform.search.run_search` with MLflow on SQLite, then reports

- ``utilization``: sum of trial busy time / (wall time of the Tune loop x CPUs), trial busy time
  being the time inside the trainable (Tune's ``time_this_iter_s`` summed over its epochs);
  ``utilization_end_to_end`` uses the whole ``run_search`` wall (data, MLflow setup, Tune);
- ``mlflow_share``: the CPU seconds of MLflow logging (the driver callback's hooks plus its
  background writer thread: run creation, ``log_batch`` writes of the epochs' metrics, the
  artifacts incl. the lambda-trajectory SVG) / trial busy time. CPU seconds, because the writer
  shares the 2 cores with the trials: its wall seconds also count the time it waited for them
  (and for the disk), reported as ``mlflow_share_wall``. ``mlflow_share_without_warm_up`` leaves
  out the writer's one-time imports; ``mlflow_blocking_share``: only the hooks' time, the part a
  reporting trial can wait for.

The machine's load average is printed: other processes depress the numbers. Ray is started (and
the MLflow store created) before the clock starts. Last line JSON; goals: ``utilization >= 0.85``,
``mlflow_share <= 0.01``.

    .venv/bin/python benchmarks/tune_overhead.py [--trials 8] [--epochs 4] [--train 1024]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

os.environ.setdefault("RAY_AUTH_MODE", "disabled")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--train", type=int, default=1024, help="training images per trial")
    parser.add_argument("--cpus", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()

    import ray

    from auxtune.platform import tracking
    from auxtune.platform.config import load_experiment
    from auxtune.platform.search import run_search

    workdir = tempfile.mkdtemp(prefix="auxtune-bench-")
    grid = ",".join(f"{0.1 * i:.1f}" for i in range(args.trials))
    exp = load_experiment(
        None,
        [
            "name=bench",
            "model.depth=10",
            "model.widen_factor=1",
            "model.base_width=8",
            "tasks.names=[rotation]",
            "tasks.decoder_width=8",
            f"optim.epochs={args.epochs}",
            "optim.batch_size=64",
            f"data.num_train={args.train}",
            "data.num_val=200",
            "data.num_test=100",
            "data.holdout=0",
            "data.c_images_per_block=20",
            f"search.grid=[{grid}]",
            "search.cpus_per_trial=1",
            "runtime.device=cpu",
            f"tracking.workdir={workdir}",
        ],
    )
    load_before = os.getloadavg()
    ray.init(address="local", num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
    try:
        target = tracking.resolve_tracking(workdir)
        tracking.ensure_experiment(tracking.client(target.uri), "warm-up", target)  # create the DB
        start = time.perf_counter()
        result = run_search(exp, "fixed", verbose=0)
        wall = time.perf_counter() - start
    finally:
        ray.shutdown()
    load_after = os.getloadavg()

    state = tracking.SearchState(os.path.join(result.results_path, tracking.STATE_FILE))
    busy = sum(t.seconds for t in result.trials)
    fit_wall = result.phases.get("tune_fit", wall)
    writer_s, hook_s = float(state.data["logging_s"]), float(state.data["hook_s"])
    by_op = state.data.get("logging_by_op", {})
    writer_cpu_s = float(state.data["logging_cpu_s"])
    cpu_by_op = state.data.get("logging_cpu_by_op", {})
    report = {
        "trials": len(result.trials),
        "finished": sum(t.status == "TERMINATED" for t in result.trials),
        "epochs_per_trial": args.epochs,
        "cpus": args.cpus,
        "trial_busy_s": round(busy, 2),
        "mean_epoch_s": round(
            sum(r["time/epoch_s"] for t in result.trials for r in t.history)
            / max(1, sum(len(t.history) for t in result.trials)),
            3,
        ),
        "tune_fit_wall_s": round(fit_wall, 2),
        "run_search_wall_s": round(wall, 2),
        "phases_s": {k: round(v, 2) for k, v in result.phases.items()},
        "utilization": round(busy / (fit_wall * args.cpus), 4),
        "utilization_end_to_end": round(busy / (wall * args.cpus), 4),
        "mlflow_writer_s": round(writer_s, 3),
        "mlflow_hook_s": round(hook_s, 4),
        "mlflow_by_op_s": {k: round(v, 3) for k, v in by_op.items()},
        "mlflow_writer_cpu_s": round(writer_cpu_s, 3),
        "mlflow_cpu_by_op_s": {k: round(v, 3) for k, v in cpu_by_op.items()},
        "mlflow_share": round((writer_cpu_s + hook_s) / busy, 5),
        "mlflow_share_wall": round((writer_s + hook_s) / busy, 5),
        "mlflow_share_without_warm_up": round(
            (writer_cpu_s - float(cpu_by_op.get("warm_up", 0.0)) + hook_s) / busy, 5
        ),
        "mlflow_blocking_share": round(hook_s / busy, 6),
        "loadavg_1min_before_after": [round(load_before[0], 2), round(load_after[0], 2)],
    }
    for key, value in report.items():
        if key != "phases_s":
            print(f"{key:>28}: {value}")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
