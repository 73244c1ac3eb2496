"""Bad inputs, by class, for the real ``auxtune`` entry point: what each must answer.

Every probe runs ``.venv/bin/auxtune`` (the installed console script, with this checkout first on
``PYTHONPATH``) in a fresh process, with its inputs under ``{d}`` and a fresh, empty output
directory ``{o}`` as its working directory. It must end with exit code 2, exactly one line on
stderr naming the problem, no ``Traceback`` anywhere, ``{o}`` still empty and no payload marker
created. Probes that start Ray (``ray=True``) may also show Ray's own INFO/WARNING log lines (they
appear on a successful run too), never its errors or stacks.

The classes: ``value`` (passes the parser, used to break later), ``output`` (cannot be written),
``input`` (missing, unreadable or malformed), ``service`` (not there). ``LEAD`` lists cases of
``auxtune search`` / ``compare`` that need changes in the lead's files; they are not part of the
test (``python tests/bad_inputs.py lead`` runs them).

``tests/test_bad_inputs.py`` runs the table; ``python tests/bad_inputs.py`` prints it as a report
(one line per probe: class, id, verdict, the error line) without pytest.
"""

from __future__ import annotations

import os
import pickle
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
AUXTUNE = ROOT / ".venv" / "bin" / "auxtune"
UNWRITABLE = "/proc/auxtune-probe/out"  # no user, root included, may create anything under /proc
#: Ray's own log lines (Python ``INFO``/``WARNING`` records, C++ ``[... I|W|E pid tid]`` lines)
RAY_LOG = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+\s+(INFO|WARNING) "
    r"|\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ [IWE] \d+ \d+\] )"
)

TINY_YAML = """\
name: tiny
data: {dataset: synthetic, num_train: 32, num_val: 8, num_test: 8, holdout: 8,
       c_images_per_block: 2, augment: false}
model: {depth: 10, widen_factor: 1, base_width: 4}
optim: {batch_size: 8, epochs: 1}
tasks: {names: [rotation], decoder_width: 4}
runtime: {device: cpu, threads: 1}
"""


@dataclass(frozen=True)
class Probe:
    """One bad input: ``argv`` after ``auxtune`` (``{d}`` is the fixture directory), the text the
    error line must contain, and paths (relative to ``{d}``) that must not exist afterwards."""

    kind: str
    id: str
    argv: tuple[str, ...]
    expect: str
    leaves_nothing: tuple[str, ...] = ()
    ray: bool = False  # may start (or try to reach) Ray: slow
    env: tuple[tuple[str, str], ...] = ()


def _p(kind: str, id: str, argv: str, expect: str, *leaves: str, **kw: object) -> Probe:
    return Probe(kind, id, tuple(argv.split()), expect, leaves, **kw)  # type: ignore[arg-type]


TRAIN = "train --config {d}/tiny.yaml --no-progress tracking.workdir={o}/runs"
COMPARE = "compare --config {d}/tiny.yaml --strategies fixed tracking.workdir={o}/runs"
EVAL = "evaluate {d}/model.pt --corruptions {d}/pq"

