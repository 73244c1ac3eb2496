"""``auxtune evaluate``: a checkpoint's accuracy on a corrupted test set, streamed with Ray Data.

auxtune evaluate runs/model.pt --corruptions data/CIFAR-10-C-parquet --json report.json
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

PROTOCOLS = ("standard", "paper")


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="accuracy on a corrupted test set (Ray Data)",
        description=(
            "Accuracy per corruption and severity of a checkpoint on a Parquet corrupted test set "
            "(`auxtune data convert` makes one from the CIFAR-C .npy layout), the mean over the "
            "15 standard corruptions (headline) and over all 19."
        ),
    )
    parser.add_argument("checkpoint", help="checkpoint file written by `auxtune train`")
    parser.add_argument(
        "--corruptions", required=True, metavar="DIR", help="Parquet corrupted test set"
    )
    parser.add_argument("--json", metavar="OUT", help="also write the full report as JSON here")
    parser.add_argument("--batch-size", type=int, default=1024, help="images per model call")
    parser.add_argument(
        "--address",
        default=None,
        help="Ray cluster to use: auto or ray://HOST:10001 (default: a local Ray for this run)",
    )
    parser.add_argument(
        "--protocol",
        choices=PROTOCOLS,
        default="standard",
        help="standard: every image; paper: skip the first 100 of every severity block "
        "(the seed paper meta-validated on them)",
    )
    parser.add_argument(
        "--images-per-block",
        type=int,
        default=0,
        metavar="K",
        help="evaluate only the first K images of every block, for a quick look (0 = all)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from auxtune.data.meta_validation import PAPER_PROTOCOL_SKIP
    from auxtune.data.streaming import evaluate_stream

    report = evaluate_stream(
        args.checkpoint,
        args.corruptions,
        batch_size=args.batch_size,
        address=args.address,
        skip_first=PAPER_PROTOCOL_SKIP if args.protocol == "paper" else 0,
        first_k=args.images_per_block,
        protocol=args.protocol,
        progress=sys.stderr.isatty(),
    )
    print(report.format_table())
    if args.json:
        report.to_json(args.json)
    summary = {"mean_15": report.mean_15, "mean_19": report.mean_19, "json": args.json}
    print(json.dumps(summary))
    return 0
