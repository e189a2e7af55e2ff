"""Inline SVG charts for the HTML report: no script, no external asset, any browser.

Every label is escaped; sizes are fixed so the file prints and attaches well.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from html import escape

WIDTH = 640
ROW = 22
LABEL_W = 230
PALETTE = ("#2f6fb0", "#e08a2c", "#3c9a5f", "#b4464b", "#7a5aa6", "#8c6d46", "#c05a9a")


def _num(value: float) -> str:
    return f"{value:.1f}"


def hbars(
    items: Sequence[tuple[str, float]],
    fmt: Callable[[float], str] = lambda v: f"{v:,.0f}",
    color: str = PALETTE[0],
) -> str:
    """Horizontal bars, one row per item, value printed at the bar's end."""
    if not items:
        return '<p class="empty">(none)</p>'
    top = max((v for _, v in items), default=0.0) or 1.0
    span = WIDTH - LABEL_W - 90
    rows = []
    for i, (label, value) in enumerate(items):
        y = i * ROW
        w = max(0.0, value) / top * span
        rows.append(
            f'<g transform="translate(0,{y})"><title>{escape(label)}: {escape(fmt(value))}</title>'
            f'<text x="{LABEL_W - 6}" y="15" text-anchor="end">{escape(label[:34])}</text>'
            f'<rect x="{LABEL_W}" y="3" width="{_num(w)}" height="15" fill="{color}"/>'
            f'<text x="{_num(LABEL_W + w + 5)}" y="15">{escape(fmt(value))}</text></g>'
        )
    height = len(items) * ROW + 4
    return (
        f'<svg class="chart" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" '
        f'role="img" xmlns="http://www.w3.org/2000/svg">{"".join(rows)}</svg>'
    )


def columns(
    categories: Sequence[str],
    series: Sequence[tuple[str, Sequence[float]]],
    fmt: Callable[[float], str] = lambda v: f"{v:,.4f}",
) -> str:
    """Grouped vertical columns: one group per category, one column per series, a legend."""
    if not categories:
        return '<p class="empty">(none)</p>'
    height, bottom, left = 240, 40, 60
    top = max((v for _, vals in series for v in vals), default=0.0) or 1.0
    plot_w = WIDTH - left - 10
    group = plot_w / len(categories)
    bar = max(2.0, group * 0.8 / max(1, len(series)))
    parts = [
        f'<line x1="{left}" y1="{height - bottom}" x2="{WIDTH - 10}" y2="{height - bottom}" '
        'stroke="#888"/>',
        f'<text x="{left - 4}" y="14" text-anchor="end">{escape(fmt(top))}</text>',
    ]
    scale = (height - bottom - 20) / top
    for ci, cat in enumerate(categories):
        x0 = left + ci * group + group * 0.1
        for si, (name, vals) in enumerate(series):
            v = max(0.0, vals[ci])
            h = v * scale
            parts.append(
                f'<rect x="{_num(x0 + si * bar)}" y="{_num(height - bottom - h)}" '
                f'width="{_num(bar - 1)}" height="{_num(h)}" fill="{PALETTE[si % len(PALETTE)]}">'
                f"<title>{escape(cat)} {escape(name)}: {escape(fmt(vals[ci]))}</title></rect>"
            )
        if len(categories) <= 16 or ci % max(1, len(categories) // 16) == 0:
            parts.append(
                f'<text x="{_num(x0 + group * 0.4)}" y="{height - bottom + 14}" '
                f'text-anchor="middle" class="tick">{escape(cat[-5:])}</text>'
            )
    for si, (name, _) in enumerate(series):
        x = left + si * 170
        parts.append(
            f'<rect x="{x}" y="{height - 14}" width="10" height="10" '
            f'fill="{PALETTE[si % len(PALETTE)]}"/><text x="{x + 14}" y="{height - 5}">'
            f"{escape(name)}</text>"
        )
    return (
        f'<svg class="chart" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" '
        f'role="img" xmlns="http://www.w3.org/2000/svg">{"".join(parts)}</svg>'
    )
