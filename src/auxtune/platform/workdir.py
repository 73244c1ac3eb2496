"""Tune experiment directories that concurrent searches never share.

A search named ``demo-pbt`` runs in ``<results>/demo-pbt``, or ``demo-pbt-2``, ``-3``, ... when
that name is taken (``<results>`` is ``tracking.storage`` or ``<workdir>/ray_results``). A fresh
search *reserves* its directory with ``mkdir`` (atomic: of two searches starting at once, one
gets ``demo-pbt`` and the other ``demo-pbt-2``) and its driver holds the directory's lock
(:mod:`auxtune.platform.locks`) for as long as it runs; the kernel drops the lock when the
driver dies, however it dies.

``--resume`` continues the newest unfinished search of that name that no running driver holds
(a search whose ledger says it finished is taken only when no unfinished one is left).
On remote storage (``s3://``) the directory cannot be probed: the reservation, the lock and the
ledger live in ``<workdir>/search_state/<name>[-k]/`` instead.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from auxtune.errors import UserError
from auxtune.platform import tracking
from auxtune.platform.locks import try_lock

RESULTS_DIR = "ray_results"  # under tracking.workdir unless tracking.storage is set
LOCK_FILE = ".auxtune-driver.lock"
MAX_SUFFIX = 10_000


@dataclass(frozen=True)
class ExperimentSlot:
    """One candidate directory of a search name: where Tune writes and where the driver's
    ledger and lock live (``home``: the experiment directory, or a local one for remote storage)."""

    exp_dir: str  # a path or a URI
    home: Path

    @property
    def ledger(self) -> str:
        return str(self.home / tracking.STATE_FILE)

    @property
    def lock(self) -> Path:
        return self.home / LOCK_FILE

    @property
    def started(self) -> bool:
        """Tune ran here (a local ``tuner.pkl``; for remote storage, a ledger)."""
        marker = "tuner.pkl" if self.home == Path(self.exp_dir) else tracking.STATE_FILE
        return (self.home / marker).is_file()

    @property
    def finished(self) -> bool:
        """The ledger says the last driver finished every trial."""
        return bool(tracking.SearchState(self.ledger).data.get("complete"))


def slots(exp: Any, name: str) -> Iterator[ExperimentSlot]:
    """``name``, ``name-2``, ``name-3``, ... as slots, in that order."""
    for i in range(1, MAX_SUFFIX):
        yield _slot(exp, name if i == 1 else f"{name}-{i}")


def _slot(exp: Any, leaf: str) -> ExperimentSlot:
    workdir = Path(exp.tracking.workdir).expanduser().resolve()
    storage = exp.tracking.storage
    if storage and "://" in storage:
        return ExperimentSlot(f"{storage.rstrip('/')}/{leaf}", workdir / "search_state" / leaf)
    root = Path(storage).expanduser().resolve() if storage else workdir / RESULTS_DIR
    return ExperimentSlot(str(root / leaf), root / leaf)


@contextmanager
def claim_experiment_dir(exp: Any, name: str, resume: bool) -> Iterator[ExperimentSlot]:
    """The slot of a fresh search (reserved) or of the search to resume, locked for the block.

    A fresh slot that the block leaves with nothing but its lock (a search that failed before
    it wrote anything) is given back, so the next search takes the name again.
    """
    slot, fd = _resumed(exp, name) if resume else _reserved(exp, name)
    try:
        yield slot
    except BaseException:
        if not resume and {p.name for p in slot.home.iterdir()} <= {LOCK_FILE}:
            slot.lock.unlink(missing_ok=True)
            slot.home.rmdir()
        raise
    finally:
        os.close(fd)


def experiment_dir(exp: Any, name: str, resume: bool) -> tuple[str, str]:
    """(Tune experiment directory, ledger path) of a fresh (reserved) or resumed search, without
    holding its lock: for runs that are never resumed (a comparison's retrains)."""
    slot, fd = _resumed(exp, name) if resume else _reserved(exp, name)
    os.close(fd)
    return slot.exp_dir, slot.ledger


def _reserved(exp: Any, name: str) -> tuple[ExperimentSlot, int]:
    for slot in slots(exp, name):
        slot.home.parent.mkdir(parents=True, exist_ok=True)
        try:
            slot.home.mkdir()
        except FileExistsError:
            continue
        fd = try_lock(slot.lock)
        if fd is not None:  # always: the directory is new, nobody else has opened its lock
            return slot, fd
    raise UserError(f"no free experiment directory for search {name!r} ({MAX_SUFFIX} taken)")


def _resumed(exp: Any, name: str) -> tuple[ExperimentSlot, int]:
    started = [slot for slot in _existing(exp, name) if slot.started]
    if not started:
        root = Path(next(slots(exp, name)).exp_dir).parent
        raise UserError(
            f"nothing to resume: no search {name!r} under {root} (run it without --resume first)"
        )
    newest_first = started[::-1]
    preferred = [s for s in newest_first if not s.finished] + [
        s for s in newest_first if s.finished
    ]
    for slot in preferred:
        fd = try_lock(slot.lock)
        if fd is not None:
            if slot is not started[-1]:
                print(f"note: resuming {slot.exp_dir}", file=sys.stderr)
            return slot, fd
    raise UserError(
        f"every search {name!r} is running in another process ({len(started)} found under "
        f"{Path(started[0].exp_dir).parent}); wait for it or stop it, then --resume"
    )


def _existing(exp: Any, name: str) -> list[ExperimentSlot]:
    """The slots of ``name`` whose directory exists, oldest first (there may be gaps: a
    reservation given back)."""
    parent = _slot(exp, name).home.parent
    if not parent.is_dir():
        return []
    pattern = re.compile(rf"{re.escape(name)}(-[1-9][0-9]*)?")
    leaves = [p.name for p in parent.iterdir() if p.is_dir() and pattern.fullmatch(p.name)]

    def suffix(leaf: str) -> int:
        return 1 if leaf == name else int(leaf.rsplit("-", 1)[1])

    return [_slot(exp, leaf) for leaf in sorted(leaves, key=suffix)]


__all__ = [
    "LOCK_FILE",
    "RESULTS_DIR",
    "ExperimentSlot",
    "claim_experiment_dir",
    "experiment_dir",
    "slots",
]
