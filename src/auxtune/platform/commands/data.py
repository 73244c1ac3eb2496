"""``auxtune data``: make corrupted test sets (``make-c``), convert them to Parquet (``convert``).

auxtune data make-c --dataset synthetic --out runs/synthetic-c --num 500
auxtune data make-c --dataset cifar10 --data-dir data --out data/CIFAR-10-C-auxtune
auxtune data convert data/CIFAR-10-C data/CIFAR-10-C-parquet
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from auxtune.errors import DataError


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "data", help="make and convert corrupted test sets", description=__doc__.split("\n")[0]
    )
    commands = parser.add_subparsers(dest="data_command", metavar="SUBCOMMAND", required=True)
    make = commands.add_parser(
        "make-c",
        help="write a CIFAR-C style corrupted set of a test set",
        description="Corrupt a test set with the 19 CIFAR-C corruptions at severities 1..5 and "
        "write it in the released layout (<corruption>.npy, labels.npy) plus manifest.json.",
    )
    make.add_argument(
        "--dataset",
        required=True,
        help="synthetic, photo_shapes, cifar10, cifar100, or PATH: a .npz with images and labels, or a "
        "directory with images.npy and labels.npy",
    )
    make.add_argument("--out", required=True, help="output directory")
    make.add_argument("--format", default="npy", choices=("npy", "parquet"), help="file format")
    make.add_argument("--data-dir", help="CIFAR root (cifar10/cifar100) or synthetic cache dir")
    make.add_argument("--seed", type=int, default=0, help="corruption seed (default 0)")
    make.add_argument(
        "--num",
        type=int,
        help="corrupt only the first N test images (synthetic: the test split of data.seed=0 "
        "with data.num_test=N, default 1000)",
    )
    make.add_argument("--corruptions", help="comma-separated subset (default: all 19)")
    make.add_argument(
        "--device",
        default="cpu",
        help="where to corrupt: cpu (default), cuda, cuda:N or auto; CUDA is faster but draws "
        "other random numbers than the CPU from the same seed",
    )
    make.add_argument("--no-progress", action="store_true", help="no progress bar")
    make.set_defaults(run=run_make_c)
    convert = commands.add_parser(
        "convert",
        help="convert a CIFAR-C .npy directory to Parquet (for Ray Data)",
        description="Convert a CIFAR-C .npy directory to the Parquet layout Ray Data reads.",
    )
    convert.add_argument("src", help="CIFAR-C directory (<corruption>.npy, labels.npy)")
    convert.add_argument("dst", help="output directory for the Parquet files")
    convert.set_defaults(run=run_convert)


def run_make_c(args: argparse.Namespace) -> int:
    from auxtune.data.make_c import check_corruptions, make_c
    from auxtune.platform.outputs import check_writable
    from auxtune.platform.preflight import check_device

    if args.num is not None and args.num < 1:
        raise DataError(f"--num {args.num} must be >= 1")
    if args.seed < 0:
        raise DataError(f"--seed {args.seed} must be >= 0")
    names = None
    if args.corruptions is not None:
        names = check_corruptions([c.strip() for c in args.corruptions.split(",") if c.strip()])
    check_device(args.device, "--device")
    check_writable(args.out, "--out", directory=True)
    images, labels, base = _base_test_set(args)
    if args.num is not None:
        images, labels = images[: args.num], labels[: args.num]
    out = make_c(
        images,
        labels,
        args.out,
        corruptions=names,
        seed=args.seed,
        fmt=args.format,
        progress=not args.no_progress,
        base=base,
        device=args.device,
    )
    print(json.dumps({"out": str(out), "base_dataset": base, "n": len(labels)}))
    return 0


def run_convert(args: argparse.Namespace) -> int:
    from auxtune.data.parquet import convert_directory
    from auxtune.platform.outputs import check_writable

    check_writable(args.dst, "DST", directory=True)

    print(json.dumps({"out": str(convert_directory(args.src, args.dst))}))
    return 0


def _base_test_set(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray, str]:
    """The test images to corrupt: a named dataset's test split, or arrays read from a path."""
    from auxtune.data.embedded import EMBEDDED, split_seed
    from auxtune.data.make_c import check_base

    if args.dataset in EMBEDDED:
        seed = split_seed(0, "test")  # the test split of data.seed=0
        load = EMBEDDED[args.dataset].load
        return (*load(args.num or 1000, seed, args.data_dir), args.dataset)
    if args.dataset in ("cifar10", "cifar100"):
        from auxtune.data.cifar import load_cifar

        return (*load_cifar(args.dataset, args.data_dir, train=False), args.dataset)
    path = Path(args.dataset)
    expected = (
        "give synthetic, photo_shapes, cifar10, cifar100, a .npz file with images and labels, "
        "or a directory with images.npy and labels.npy"
    )
    if not path.exists():
        raise DataError(f"--dataset {path} does not exist; {expected}")
    if path.is_dir():
        images, labels = _load_array(path / "images.npy"), _load_array(path / "labels.npy")
    elif path.suffix == ".npz" and path.is_file():
        images, labels = _load_array(path, "images"), _load_array(path, "labels")
    else:
        raise DataError(f"--dataset {path} is not a .npz file or a directory; {expected}")
    try:
        images, labels = check_base(images, labels)
    except DataError as err:
        raise DataError(f"--dataset {path}: {err}") from None
    return images, labels, str(path)


def _load_array(path: Path, key: str | None = None) -> np.ndarray:
    """One array of a .npy file, or array ``key`` of a .npz file."""
    if not path.is_file():
        raise DataError(f"{path} does not exist")
    try:
        loaded = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise DataError(f"{path} is not a readable numpy file: {err}") from err
    if isinstance(loaded, np.ndarray):
        return loaded
    with loaded:
        if key not in loaded.files:
            raise DataError(f"{path} has no array {key!r}; it holds {', '.join(loaded.files)}")
        return loaded[key]
