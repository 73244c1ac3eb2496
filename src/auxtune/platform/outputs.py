"""Output locations, checked before the work that fills them starts.

A command that trains for an hour and then cannot write its model has lost the hour, so every
command checks where it will write first (``auxtune train --out``, ``evaluate --json``,
``data make-c --out``, ``data convert DST``, compare's ``--out``, a search's workdir). The check
creates nothing that stays: it finds the nearest existing ancestor of the path and creates (and at
once removes) a temporary file there, which catches read-only file systems, ``/proc`` and missing
permissions alike. A disk that fills up later is not caught here.

    >>> import tempfile
    >>> root = tempfile.mkdtemp()
    >>> check_writable(f"{root}/runs/model.pt", "--out").name
    'model.pt'
    >>> check_writable("/proc/nowhere/model.pt", "--out")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    auxtune.errors.UserError: --out /proc/nowhere/model.pt cannot be written: ...
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from auxtune.errors import UserError


def check_writable(path: str | Path, what: str, *, directory: bool = False) -> Path:
    """Return ``path`` (absolute) when this process can create or replace it, else raise
    :class:`UserError` naming ``what`` (the flag or config field the path came from) and why.

    ``directory=True``: ``path`` is a directory the command fills (it may exist already);
    otherwise it is a file (written atomically beside itself, so its directory must be writable).
    """
    target = Path(path).expanduser().absolute()
    if target.is_dir() and not directory:
        raise UserError(f"{what} {path} is a directory; give a file path")
    if target.exists() and not target.is_dir() and directory:
        raise UserError(f"{what} {path} is a file, not a directory")
    where = target if target.is_dir() else _nearest_existing(target.parent)
    if not where.is_dir():
        raise UserError(f"{what} {path} cannot be written: {where} is a file, not a directory")
    try:
        fd, probe = tempfile.mkstemp(dir=where, prefix=".auxtune-write-check-")
    except OSError as err:
        raise UserError(
            f"{what} {path} cannot be written: {where}: {err.strerror or err}"
        ) from None
    os.close(fd)
    os.unlink(probe)
    return target


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path
