"""Headless Chromium for the tests that look at what a user sees (Playwright drives it).

Debian's ``chromium`` package (``.ci/run`` installs it when missing), never Playwright's own
browser download (not reachable here). Tests that need it skip, saying why, where it is missing.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",  # tests run as root in CI containers
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def chromium_path() -> str:
    """The Chromium executable, or a skip that says how to get one."""
    found = CHROMIUM if Path(CHROMIUM).is_file() else shutil.which("chromium")
    if not found:
        pytest.skip("no Chromium: `apt-get install -y chromium` (.ci/run does it where it can)")
    pytest.importorskip("playwright.sync_api", reason="pip install -c constraints.txt -e '.[dev]'")
    return found


@contextmanager
def chromium(profile: Path, **context: Any) -> Iterator[Any]:
    """A browser context on a fresh user-data directory ``profile``; closed on exit."""
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=executable, headless=True, args=ARGS, **context
        )
        try:
            yield browser
        finally:
            browser.close()


#: every <text> of the page's first <svg> whose rendered box leaves the svg's box (real fonts)
TEXT_OUTSIDE_SVG = """() => {
  const svg = document.querySelector('svg');
  const frame = svg.getBoundingClientRect();
  return Array.from(svg.querySelectorAll('text')).map(t => {
    const r = t.getBoundingClientRect();
    return {text: t.textContent, left: r.left - frame.left, top: r.top - frame.top,
            right: r.right - frame.left, bottom: r.bottom - frame.top,
            width: frame.width, height: frame.height};
  }).filter(b => b.left < 0 || b.top < 0 || b.right > b.width || b.bottom > b.height);
}"""
