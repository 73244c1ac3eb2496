"""Test-session isolation: every cache and Ray setting the suite touches lives in a temp dir."""

from __future__ import annotations

import os
import shutil
import tempfile

# Set before anything imports auxtune or starts Ray, so Ray workers inherit them too.
_CACHE = tempfile.mkdtemp(prefix="auxtune-test-cache-")
os.environ["AUXTUNE_CACHE"] = _CACHE  # synthetic data and corrupted sets, never ~/.cache
os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # local test clusters need no token
os.environ.setdefault("MPLBACKEND", "Agg")


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_CACHE, ignore_errors=True)
