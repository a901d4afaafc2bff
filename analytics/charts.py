"""Server-made SVG charts for the dashboard: no charting library, no script, text escaped."""

from __future__ import annotations

from html import escape

_FONT = 'font-family="system-ui, sans-serif" font-size="11" fill="#555"'


def line_chart(
    points: list[tuple[str, float]], *, title: str, width: int = 640, height: int = 170
) -> str:
    """A line over time; ``points`` are (label, value), oldest first."""
    left, right, top, bottom = 40, 10, 22, 22
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
        for index in {0, len(points) // 2, len(points) - 1}:
            x = coords[index][0]
            labels += (
                f'<text x="{x:.1f}" y="{height - 6}" text-anchor="middle" {_FONT}>'
                f"{escape(points[index][0])}</text>"
            )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(title)}" class="chart">'
        f'<text x="{left}" y="14" {_FONT} font-weight="600">{escape(title)}</text>'
        f'<line x1="{left}" y1="{top + plot_h}" x2="{width - right}" y2="{top + plot_h}" '
        f'stroke="#ccc"/>'
        f'<text x="{left - 6}" y="{top + 4}" text-anchor="end" {_FONT}>{_number(peak)}</text>'
        f'<text x="{left - 6}" y="{top + plot_h}" text-anchor="end" {_FONT}>0</text>'
        f'<polyline fill="none" stroke="#3558c8" stroke-width="2" points="{path}"/>'
        f"{labels}</svg>"
    )


def bar_chart(items: list[tuple[str, float]], *, title: str, width: int = 640) -> str:
    """Horizontal bars, largest first; ``items`` are (label, value)."""
    left, right, top, row = 110, 50, 22, 20
    height = top + row * max(1, len(items)) + 6
    peak = max((v for _, v in items), default=0) or 1
    bars = ""
    for i, (label, value) in enumerate(items):
        y = top + i * row
        length = (width - left - right) * value / peak
        bars += (
            f'<text x="{left - 6}" y="{y + 13}" text-anchor="end" {_FONT}>{escape(label)}</text>'
            f'<rect x="{left}" y="{y + 2}" width="{length:.1f}" height="{row - 6}" fill="#3558c8"/>'
            f'<text x="{left + length + 4:.1f}" y="{y + 13}" {_FONT}>{_number(value)}</text>'
        )
    if not items:
        bars = f'<text x="{left}" y="{top + 13}" {_FONT}>no data yet</text>'
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(title)}" class="chart">'
        f'<text x="10" y="14" {_FONT} font-weight="600">{escape(title)}</text>{bars}</svg>'
    )


def _number(value: float) -> str:
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"
