"""A trial's lambda trajectory as a small SVG line chart, written without a plotting library.

The MLflow UI shows ``.svg`` artifacts as images. Drawing one here takes well under a millisecond,
where matplotlib needs about 70 ms per figure plus a 0.3 s import, all on the Tune driver that
logs every trial: with short trials that was most of MLflow's share of the search's time.

    >>> svg = lambda_trajectory_svg([{"lambda/rotation": 0.5}, {"lambda/rotation": 0.7}], "demo")
    >>> svg.startswith(b"<svg") and b"rotation" in svg and b"<polyline" in svg
    True

Nothing is cut, whatever the names: the title wraps (and shrinks when it would take more than
three lines), and the legend stands beside the plot when its longest name fits there, else below
it in as many columns as fit; the figure grows taller to make room. Text is laid out from
:func:`text_width`, a generous estimate from the character count (no font metrics here).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape

WIDTH = 480  # the figure's width; its height grows with the title and a legend below the plot
PLOT_HEIGHT = 230  # the plotting area's height
PAD = 8  # between the figure's edge and any text
LEFT, BOTTOM = 56, 40  # room for the y tick labels and axis title; x tick labels and axis title
FONT_SIZE = 11  # ticks, axis titles, legend
TITLE_SIZES = (12, 11, 10, 9)  # the title shrinks through these before it is cut
TITLE_LINES = 3  # at most, at the smallest size; longer titles end with an ellipsis
LEGEND_ROW, SWATCH = 16, 28  # a legend entry's height; its coloured line and the gap after it
LEGEND_BESIDE_MAX = 160  # the widest legend that stands beside the plot (else below it)
CHAR_EM = 0.62  # a generous mean glyph width of sans-serif text, in ems (lower case ~0.5)
COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2")


def text_width(text: str, size: float) -> float:
    """Estimated width in pixels of ``text`` at font ``size`` (errs wide).

    >>> text_width("blur_reconstruction", 11) > 100
    True
    """
    return len(text) * size * CHAR_EM


def wrap(text: str, size: float, width: float) -> list[str]:
    """``text`` in lines no wider than ``width`` at ``size``: broken after commas or at spaces,
    and inside a word only when the word alone is too wide.

    >>> wrap("rotation=0.31, blur_reconstruction=0.12", 11, 200)
    ['rotation=0.31,', 'blur_reconstruction=0.12']
    """
    per_line = max(1, int(width / (size * CHAR_EM)))
    lines: list[str] = []
    for word in text.split():
        for start in range(0, len(word), per_line):  # a word wider than a line: in pieces
            piece = word[start : start + per_line]
            if lines and len(lines[-1]) + 1 + len(piece) <= per_line:
                lines[-1] = f"{lines[-1]} {piece}"
            else:
                lines.append(piece)
    return lines or [""]


def fit_title(title: str, width: float) -> tuple[list[str], int]:
    """(lines, font size): the largest size at which ``title`` takes at most three lines, else the
    smallest with its third line ending in an ellipsis."""
    for size in TITLE_SIZES:
        lines = wrap(title, size, width)
        if len(lines) <= TITLE_LINES:
            return lines, size
    size = TITLE_SIZES[-1]
    lines = wrap(title, size, width)[:TITLE_LINES]
    per_line = max(1, int(width / (size * CHAR_EM)))
    lines[-1] = lines[-1][: per_line - 1] + "…"
    return lines, size


@dataclass(frozen=True)
class Layout:
    """Where everything goes (pixels): the plot's box, the title's lines, the legend's slots."""

    title: Sequence[str]
    title_size: int
    plot_x: float
    plot_y: float
    plot_w: float
    plot_h: float
    height: float
    legend: Sequence[tuple[float, float]]  # (x, y) of each entry's swatch start and baseline centre

    @classmethod
    def of(cls, title: str, labels: Sequence[str]) -> Layout:
        lines, size = fit_title(title, WIDTH - 2 * PAD)
        plot_y = PAD + len(lines) * round(size * 1.3) + 8
        entry = SWATCH + max((text_width(t, FONT_SIZE) for t in labels), default=0.0)
        beside = entry <= LEGEND_BESIDE_MAX and len(labels) * LEGEND_ROW <= PLOT_HEIGHT
        right = entry + 2 * PAD if beside and labels else 2 * PAD
        plot_w = WIDTH - LEFT - right
        legend_top = plot_y + PLOT_HEIGHT + BOTTOM
        if beside:
            x0 = LEFT + plot_w + PAD
            slots = [(x0, plot_y + 8 + LEGEND_ROW * n) for n in range(len(labels))]
            height = legend_top + PAD
        else:  # below the x axis, in as many columns as fit
            columns = max(1, int((WIDTH - 2 * PAD) // (entry + PAD)))
            slots = [
                (PAD + (n % columns) * (entry + PAD), legend_top + 8 + LEGEND_ROW * (n // columns))
                for n in range(len(labels))
            ]
            rows = math.ceil(len(labels) / columns)
            height = legend_top + rows * LEGEND_ROW + PAD
        return cls(lines, size, LEFT, plot_y, plot_w, PLOT_HEIGHT, height, slots)


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About ``count`` round tick values covering [low, high] (steps of 1, 2 or 5 x 10^k).

    >>> nice_ticks(0.0, 1.0)
    [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    """
    # a range below float resolution (lambdas of 1.0 and 0.9999999999999998) is drawn as flat
    if high - low <= 1e-9 * max(1.0, abs(low), abs(high)):
        high = low + 1.0
    raw = (high - low) / max(1, count)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    # ticks by index, not by repeated addition: a step can never fail to move the value
    last = math.ceil(high / step - 1e-9)
    return [round(k * step, 10) for k in range(math.floor(low / step), last + 1)]


def lambda_trajectory_svg(history: Iterable[Mapping[str, float]], title: str) -> bytes:
    """Every ``lambda/<task>`` of a trial against its results (one per epoch); a dotted vertical
    line marks each result that followed a PBT exploit (the checkpoint came from another trial)."""
    rows = list(history)
    keys = sorted({k for row in rows for k in row if k.startswith("lambda/")})
    values = [float(row[k]) for row in rows for k in keys if k in row]
    y_ticks = nice_ticks(min(values, default=0.0), max(values, default=1.0))
    x_max = max(len(rows), 2)
    x_ticks = nice_ticks(1, x_max, count=min(x_max - 1, 6))
    x_ticks = [t for t in x_ticks if t == int(t) and t >= 1]  # results count from 1
    box = Layout.of(title, [k.removeprefix("lambda/") for k in keys])
    left, top, plot_w, plot_h = box.plot_x, box.plot_y, box.plot_w, box.plot_h
    font = f'font-family="sans-serif" font-size="{FONT_SIZE}"'

    def x(step: float) -> float:
        return left + (step - 1) / (max(x_ticks[-1], 2) - 1) * plot_w

    def y(value: float) -> float:
        return top + (y_ticks[-1] - value) / (y_ticks[-1] - y_ticks[0]) * plot_h

    height = f"{box.height:g}"
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}">',
        f'<rect width="{WIDTH}" height="{height}" fill="white"/>',
    ]
    line_height = round(box.title_size * 1.3)
    for n, line in enumerate(box.title):
        parts.append(
            f'<text x="{WIDTH / 2:g}" y="{PAD + line_height * n + box.title_size}" '
            f'text-anchor="middle" font-family="sans-serif" font-size="{box.title_size}">'
            f"{escape(line)}</text>"
        )
    for tick in y_ticks:
        parts.append(
            f'<line x1="{left}" x2="{left + plot_w:g}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" '
            'stroke="#e5e5e5"/>'
            f'<text x="{left - 6}" y="{y(tick) + 4:.1f}" text-anchor="end" {font}>{tick:g}</text>'
        )
    for tick in x_ticks:
        parts.append(
            f'<text x="{x(tick):.1f}" y="{top + plot_h + 16:g}" text-anchor="middle" {font}>'
            f"{tick:g}</text>"
        )
    for i, row in enumerate(rows):
        if row.get("restored_from"):
            parts.append(
                f'<line x1="{x(i + 1):.1f}" x2="{x(i + 1):.1f}" y1="{top}" y2="{top + plot_h}" '
                'stroke="grey" stroke-dasharray="2,3"/>'
            )
    parts.append(
        f'<rect x="{left}" y="{top}" width="{plot_w:g}" height="{plot_h}" fill="none" '
        'stroke="black"/>'
        f'<text x="{left + plot_w / 2:g}" y="{top + plot_h + BOTTOM - 8:g}" text-anchor="middle" '
        f"{font}>result of this trial (one per epoch)</text>"
        f'<text transform="translate(14 {top + plot_h / 2:g}) rotate(-90)" text-anchor="middle" '
        f"{font}>lambda</text>"
    )
    for n, (key, (lx, ly)) in enumerate(zip(keys, box.legend)):
        colour = COLOURS[n % len(COLOURS)]
        points = [(x(i + 1), y(float(row[key]))) for i, row in enumerate(rows) if key in row]
        path = " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        parts += [
            f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3" fill="{colour}"/>' for px, py in points
        ]
        parts.append(
            f'<line x1="{lx:g}" x2="{lx + SWATCH - 10:g}" y1="{ly:g}" y2="{ly:g}" '
            f'stroke="{colour}" stroke-width="2"/>'
            f'<text x="{lx + SWATCH - 6:g}" y="{ly + 4:g}" {font}>{escape(key[7:])}</text>'
        )
    parts.append("</svg>")
    return "\n".join(parts).encode()