# values that pass the parser but used to break later
LATER = [
    _p("value", "cuda-without-cuda", f"{TRAIN} runtime.device=cuda", "runtime.device"),
    _p("value", "cuda-index-out-of-range", f"{TRAIN} runtime.device=cuda:7", "cuda:7"),
    _p("value", "cuda-index-not-a-number", f"{TRAIN} runtime.device=cuda:x", "cuda:x"),
    _p("value", "batch-larger-than-data", f"{TRAIN} optim.batch_size=64", "batch_size"),
    _p("value", "no-training-images", f"{TRAIN} data.num_train=1", "batch"),
    _p("value", "negative-seed", f"{TRAIN} seed=-1", "seed"),
    _p("value", "negative-data-seed", f"{TRAIN} data.seed=-3", "data.seed"),
    _p("value", "huge-seed", f"{TRAIN} seed=99999999999999999999999", "seed"),
    _p("value", "infinite-lr", f"{TRAIN} optim.lr=.inf", "optim.lr"),
    _p("value", "nan-lambda", f"{TRAIN} weighting.init_lambda=.nan", "init_lambda"),
    _p(
        "value",
        "c-block-larger-than-block",
        f"{TRAIN} data.c_images_per_block=50",
        "c_images_per_block",
    ),
    _p(
        "value",
        "meta-without-holdout",
        f"{TRAIN} weighting.name=meta data.holdout=0",
        "data.holdout",
    ),
    _p(
        "value",
        "paper-protocol-on-small-blocks",
        f"{TRAIN} weighting.name=meta weighting.meta.protocol=paper",
        "paper",
    ),
    _p("value", "cifar-without-data-dir", f"{TRAIN} data.dataset=cifar10", "data.data_dir"),
    _p("value", "unknown-dataset", f"{TRAIN} data.dataset=imagenet", "data.dataset"),
    _p("value", "labeled-fraction-zero", f"{TRAIN} data.labeled_fraction=0", "labeled_fraction"),
    _p("value", "labeled-fraction-over-one", f"{TRAIN} data.labeled_fraction=1.5", "(0, 1]"),
    _p(
        "value",
        "labelled-set-under-one-batch",
        f"{TRAIN} data.labeled_fraction=0.1",
        "fewer than one batch",
    ),
    _p(
        "value",
        "compare-labelled-set-under-one-batch",
        f"{COMPARE} data.dataset=photo_shapes data.labeled_fraction=0.2",
        "data.labeled_fraction",
    ),
    _p(
        "value",
        "cifar-data-dir-missing",
        f"{TRAIN} data.dataset=cifar100 data.data_dir={{d}}/nowhere",
        "nowhere",
    ),
    _p(
        "value",
        "corruptions-dir-missing",
        f"{TRAIN} data.corruptions_dir={{d}}/nowhere",
        "data.corruptions_dir",
    ),
    _p(
        "value",
        "synthetic-cache-unwritable",
        f"{TRAIN} data.data_dir={UNWRITABLE}",
        "data.data_dir",
    ),
    _p(
        "value",
        "synthetic-cache-is-a-file",
        f"{TRAIN} data.data_dir={{d}}/afile",
        "data.data_dir",
    ),
    _p("value", "name-with-slash", f"{TRAIN} name=../../escape", "name"),
    _p("value", "name-absolute", f"{TRAIN} name={{o}}/abs", "name"),
    _p("value", "name-hidden", f"{TRAIN} name=.hidden", "name"),
    _p("value", "name-control-char", f"{TRAIN} name=a\x07b", "name"),
    _p("value", "name-empty", f"{TRAIN} name=", "name"),
    Probe("value", "name-with-space", (*TRAIN.split(), "name=my run"), "name"),
    _p("value", "cuda-negative-index", f"{TRAIN} runtime.device=cuda:-1", "runtime.device"),
    _p("value", "seed-not-a-number", f"{TRAIN} seed=.inf", "seed"),
    _p(
        "value", "model-too-large-for-memory", f"{TRAIN} model.widen_factor=100000", "out of memory"
    ),
    _p(
        "value",
        "evaluate-batch-size-zero",
        f"{EVAL} --batch-size 0",
        "--batch-size",
    ),
    _p(
        "value",
        "evaluate-negative-block",
        f"{EVAL} --images-per-block -1",
        "--images-per-block",
    ),
    _p(
        "value",
        "make-c-unknown-device",
        "data make-c --dataset synthetic --num 4 --out {o}/mc --no-progress --device tpu",
        "--device",
    ),
    _p(
        "value",
        "make-c-cuda-without-cuda",
        "data make-c --dataset synthetic --num 4 --out {o}/mc --no-progress --device cuda",
        "cuda",
    ),
    _p("value", "ui-port-zero", "ui --port 0 tracking.workdir={o}/runs", "--port"),
    _p("value", "adversarial-negative-epsilon", f"{TRAIN} adversarial.epsilon=-0.1", "epsilon"),
    _p("value", "adversarial-zero-steps", f"{TRAIN} adversarial.steps=0", "adversarial.steps"),
    _p(
        "value",
        "adversarial-unknown-threat-model",
        f"{TRAIN} adversarial.threat_model=l1",
        "adversarial.threat_model",
    ),
    _p(
        "value",
        "adversarial-unknown-attack-loss",
        f"{TRAIN} adversarial.attack_loss=aux",
        "adversarial.attack_loss",
    ),
    _p(
        "value",
        "search-unknown-objective",
        f"{TRAIN} search.objectives=[val_accuracy,val_adv_acc]",
        "search.objectives",
    ),
    _p(
        "value",
        "search-adversarial-metric-without-attacks",
        f"{TRAIN} search.metric=val_adv_accuracy",
        "search.metric",
    ),
    _p("value", "noise-rate-one", f"{TRAIN} label_noise.rate=1", "label_noise.rate"),
    _p("value", "noise-rate-negative", f"{TRAIN} label_noise.rate=-0.1", "label_noise.rate"),
    _p(
        "value",
        "glc-without-trusted-images",
        f"{TRAIN} label_noise.rate=0.4 label_noise.correction=glc label_noise.trusted_fraction=0",
        "label_noise.trusted_fraction",
    ),
    _p(
        "value",
        "compare-rank-by-fpr95",
        f"{COMPARE} ood.test_classes=[8,9] ood.sets=[heldout] compare.metric=ood_fpr95",
        "lower-is-better",
    ),
    Probe(
        "value",
        "compare-variant-changes-the-noise",
        (*COMPARE.split(), "label_noise.rate=0.4", "compare.variants={v: {label_noise.rate: 0.2}}"),
        "label_noise.rate 0.4 -> 0.2",
    ),
]

