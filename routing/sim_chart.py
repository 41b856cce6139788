"""An SVG chart of a simulated day: service level and queue length per channel, per router.

Hand-written SVG (no plotting library): two panels sharing the time axis, one line per
channel, the real router solid and the baseline dashed. It reads the half-hour series of
a simulator report and writes one file.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Any

from routing.sim_scenario import HALF_HOUR_S, Scenario

WIDTH, HEIGHT = 960, 640
LEFT, RIGHT, TOP, GAP, BOTTOM = 70, 170, 50, 70, 50
COLOURS = {"chat": "#1f77b4", "email": "#d62728", "form": "#2ca02c"}
DASHES = {"guichet": "", "baseline": "6 4"}


def write_chart(path: Path, scenario: Scenario, series: dict[str, Any]) -> None:
    path.write_text(render(scenario, series))


def render(scenario: Scenario, series: dict[str, Any]) -> str:
    panel_h = (HEIGHT - TOP - GAP - BOTTOM) / 2
    queue_top = max(
        [1.0] + [v for router in DASHES for ch in COLOURS for v in series[router][f"{ch}_queue"]]
    )
    queue_scale = _nice_ceiling(queue_top)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
        f'<text x="{LEFT}" y="24" font-size="16">Scenario {escape(scenario.name)}: '
        "guichet (solid) vs round robin (dashed)</text>",
    ]
    panels = (
        ("Service level (chat within threshold, email/form within SLA)", "sl", 1.0, TOP),
        ("Mean queue length (conversations waiting)", "queue", queue_scale, TOP + panel_h + GAP),
    )
    for title, suffix, top_value, y0 in panels:
        parts += _axes(scenario, title, y0, panel_h, top_value, percent=suffix == "sl")
        for router, dash in DASHES.items():
            for channel, colour in COLOURS.items():
                values = series[router][f"{channel}_{suffix}"]
                parts.append(_line(values, y0, panel_h, top_value, colour, dash))
    parts += _legend()
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _x(index: float, count: int) -> float:
    return LEFT + (WIDTH - LEFT - RIGHT) * index / max(count, 1)


def _axes(
    scenario: Scenario, title: str, y0: float, height: float, top: float, *, percent: bool
) -> list[str]:
    count = len(scenario.half_hours())
    right = WIDTH - RIGHT
    out = [
        f'<text x="{LEFT}" y="{y0 - 8:.1f}" font-weight="bold">{escape(title)}</text>',
        f'<rect x="{LEFT}" y="{y0:.1f}" width="{right - LEFT}" height="{height:.1f}" '
        'fill="none" stroke="#444"/>',
    ]
    for step in range(5):
        value = top * step / 4
        y = y0 + height - height * step / 4
        label = f"{value:.0%}" if percent else f"{value:g}"
        out.append(f'<line x1="{LEFT}" x2="{right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{label}</text>')
    for index in range(0, count + 1, 2):  # every hour
        x = _x(index, count)
        seconds = scenario.day_start + index * HALF_HOUR_S
        hour = f"{int(seconds // 3600):02d}:{int(seconds % 3600 // 60):02d}"
        out.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{y0 + height:.1f}" '
            f'y2="{y0 + height + 4:.1f}" stroke="#444"/>'
        )
        out.append(
            f'<text x="{x:.1f}" y="{y0 + height + 18:.1f}" text-anchor="middle">{hour}</text>'
        )
    return out


def _line(
    values: Sequence[float], y0: float, height: float, top: float, colour: str, dash: str
) -> str:
    count = len(values)
    points = " ".join(
        f"{_x(i + 0.5, count):.1f},{y0 + height - height * min(v, top) / top:.1f}"
        for i, v in enumerate(values)
    )
    dashed = f' stroke-dasharray="{dash}"' if dash else ""
    return f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"{dashed}/>'


def _legend() -> list[str]:
    x, y = WIDTH - RIGHT + 20, TOP + 10
    out = []
    for router, dash in DASHES.items():
        for channel, colour in COLOURS.items():
            dashed = f' stroke-dasharray="{dash}"' if dash else ""
            out.append(
                f'<line x1="{x}" x2="{x + 30}" y1="{y}" y2="{y}" stroke="{colour}" '
                f'stroke-width="2"{dashed}/>'
            )
            out.append(f'<text x="{x + 38}" y="{y + 4}">{channel} ({router})</text>')
            y += 20
    return out


def _nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 5 x 10^k at or above value."""
    scale = 1.0
    while scale * 10 <= value:
        scale *= 10
    for step in (1, 2, 5, 10):
        if step * scale >= value:
            return step * scale
    return 10 * scale
