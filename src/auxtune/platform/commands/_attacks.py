"""``auxtune evaluate --attack``: flags, their parsing and the run (the evaluate command's part
that attacks a checkpoint on its test split)."""

from __future__ import annotations

import argparse
from fractions import Fraction
from typing import Any

from auxtune.errors import UserError
from auxtune.robust.adversarial_config import ATTACK_FORMS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("adversarial evaluation (on the checkpoint's test split)")
    group.add_argument(
        "--attack",
        metavar="LIST",
        help=f"comma list of {ATTACK_FORMS}",
    )
    group.add_argument(
        "--epsilon",
        metavar="EPS",
        help="radius in pixel units of [0, 1] images, e.g. 8/255 or 0.5 (default: the "
        "checkpoint's adversarial.epsilon)",
    )
    group.add_argument("--threat-model", choices=("linf", "l2"), help="default: the checkpoint's")
    group.add_argument(
        "--restarts", type=int, default=1, help="random restarts (worst case per image)"
    )
    group.add_argument(
        "--images",
        type=int,
        default=0,
        metavar="N",
        help="attack the first N test images (0 = all)",
    )
    group.add_argument(
        "--checks",
        action="store_true",
        help="also the epsilon sweep (adversarial.sweep) and the sanity checks against "
        "gradient masking (adds pgd20, pgd100 and apgd)",
    )


def parse(args: argparse.Namespace) -> list[str]:
    """The attack names of ``--attack`` (empty without it), every flag checked: one-line errors."""
    if not args.attack:
        return []
    if args.epsilon is not None:
        parse_epsilon(args.epsilon)
    if args.restarts < 1 or args.images < 0:
        raise UserError(
            f"--restarts {args.restarts} must be >= 1 and --images {args.images} >= 0 (0 = all)"
        )
    return _attack_names(args.attack)


def parse_epsilon(text: str) -> float:
    """``8/255`` or ``0.0314`` -> a float > 0; anything else is a one-line user error.

    >>> round(parse_epsilon("8/255"), 5)
    0.03137
    """
    try:
        value = float(Fraction(text.strip()))
    except (ValueError, ZeroDivisionError):
        raise UserError(f"--epsilon {text!r} is not a number such as 8/255 or 0.5") from None
    if value <= 0:
        raise UserError(f"--epsilon {text} must be > 0 (pixel units of [0, 1] images)")
    return value


def _attack_names(text: str) -> list[str]:
    from auxtune.robust.adversarial_eval import check_attack_name

    names = [name.strip().lower() for name in text.split(",") if name.strip()]
    if not names:
        raise UserError("--attack lists no attack")
    for name in names:
        try:
            check_attack_name(name)
        except ValueError as err:
            raise UserError(f"--attack: {err}") from None
    return names


def run(args: argparse.Namespace, attacks: list[str]) -> Any:
    """The attack report of the checkpoint ``args.checkpoint`` (see ``auxtune evaluate --help``)."""
    epsilon = parse_epsilon(args.epsilon) if args.epsilon is not None else None
    from auxtune.data.datasets import load_dataset
    from auxtune.robust.checkpoint import load_model
    from auxtune.robust.gradient_masking import attack_report

    try:
        model, cfg = load_model(args.checkpoint)
    except (FileNotFoundError, ValueError) as err:
        raise UserError(str(err)) from None
    threat_model = args.threat_model or cfg.adversarial.threat_model
    epsilon = epsilon if epsilon is not None else cfg.adversarial.epsilon
    if threat_model == "linf" and epsilon > 1:
        raise UserError(f"--epsilon {epsilon} must be <= 1 for linf (pixel units of [0, 1] images)")
    test = load_dataset(cfg.data).test
    n = args.images or len(test.labels)
    return attack_report(
        model,
        test.images[:n],
        test.labels[:n],
        attacks,
        threat_model,
        epsilon,
        restarts=args.restarts,
        sweep=cfg.adversarial.sweep if args.checks else (),
        checks=args.checks,
    )