# outputs that cannot be written: refused before any work
OUTPUTS = [
    _p("output", "train-out-under-proc", f"{TRAIN} --out {UNWRITABLE}/model.pt", "--out"),
    _p("output", "train-out-is-a-directory", f"{TRAIN} --out {{d}}/adir", "--out"),
    _p("output", "train-out-under-a-file", f"{TRAIN} --out {{d}}/afile/model.pt", "--out"),
    _p(
        "output",
        "train-workdir-unwritable",
        f"train --config {{d}}/tiny.yaml --no-progress tracking.workdir={UNWRITABLE}",
        "tracking.workdir",
    ),
    _p("output", "evaluate-json-under-proc", f"{EVAL} --json {UNWRITABLE}/r.json", "--json"),
    _p("output", "evaluate-json-is-a-directory", f"{EVAL} --json {{d}}/adir", "--json"),
    _p("output", "evaluate-json-under-a-file", f"{EVAL} --json {{d}}/afile/r.json", "--json"),
    _p(
        "output",
        "make-c-out-under-proc",
        f"data make-c --dataset synthetic --num 4 --no-progress --out {UNWRITABLE}",
        "--out",
    ),
    _p(
        "output",
        "make-c-out-is-a-file",
        "data make-c --dataset synthetic --num 4 --no-progress --out {d}/afile",
        "--out",
    ),
    _p("output", "convert-dst-under-proc", f"data convert {{d}}/npyc {UNWRITABLE}", "DST"),
    _p("output", "convert-dst-is-a-file", "data convert {d}/npyc {d}/afile", "afile"),
]

