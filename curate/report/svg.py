"""The report's plots as inline SVG: stacked histograms with threshold lines, horizontal bars.

Drawn here rather than with matplotlib: a report holds dozens of plots, and SVG elements cost
microseconds where a matplotlib figure costs a tenth of a second; the text stays selectable and
the page self-contained. Every label is escaped; the result is marked safe for Jinja.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from markupsafe import Markup, escape

# One colour per stage, in recipe order, the same in every plot and table (Tableau 10, without
# its blue, which is the kept rows' colour).
KEPT_COLOR = "#4e79a7"
STAGE_COLORS = ["#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"]
LOG_RATIO = 50  # log scale when the tallest bin is this many times the median non-empty bin
WIDTH, HEIGHT, LEFT, BOTTOM, TOP = 460, 190, 44, 34, 22


def stage_color(index: int) -> str:
    return STAGE_COLORS[index % len(STAGE_COLORS)]


@dataclass
class Series:
    label: str
    color: str
    values: np.ndarray


def tick(value: float) -> str:
    if value == 0 or 0.01 <= abs(value) < 10_000:
        return f"{value:.3g}"
    return f"{value:.1e}"


def histogram(
    title: str, series: Sequence[Series], thresholds: Sequence[tuple[float, str]] = (), bins: int = 40
) -> tuple[Markup, bool]:
    """Stacked counts of `series` over shared bins, a dashed line per threshold (value, label).
    Returns the SVG and whether the count axis is logarithmic (when one class dominates)."""
    everything = np.concatenate([s.values for s in series]).astype(np.float64)
    low, high = float(everything.min()), float(everything.max())
    for value, _ in thresholds:  # every threshold in view, even far from the data
        if math.isfinite(value):
            low, high = min(low, value), max(high, value)
    if high <= low:
        high = low + 1.0
    edges = np.linspace(low, high, bins + 1)
    counts = np.array([np.histogram(s.values.astype(np.float64), bins=edges)[0] for s in series])
    totals = counts.sum(axis=0)
    nonzero = totals[totals > 0]
    log = bool(len(nonzero)) and totals.max() >= LOG_RATIO * max(1.0, float(np.median(nonzero)))
    legend = legend_rows(series)
    height_total = HEIGHT + 14 * (len(legend) - 1)

    def height(count: float) -> float:
        top = math.log10(1 + totals.max()) if log else float(totals.max() or 1)
        return (math.log10(1 + count) if log else count) / (top or 1) * (HEIGHT - BOTTOM - TOP)

    def x_of(value: float) -> float:
        return LEFT + (value - low) / (high - low) * (WIDTH - LEFT - 8)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height_total}" role="img" '
        f'aria-label="{escape(title)}"><title>{escape(title)}</title>',
        f'<text x="{LEFT}" y="14" font-size="12" font-weight="bold">{escape(title)}</text>',
    ]
    base = HEIGHT - BOTTOM
    bar = (WIDTH - LEFT - 8) / bins
    for column in range(bins):
        stacked = 0
        for row, item in enumerate(series):
            count = int(counts[row, column])
            if not count:
                continue
            y0, y1 = base - height(stacked), base - height(stacked + count)
            parts.append(
                f'<rect x="{LEFT + column * bar:.1f}" y="{y1:.1f}" width="{max(bar - 0.5, 0.5):.1f}" '
                f'height="{max(y0 - y1, 0.5):.1f}" fill="{item.color}"><title>{escape(item.label)}: {count:,} in '
                f"[{tick(edges[column])}, {tick(edges[column + 1])})</title></rect>"
            )
            stacked += count
    parts.append(f'<line x1="{LEFT}" y1="{base}" x2="{WIDTH - 8}" y2="{base}" stroke="#888"/>')
    for value, anchor in ((low, "start"), ((low + high) / 2, "middle"), (high, "end")):
        parts.append(
            f'<text x="{x_of(value):.1f}" y="{base + 13}" font-size="10" text-anchor="{anchor}">{tick(value)}</text>'
        )
    top_count = int(totals.max())
    parts.append(f'<text x="{LEFT - 4}" y="{TOP + 8}" font-size="10" text-anchor="end">{top_count:,}</text>')
    parts.append(f'<text x="{LEFT - 4}" y="{base}" font-size="10" text-anchor="end">0</text>')
    if log:
        parts.append(f'<text x="{LEFT - 4}" y="{TOP + 20}" font-size="9" text-anchor="end" fill="#777">log</text>')
    for value, label in thresholds:
        if not (math.isfinite(value) and low <= value <= high):
            continue
        x = x_of(value)
        parts.append(
            f'<line x1="{x:.1f}" y1="{TOP - 4}" x2="{x:.1f}" y2="{base}" stroke="#222" stroke-dasharray="4 3">'
            f"<title>{escape(label)}</title></line>"
        )
        anchor = "end" if x > WIDTH * 0.7 else "start"
        shift = -3 if anchor == "end" else 3
        parts.append(
            f'<text x="{x + shift:.1f}" y="{TOP + 2}" font-size="10" text-anchor="{anchor}">{escape(label)}</text>'
        )
    for line, entries in enumerate(legend):
        for x, item, text in entries:
            y = HEIGHT - 4 + 14 * line
            parts.append(
                f'<rect x="{x:.0f}" y="{y - 8}" width="9" height="9" fill="{item.color}"/>'
                f'<text x="{x + 12:.0f}" y="{y}" font-size="10">{escape(text)}</text>'
            )
    parts.append("</svg>")
    return Markup("".join(parts)), log


def legend_rows(series: Sequence[Series]) -> list[list[tuple[float, Series, str]]]:
    """The legend's entries (x, series, text), wrapped into rows that fit the plot's width."""
    rows: list[list[tuple[float, Series, str]]] = [[]]
    x = float(LEFT)
    for item in series:
        text = f"{item.label} ({len(item.values):,})"
        width = 20 + 5.6 * len(text)
        if rows[-1] and x + width > WIDTH:
            rows.append([])
            x = float(LEFT)
        rows[-1].append((x, item, text))
        x += width
    return rows


def bars(items: Sequence[tuple[str, int, str]], unit: str = "rows") -> Markup | None:
    """Horizontal bars (label, value, colour), log-scaled when the largest dwarfs the smallest."""
    items = [i for i in items if i[1] > 0]
    if not items:
        return None
    largest = max(v for _, v, _ in items)
    log = largest >= LOG_RATIO * min(v for _, v, _ in items)
    label_width = min(340, 8 + 6.4 * max(len(label) for label, _, _ in items))
    width, row = label_width + 300, 18

    def length(value: int) -> float:
        return (math.log10(1 + value) / math.log10(1 + largest) if log else value / largest) * 230

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{row * len(items) + 20}" role="img" '
        f'aria-label="{escape(unit)}">'
    ]
    for index, (label, value, color) in enumerate(items):
        y = index * row
        parts.append(
            f'<text x="{label_width - 6:.0f}" y="{y + 13}" font-size="11" text-anchor="end">{escape(label)}</text>'
            f'<rect x="{label_width:.0f}" y="{y + 3}" width="{max(length(value), 1):.1f}" height="{row - 6}" '
            f'fill="{color}"/><text x="{label_width + length(value) + 4:.1f}" y="{y + 13}" font-size="11">'
            f"{value:,}</text>"
        )
    scale = f"{unit}, log scale" if log else unit
    parts.append(
        f'<text x="{label_width:.0f}" y="{row * len(items) + 14}" font-size="10" fill="#777">{escape(scale)}</text>'
    )
    parts.append("</svg>")
    return Markup("".join(parts))
