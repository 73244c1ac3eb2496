"""What a failed trial's run records as its error: the exception line of its traceback."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def trial_error_message(trial: Any) -> str:
    """The last meaningful line of a failed trial's error (e.g. ``DivergenceError: ...``)."""
    text = ""
    path = getattr(trial, "error_file", None)
    if path and Path(path).is_file():
        text = Path(path).read_text(errors="replace")
    return error_line(text) or "trial failed (no error file)"


def error_line(text: str) -> str:
    """Pick the exception line out of a traceback (the last ``SomethingError: ...`` line)."""
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    for line in reversed(lines):
        head = line.split(":", 1)[0]
        if head.endswith(("Error", "Exception")) and " " not in head:
            return line[:1000]
    return lines[-1][:1000] if lines else ""