# inputs that are missing, unreadable or malformed
INPUTS = [
    _p("input", "config-missing", "train --config {d}/nowhere.yaml", "nowhere.yaml"),
    _p("input", "config-is-a-directory", "train --config {d}/adir", "adir"),
    _p("input", "config-binary", "train --config {d}/garbage.bin", "garbage.bin"),
    _p("input", "config-a-list", "train --config {d}/list.yaml", "list.yaml"),
    _p("input", "config-invalid-yaml", "train --config {d}/broken.yaml", "broken.yaml"),
    _p("input", "override-not-key-value", f"{TRAIN} optim.lr==", "optim.lr"),
    _p("input", "override-into-a-value", f"{TRAIN} seed.x=1", "seed"),
    _p("input", "checkpoint-missing", "evaluate {d}/nowhere.pt --corruptions {d}/pq", "nowhere.pt"),
    _p("input", "checkpoint-garbage", "evaluate {d}/garbage.bin --corruptions {d}/pq", "garbage"),
    _p("input", "checkpoint-a-directory", "evaluate {d}/adir --corruptions {d}/pq", "adir"),
    _p(
        "input",
        "checkpoint-pickle-payload",
        "evaluate {d}/evil.pt --corruptions {d}/pq",
        "evil.pt",
        "pwned",
    ),
    _p(
        "input", "parquet-dir-missing", "evaluate {d}/model.pt --corruptions {d}/nowhere", "nowhere"
    ),
    _p("input", "parquet-dir-empty", "evaluate {d}/model.pt --corruptions {d}/adir", "adir"),
    _p("input", "parquet-dir-holds-npy", "evaluate {d}/model.pt --corruptions {d}/npyc", "convert"),
    _p(
        "input",
        "parquet-not-parquet",
        "evaluate {d}/model.pt --corruptions {d}/pqfake",
        "fog-00000.parquet",
    ),
    _p(
        "input",
        "parquet-corrupt-pages",
        "evaluate {d}/model.pt --corruptions {d}/pqbad --json {o}/bad.json",
        "fog-00000.parquet",
        ray=True,
    ),
    _p("input", "convert-src-missing", "data convert {d}/nowhere {o}/cv", "nowhere"),
    _p("input", "convert-src-truncated", "data convert {d}/npytrunc {o}/cv", "fog.npy"),
    _p(
        "input",
        "make-c-npz-missing-key",
        "data make-c --dataset {d}/nolabels.npz --out {o}/mc --no-progress",
        "labels",
    ),
    _p(
        "input",
        "make-c-images-wrong-shape",
        "data make-c --dataset {d}/flat.npz --out {o}/mc --no-progress",
        "flat.npz",
    ),
    _p(
        "input",
        "make-c-labels-mismatch",
        "data make-c --dataset {d}/mismatch.npz --out {o}/mc --no-progress",
        "mismatch.npz",
    ),
    _p(
        "input",
        "cifar-pickle-payload",
        f"{TRAIN} data.dataset=cifar10 data.data_dir={{d}}/evilcifar",
        "data_batch_1",
        "pwned",
    ),
    _p(
        "input",
        "cifar-batch-truncated",
        f"{TRAIN} data.dataset=cifar10 data.data_dir={{d}}/trunccifar",
        "data_batch_1",
    ),
    _p(
        "input",
        "make-c-cifar-payload",
        "data make-c --dataset cifar10 --data-dir {d}/evilcifar --out {o}/mc --no-progress",
        "test_batch",
        "pwned",
    ),
    _p(
        "input",
        "ui-store-not-a-database",
        "ui --port 5999 --tracking-uri sqlite:///{d}/garbage.bin",
        "garbage.bin",
    ),
    _p("input", "ood-file-flat-images", "evaluate {d}/model.pt --ood {d}/flat.npz", "flat.npz"),
    _p("input", "ood-file-28-pixels", "evaluate {d}/model.pt --ood {d}/small.npy", "small.npy"),
    _p("input", "ui-store-a-directory", "ui --port 5999 --tracking-uri sqlite:///{d}/adir", "adir"),
]

# services that are not there: a one-line answer within seconds, not minutes
SERVICES = [
    _p(
        "service",
        "evaluate-ray-client-unreachable",
        f"{EVAL} --address ray://127.0.0.1:1",
        "127.0.0.1:1",
        ray=True,
    ),
    _p(
        "service",
        "evaluate-gcs-unreachable",
        f"{EVAL} --address 127.0.0.1:1",
        "127.0.0.1:1",
        ray=True,
    ),
    _p("service", "evaluate-address-malformed", f"{EVAL} --address somewhere", "somewhere"),
    _p(
        "service",
        "evaluate-ray-address-env-unreachable",
        EVAL,
        "127.0.0.1:1",
        ray=True,
        env=(("RAY_ADDRESS", "127.0.0.1:1"),),
    ),
    _p("service", "ui-tracking-server", "ui --tracking-uri http://127.0.0.1:1", "127.0.0.1:1"),
]

PROBES = [*LATER, *OUTPUTS, *INPUTS, *SERVICES]

