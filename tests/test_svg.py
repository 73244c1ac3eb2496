"""The lambda-trajectory figure keeps every title and legend word inside its frame, whatever the
names: checked from the layout's own text-width estimate, and in a real browser's rendering."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from auxtune.platform.svg import CHAR_EM, Layout, lambda_trajectory_svg, text_width, wrap
from auxtune.robust.config import task_names

TASK_NAMES = task_names()

NS = "{http://www.w3.org/2000/svg}"
LONG_TITLE = ", ".join(f"lambda/{t}={0.1 * (k + 1):.3g}" for k, t in enumerate(TASK_NAMES))
CASES = {
    # the title and legend the issue saw cut: `tation=0.882, lambda/blur_reconstruction...`
    "every task, long title": (TASK_NAMES, LONG_TITLE + ", val_corrupt_accuracy=0.882"),
    "one short": (("rotation",), "fixed-001 rot=0.5"),
    "a name too wide to stand beside": (("a_much_longer_self_supervised_task", "rotation"), "t"),
    "a title of forty lines": (("rotation", "jigsaw"), LONG_TITLE * 8),
    "one unbreakable word": (("jigsaw",), "x" * 200),
    "no lambdas": ((), "baseline"),
}


def history(tasks: tuple[str, ...], epochs: int = 4) -> list[dict[str, float]]:
    rows = [
        {f"lambda/{t}": 0.1 * (k + 1) * (e + 1) for k, t in enumerate(tasks)} for e in range(epochs)
    ]
    rows[1]["restored_from"] = 1.0  # a PBT exploit's dotted line
    return rows


def text_boxes(svg: bytes) -> tuple[float, float, list[tuple[str, float, float, float, float]]]:
    """(width, height, [(text, left, top, right, bottom)]) from the estimate; rotated text is
    the y axis title (short, placed by hand), left out."""
    root = ET.fromstring(svg)
    _, _, width, height = (float(v) for v in root.get("viewBox", "").split())
    boxes = []
    for element in root.iter(f"{NS}text"):
        if element.get("transform"):
            continue
        text, size = element.text or "", float(element.get("font-size", 11))
        x, y, extent = (
            float(element.get("x", 0)),
            float(element.get("y", 0)),
            text_width(text, size),
        )
        left = {"middle": x - extent / 2, "end": x - extent}.get(element.get("text-anchor", ""), x)
        boxes.append((text, left, y - size, left + extent, y + 0.25 * size))
    return width, height, boxes


@pytest.mark.parametrize("case", CASES)
def test_estimated_text_stays_in_the_frame(case: str) -> None:
    tasks, title = CASES[case]
    width, height, boxes = text_boxes(lambda_trajectory_svg(history(tasks), title))
    outside = [b for b in boxes if b[1] < 0 or b[2] < 0 or b[3] > width or b[4] > height]
    assert not outside, outside
    shown = " ".join(b[0] for b in boxes)
    for task in tasks:  # every legend name whole
        assert task in [b[0] for b in boxes], (task, shown)
    lines = Layout.of(title, list(tasks)).title
    if not lines[-1].endswith("…"):  # the title whole, in its lines, unless three lines of the
        assert "".join(title.split()) in "".join(shown.split())  # smallest size cannot hold it


def test_a_wide_legend_goes_below_the_plot() -> None:
    beside = Layout.of("t", ["rotation", "jigsaw"])
    below = Layout.of("t", ["a_much_longer_self_supervised_task", "rotation"])
    assert beside.legend[0][0] > beside.plot_x + beside.plot_w  # right of the plot
    assert below.legend[0][1] > below.plot_y + below.plot_h  # under it
    assert below.plot_w > beside.plot_w and below.height > beside.height


def test_long_titles_wrap_then_shrink_then_end_with_an_ellipsis() -> None:
    assert wrap("a, b", 10, 1000) == ["a, b"]
    every_task = Layout.of(LONG_TITLE, ["rotation"])
    assert len(every_task.title) == 3 and every_task.title_size == 11  # shrunk from 12 to fit 3
    huge = Layout.of(LONG_TITLE * 8, ["rotation"])
    assert len(huge.title) == 3 and huge.title_size == 9 and huge.title[-1].endswith("…")
    assert CHAR_EM >= 0.6  # the estimate must err wide: sans-serif lower case is about 0.5 em


@pytest.mark.slow
def test_rendered_text_stays_in_the_frame(tmp_path: Path) -> None:
    """The same figures in headless Chromium, measured with its own fonts."""
    from browser_support import TEXT_OUTSIDE_SVG, chromium

    with chromium(tmp_path / "profile") as browser:
        page = browser.new_page()
        for case, (tasks, title) in CASES.items():
            svg = lambda_trajectory_svg(history(tasks), title).decode()
            page.set_content(f"<html><body style='margin:0'>{svg}</body></html>")
            assert page.evaluate(TEXT_OUTSIDE_SVG) == [], case
            page.locator("svg").screenshot(path=str(tmp_path / f"{case}.png"))


@pytest.mark.timeout(10)
def test_lambdas_equal_up_to_rounding_draw_a_flat_line_quickly():
    """UPGrad reported 1.0 and 0.9999999999999998: a tick step below float resolution never
    moved the tick value, and the loop filled the driver's memory (24 GB) until it was killed."""
    from auxtune.platform.svg import lambda_trajectory_svg, nice_ticks

    ticks = nice_ticks(0.9999999999999998, 1.0)
    assert ticks[0] < 1.0 < ticks[-1] and len(ticks) <= 8
    history = [{"lambda/rotation": 1.0}, {"lambda/rotation": 0.9999999999999998}]
    assert lambda_trajectory_svg(history, "upgrad").startswith(b"<svg")
