"""The pulls-per-day chart of a repository page: an SVG drawn on the server.

No script and no library: bars, a few axis labels and a `<title>` per bar (the browser's
tooltip, which also works with scripts off). Colours come from classes in ui.css rather than
inline styles, so a strict Content-Security-Policy (no inline styles) leaves it intact.
Only numbers and dates go into the markup, and they are escaped anyway.
"""

from __future__ import annotations

from datetime import date
from html import escape

from markupsafe import Markup

WIDTH, HEIGHT = 720, 200
LEFT, RIGHT, TOP, BOTTOM = 44, 8, 12, 28


def _nice_ceiling(value: int) -> int:
    """The axis maximum: 1, 2, 2.5 or 5 times a power of ten, at least `value` (and 4)."""
    value = max(value, 4)
    step = 1
    while True:
        for factor in (1, 2, 2.5, 5):
            if step * factor >= value and float(step * factor).is_integer():
                return int(step * factor)
        step *= 10


def _label(day: date) -> str:
    return f"{day:%b} {day.day}"


def pulls_chart(days: list[tuple[date, int]], *, title: str) -> Markup:
    """An accessible SVG bar chart of (day, pulls), oldest first."""
    total = sum(n for _, n in days)
    peak = max((n for _, n in days), default=0)
    top = _nice_ceiling(peak)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(len(days), 1)
    bar_w = max(slot * 0.72, 1.0)
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-labelledby="chart-title chart-desc" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="chart-title">{escape(title)}</title>',
        f'<desc id="chart-desc">{total} pulls in {len(days)} days'
        + (f", from {_label(days[0][0])} to {_label(days[-1][0])}; busiest day {peak}"
           if days else "") + "</desc>",
    ]
    # Grid lines at 0, the top and (when it is a whole number) the middle.
    for fraction in (0, 0.5, 1) if top % 2 == 0 else (0, 1):
        y = TOP + plot_h * (1 - fraction)
        value = round(top * fraction)
        parts.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" '
                     f'y2="{y:.1f}"/>')
        parts.append(f'<text class="axis" x="{LEFT - 6}" y="{y + 4:.1f}" '
                     f'text-anchor="end">{value}</text>')
    for index, (day, count) in enumerate(days):
        x = LEFT + index * slot + (slot - bar_w) / 2
        height = plot_h * count / top if top else 0
        y = TOP + plot_h - height
        label = f"{day.isoformat()}: {count} pull{'s' if count != 1 else ''}"
        # A zero day still gets a hairline, so the time axis reads as continuous.
        parts.append(f'<rect class="bar{" zero" if not count else ""}" x="{x:.1f}" '
                     f'y="{y if count else TOP + plot_h - 1:.1f}" width="{bar_w:.1f}" '
                     f'height="{max(height, 1):.1f}"><title>{escape(label)}</title></rect>')
    if days:
        ticks = sorted({0, len(days) // 3, 2 * len(days) // 3, len(days) - 1})
        for index in ticks:
            x = LEFT + index * slot + slot / 2
            anchor = "start" if index == 0 else "end" if index == len(days) - 1 else "middle"
            parts.append(f'<text class="axis" x="{x:.1f}" y="{HEIGHT - 8}" '
                         f'text-anchor="{anchor}">{escape(_label(days[index][0]))}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - built from numbers and escaped dates only