SEARCH = "search --strategy fixed --config {d}/tiny.yaml --quiet tracking.workdir={o}/runs"
# the same classes for `auxtune search` / `compare`: they need changes in the lead's files
LEAD = [
    _p("lead", "search-name-escapes", f"{SEARCH} --name ../../escape", "--name"),
    _p("lead", "search-name-absolute", f"{SEARCH} --name {{o}}/abs", "--name"),
    _p("lead", "search-workdir-unwritable", f"{SEARCH} tracking.workdir={UNWRITABLE}", "workdir"),
    _p("lead", "search-storage-unwritable", f"{SEARCH} tracking.storage={UNWRITABLE}", "storage"),
    _p(
        "lead",
        "search-optuna-storage-unwritable",
        f"search --strategy optuna --config {{d}}/tiny.yaml --quiet tracking.workdir={{o}}/runs "
        f"search.optuna_storage=sqlite:///{UNWRITABLE}/study.db",
        "optuna_storage",
    ),
    _p("lead", "search-cuda-without-cuda", f"{SEARCH} runtime.device=cuda", "runtime.device"),
    _p(
        "lead",
        "search-corruptions-dir-missing",
        f"{SEARCH} data.corruptions_dir={{d}}/nowhere",
        "corruptions_dir",
    ),
    _p("lead", "compare-out-unwritable", f"{COMPARE} --out {UNWRITABLE}", "--out"),
    _p("lead", "compare-out-is-a-file", f"{COMPARE} --out {{d}}/afile", "--out"),
]


