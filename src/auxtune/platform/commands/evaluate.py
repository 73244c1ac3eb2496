"""``auxtune evaluate``: a checkpoint's accuracy on a corrupted test set, streamed with Ray Data,
and/or under adversarial attack on its test split, and/or its OOD detection metrics
(:mod:`auxtune.platform.ood_evaluation`).

auxtune evaluate runs/model.pt --corruptions data/CIFAR-10-C-parquet --json report.json
auxtune evaluate runs/model.pt --attack pgd20,pgd100,autoattack --epsilon 8/255 --checks
auxtune evaluate runs/model.pt --ood heldout --ood uniform
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from auxtune.errors import UserError
from auxtune.platform.commands import _attacks, add_mlflow_flags
from auxtune.platform.ood_evaluation import add_ood_arguments, refuse_held_out_classes, run_ood

PROTOCOLS = ("standard", "paper")


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="accuracy on a corrupted test set (Ray Data), under attack, OOD detection",
        description=(
            "Accuracy per corruption and severity of a checkpoint on a Parquet corrupted test set "
            "(`auxtune data convert` makes one from the CIFAR-C .npy layout), the mean over the "
            "15 standard corruptions (headline) and over all 19; and/or its accuracy under "
            "adversarial attack on its test split (--attack); and/or how well its OOD detectors "
            "tell its test images from an OOD set (--ood: AUROC, AUPR, FPR95)."
        ),
    )
    parser.add_argument("checkpoint", help="checkpoint file written by `auxtune train`")
    parser.add_argument("--corruptions", metavar="DIR", help="Parquet corrupted test set")
    _attacks.add_arguments(parser)
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
    add_ood_arguments(parser)
    add_mlflow_flags(parser)  # recorded as a run of experiment <checkpoint dir>-evaluate
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from auxtune.platform.evaluation_runs import evaluation_store, record_evaluation

    if not args.corruptions and not args.attack and not args.ood:
        raise UserError(
            "nothing to evaluate: give --corruptions DIR, --attack LIST and/or --ood SET"
        )
    attacks = _attacks.parse(args)  # checked before any corruption is streamed
    _check_before_work(args)
    store = evaluation_store(args)  # an unusable MLflow store fails before the evaluation
    report: dict[str, Any] = {}
    summary: dict[str, Any] = {}
    corruption = None
    if args.corruptions:
        refuse_held_out_classes(args.checkpoint)  # its labels are renumbered
        corruption = _corruptions(args)
        print(corruption.format_table())
        report = corruption.to_dict()
        summary = {"mean_15": corruption.mean_15, "mean_19": corruption.mean_19}
    run_metrics: dict[str, float] = {}
    if attacks:
        adversarial = _attacks.run(args, attacks)
        print(adversarial.format_table())
        report["adversarial"] = adversarial.to_dict()
        summary["adversarial"] = {r.attack: round(r.accuracy, 4) for r in adversarial.attacks}
        run_metrics = {f"adv_{r.attack}_accuracy": r.accuracy for r in adversarial.attacks}
    ood = run_ood(args)
    if ood is not None:
        report["ood"] = summary["ood"] = ood
        run_metrics.update(
            {
                f"ood/{name}/{detector}/{measure}": value
                for name, by_detector in ood.items()
                for detector, measures in by_detector.items()
                for measure, value in measures.items()
            }
        )
    if args.json:
        from auxtune.data._files import save_json

        save_json(args.json, report)
    print(json.dumps({**summary, "json": args.json}))
    where = record_evaluation(store, args, corruption, run_metrics)
    if where:
        print(where)
    return 0


def _corruptions(args: argparse.Namespace) -> Any:
    """The corruption report of ``args.checkpoint`` on ``args.corruptions``, streamed."""
    from auxtune.data.meta_validation import PAPER_PROTOCOL_SKIP
    from auxtune.data.streaming import evaluate_stream
    from auxtune.ray_connect import ray_data_failures_to_log_file

    with ray_data_failures_to_log_file():  # a corrupt file is reported in one line
        return evaluate_stream(
            args.checkpoint,
            args.corruptions,
            batch_size=args.batch_size,
            address=args.address,
            skip_first=PAPER_PROTOCOL_SKIP if args.protocol == "paper" else 0,
            first_k=args.images_per_block,
            protocol=args.protocol,
            progress=sys.stderr.isatty(),
        )


def _check_before_work(args: argparse.Namespace) -> None:
    """Flags, the report's location and the Ray address, before any image is evaluated."""
    import os

    from auxtune.platform.outputs import check_writable
    from auxtune.ray_connect import check_address

    if args.batch_size < 1:
        raise UserError(f"--batch-size {args.batch_size} must be >= 1")
    if args.images_per_block < 0:
        raise UserError(f"--images-per-block {args.images_per_block} must be >= 0 (0 = all)")
    if args.json:
        check_writable(args.json, "--json")
    address = args.address or os.environ.get("RAY_ADDRESS")
    if address:
        check_address(address, "--address" if args.address else "RAY_ADDRESS")
