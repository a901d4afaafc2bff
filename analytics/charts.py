"""Server-made SVG charts for the dashboard: no charting library, no script, text escaped.

Drawn at about the size they are shown (a 360-unit wide view box for a figure 300 to 480 px
wide), so 13-unit labels read at body size on a desktop and on a phone. Colours come from the
page's stylesheet (classes chart-text, chart-line, chart-bar, chart-axis), so the charts follow
the light and dark themes; the attributes are the fallback.

A chart holds data only (times, names, numbers): its title is the page's, in the reader's
language (the caption ``labelledby`` names, templates/analytics/dashboard.html), because one
chart is pushed alike to every dashboard open. A bar chart with nothing to show is marked
``chart-empty`` and the page says so."""

from __future__ import annotations

from html import escape

_FONT = 'class="chart-text" font-family="system-ui, sans-serif" font-size="13" fill="#555"'


def line_chart(
    points: list[tuple[str, float]], *, labelledby: str, width: int = 360, height: int = 150
) -> str:
    """A line over time; ``points`` are (label, value), oldest first; ``labelledby`` the id of
    its title. The first and last time labels are anchored inside the chart, so they are never
    clipped."""
    left, right, top, bottom = 36, 8, 8, 24
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max((v for _, v in points), default=0) or 1
    step = plot_w / max(1, len(points) - 1)
    coords = [
        (left + i * step, top + plot_h - (value / peak) * plot_h)
        for i, (_, value) in enumerate(points)
    ]
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
    labels = ""
    if points:
        last = len(points) - 1
        for index in sorted({0, last // 2, last}):
            x = coords[index][0]
            anchor = "start" if index == 0 else "end" if index == last else "middle"
            labels += (
                f'<text x="{x:.1f}" y="{height - 6}" text-anchor="{anchor}" {_FONT}>'
                f"{escape(points[index][0])}</text>"
            )
    return (
        f"{_svg(width, height, labelledby)}"
        f'<line class="chart-axis" x1="{left}" y1="{top + plot_h}" x2="{width - right}" '
        f'y2="{top + plot_h}" stroke="#ccc"/>'
        f'<text x="{left - 6}" y="{top + 4}" text-anchor="end" {_FONT}>{_number(peak)}</text>'
        f'<text x="{left - 6}" y="{top + plot_h}" text-anchor="end" {_FONT}>0</text>'
        f'<polyline class="chart-line" fill="none" stroke="#3558c8" stroke-width="2" '
        f'points="{path}"/>'
        f"{labels}</svg>"
    )


def bar_chart(items: list[tuple[str, float]], *, labelledby: str, width: int = 360) -> str:
    """Horizontal bars, largest first; ``items`` are (label, value); ``labelledby`` the id of
    its title."""
    left, right, top, row = 110, 44, 4, 22
    height = top + row * max(1, len(items)) + 6
    peak = max((v for _, v in items), default=0) or 1
    bars = ""
    for i, (label, value) in enumerate(items):
        y = top + i * row
        length = (width - left - right) * value / peak
        bars += (
            f'<text x="{left - 6}" y="{y + 15}" text-anchor="end" {_FONT}>{escape(label)}</text>'
            f'<rect class="chart-bar" x="{left}" y="{y + 3}" width="{length:.1f}" '
            f'height="{row - 6}" fill="#3558c8"/>'
            f'<text x="{left + length + 4:.1f}" y="{y + 15}" {_FONT}>{_number(value)}</text>'
        )
    return f"{_svg(width, height, labelledby, empty=not items)}{bars}</svg>"


def _svg(width: int, height: int, labelledby: str, *, empty: bool = False) -> str:
    kind = "chart chart-empty" if empty else "chart"
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
        f'aria-labelledby="{escape(labelledby)}" class="{kind}">'
    )


def _number(value: float) -> str:
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"