# ------------------------------------------------------------------------------------ fixtures
class _Payload:
    """Unpickling this creates ``target``: proof that code ran."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (os.system, (f"touch {self.target}",))


def make_fixtures(d: Path) -> None:
    """The files the probes point at, under ``d``."""
    from auxtune.data.cifar_c import write_corruption, write_labels
    from auxtune.data.parquet import write_parquet_from_arrays

    (d / "tiny.yaml").write_text(TINY_YAML)
    (d / "list.yaml").write_text("- a\n- b\n")
    (d / "broken.yaml").write_text("optim: {lr: 0.1\nseed: [\n")
    (d / "garbage.bin").write_bytes(bytes(range(256)) * 4)
    (d / "afile").write_text("a regular file\n")
    (d / "adir").mkdir()
    _checkpoint(d / "model.pt")
    (d / "evil.pt").write_bytes(pickle.dumps(_Payload(d / "pwned")))
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (10, 32, 32, 3), dtype=np.uint8)
    labels, severities = np.arange(10) % 10, np.repeat([1, 2, 3, 4, 5], 2)
    for name in ("pq", "pqbad"):
        for corruption in ("fog", "snow"):
            write_parquet_from_arrays(d / name, corruption, images, labels, severities)
    _corrupt_first_page(d / "pqbad" / "fog-00000.parquet")
    (d / "pqfake").mkdir()
    (d / "pqfake" / "fog-00000.parquet").write_bytes(b"PAR1 not really")
    write_labels(d / "npyc", labels[:2])
    write_corruption(d / "npyc", "fog", images)
    (d / "npytrunc").mkdir()
    write_labels(d / "npytrunc", labels[:2])
    raw = (d / "npyc" / "fog.npy").read_bytes()
    (d / "npytrunc" / "fog.npy").write_bytes(raw[: len(raw) // 2])
    np.savez(d / "nolabels.npz", images=images)
    np.savez(d / "flat.npz", images=images.reshape(10, -1), labels=labels)
    np.save(d / "small.npy", images[:, :28, :28])  # 28 x 28 pixels: not the model's 32 x 32
    np.savez(d / "mismatch.npz", images=images, labels=labels[:3])
    _cifar_dir(d / "evilcifar", pickle.dumps(_Payload(d / "pwned"), protocol=2))
    _cifar_dir(d / "trunccifar", _cifar_batch_bytes()[:100])


def _checkpoint(path: Path) -> None:
    from auxtune.robust.checkpoint import save_checkpoint
    from auxtune.robust.config import ModelConfig, OptimConfig, RuntimeConfig, TrainConfig
    from auxtune.robust.trainer import Trainer

    cfg = TrainConfig(
        model=ModelConfig(depth=10, widen_factor=1, base_width=4),
        optim=OptimConfig(batch_size=8, epochs=1),
        runtime=RuntimeConfig(device="cpu"),
    )
    images = np.zeros((8, 32, 32, 3), np.uint8)
    save_checkpoint(Trainer(cfg, images, np.zeros(8, np.int64), num_classes=10), path)


def _corrupt_first_page(path: Path) -> None:
    """Overwrite the first page header: the footer (schema) still reads, the pages do not."""
    data = bytearray(path.read_bytes())
    data[4:40] = b"\xff" * 36
    path.write_bytes(bytes(data))


def _cifar_batch_bytes() -> bytes:
    batch = {b"data": np.zeros((4, 3072), np.uint8), b"labels": [0, 1, 2, 3]}
    return pickle.dumps(batch, protocol=2)


def _cifar_dir(root: Path, batch: bytes) -> None:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (folder / name).write_bytes(batch)


# ------------------------------------------------------------------------------------- running
@dataclass(frozen=True)
class Outcome:
    probe: Probe
    code: int
    stderr: str
    left: tuple[str, ...]
    seconds: float

    @property
    def problems(self) -> list[str]:
        lines = [line for line in self.stderr.splitlines() if line.strip()]
        if self.probe.ray:
            lines = [line for line in lines if not RAY_LOG.match(line)]
        found = []
        if self.code != 2:
            found.append(f"exit code {self.code}")
        if "Traceback" in self.stderr:
            found.append("traceback")
        if len(lines) != 1:
            found.append(f"{len(lines)} stderr lines")
        elif self.probe.expect not in lines[0]:
            found.append(f"error line lacks {self.probe.expect!r}")
        if self.left:
            more = f" and {len(self.left) - 5} more" if len(self.left) > 5 else ""
            found.append(f"left behind: {', '.join(self.left[:5])}{more}")
        return found


def run_probe(probe: Probe, d: Path, timeout: float = 300) -> Outcome:
    """Run ``probe`` with inputs under ``d`` and a fresh, empty output directory (also its cwd)."""
    import tempfile
    import time

    out = Path(tempfile.mkdtemp(prefix=f"{probe.id}-", dir=d / "outputs"))
    argv = [str(AUXTUNE), *(a.replace("{d}", str(d)).replace("{o}", str(out)) for a in probe.argv)]
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT / "src"),
        "RAY_AUTH_MODE": "disabled",
        "AUXTUNE_CACHE": str(d / "cache"),
        **dict(probe.env),
    }
    start = time.monotonic()
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, env=env, timeout=timeout, cwd=out
        )
        code, stderr = done.returncode, done.stderr + done.stdout * ("Traceback" in done.stdout)
    except subprocess.TimeoutExpired:
        code, stderr = -1, f"timed out after {timeout:.0f} s"
    seconds = time.monotonic() - start
    left = [str(p.relative_to(out)) for p in sorted(out.rglob("*"))]
    left += [p for p in probe.leaves_nothing if (d / p).exists()]
    return Outcome(probe, code, stderr, tuple(left), seconds)


def main() -> int:
    import tempfile

    wanted = sys.argv[1:]
    table = [p for p in [*PROBES, *LEAD] if p.id in wanted or p.kind in wanted]
    selected = table if wanted else PROBES
    with tempfile.TemporaryDirectory(prefix="auxtune-probes-") as tmp:
        make_fixtures(Path(tmp))
        (Path(tmp) / "outputs").mkdir()
        with ThreadPoolExecutor(2) as pool:
            outcomes = list(pool.map(lambda p: run_probe(p, Path(tmp)), selected))
    for o in outcomes:
        verdict = "ok" if not o.problems else "FAIL " + "; ".join(o.problems)
        last = o.stderr.strip().splitlines()[-1] if o.stderr.strip() else ""
        print(f"{o.probe.kind:8} {o.probe.id:38} {o.seconds:5.1f}s {verdict} | {last[:150]}")
    failed = sum(bool(o.problems) for o in outcomes)
    print(f"{len(outcomes) - failed} of {len(outcomes)} probes answered correctly")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
