"""Test-session isolation: every cache and Ray setting the suite touches lives in a temp dir."""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest

# Set before anything imports auxtune or starts Ray, so Ray workers inherit them too.
_CACHE = tempfile.mkdtemp(prefix="auxtune-test-cache-")
os.environ["AUXTUNE_CACHE"] = _CACHE  # synthetic data and corrupted sets, never ~/.cache
os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # local test clusters need no token
os.environ.setdefault("MPLBACKEND", "Agg")


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_CACHE, ignore_errors=True)


@pytest.fixture(scope="module")
def one_torch_thread():
    """Torch on one thread for a module of tiny models (``pytestmark = usefixtures(...)``).

    A second thread only adds synchronisation to batches this small, and on a busy machine two
    spin-waiting OpenMP threads slow every small operation down many times over (measured: 10x
    and more).
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
