"""A ``Chart`` as inline SVG, and as one self-contained HTML page (no scripts, no network).

Each panel is a plot area with its own y axis (linear from zero, or log in whole decades),
ticks at 1-2-5 steps, the series as ``<path class="series">`` (a gap where a value is
missing), SLO targets as dotted lines, and a legend on the right. Numbers are written with a
fixed precision, so the same chart gives the same text.
"""

from __future__ import annotations

import math
from html import escape

from eksplain.sim.chart import Chart, Panel

__all__ = ["chart_html", "chart_svg", "nice_ticks"]

LEFT = 92  # room for the y tick labels (1,000,000) and the unit
LEGEND = 170  # at least; wider for long labels
PLOT_W = 740
HEAD = 58
PANEL_H = 190
PLOT_H = 140
FOOT = 46


def nice_ticks(low: float, high: float, most: int = 6) -> list[float]:
    """Ticks at multiples of 1, 2 or 5 x 10^k covering [low, high], at most ``most`` of them."""
    span = high - low if high > low else abs(high) or 1.0
    for step in (m * 10 ** e for e in range(math.floor(math.log10(span / most)), 99)
                 for m in (1, 2, 5)):
        start, end = math.floor(low / step), math.ceil(high / step)
        if end - start + 1 <= most:
            return [k * step for k in range(start, end + 1)]
    return [low, high]  # pragma: no cover - the loop always finds a step


def _label(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.4g}"


class _Axis:
    """Maps values to pixels for one panel: linear from the lowest tick, or log."""

    def __init__(self, panel: Panel) -> None:
        values = [v for s in panel.series for v in s.values if v is not None]
        values += [t.value for t in panel.targets]
        self.log = panel.log and any(v > 0 for v in values)
        if self.log:
            positive = [v for v in values if v > 0]
            lo, hi = math.floor(math.log10(min(positive))), math.ceil(math.log10(max(positive)))
            hi = max(hi, lo + 1)
            # 1-2-5 within a decade over up to three decades, else whole decades (as the PNG)
            subs = (1, 2, 5) if hi - lo <= 3 else (1,)
            self.ticks = [m * 10.0 ** e for e in range(lo, hi + 1) for m in subs
                          if m * 10.0 ** e <= 10.0 ** hi]
            self.low, self.high = float(lo), float(hi)
        else:
            top = max(values, default=1.0)
            self.ticks = nice_ticks(min(0.0, *values) if values else 0.0, top if top > 0 else 1.0)
            self.low, self.high = self.ticks[0], self.ticks[-1]

    def y(self, value: float, top: float) -> float:
        v = math.log10(value) if self.log else value
        share = (v - self.low) / (self.high - self.low) if self.high > self.low else 0.0
        return top + PLOT_H * (1 - share)


def _x_scale(chart: Chart) -> tuple[list[float], float, float]:
    lo, hi = (min(chart.x), max(chart.x)) if chart.x else (0.0, 1.0)
    ticks = nice_ticks(lo, hi if hi > lo else lo + 1)
    return ticks, ticks[0], ticks[-1]


def _path(points: list[tuple[float, float] | None]) -> str:
    parts, pen_down = [], False
    for point in points:
        if point is None:
            pen_down = False
            continue
        parts.append(f"{'L' if pen_down else 'M'}{point[0]:.1f},{point[1]:.1f}")
        pen_down = True
    return " ".join(parts)


def _panel_svg(chart: Chart, panel: Panel, top: float, x_lo: float, x_hi: float) -> list[str]:
    axis = _Axis(panel)

    def px(x: float) -> float:
        return LEFT + PLOT_W * ((x - x_lo) / (x_hi - x_lo) if x_hi > x_lo else 0.5)

    out = [f'<text class="title" x="{LEFT}" y="{top - 10:.1f}">{escape(panel.title)}</text>',
           f'<text class="unit" text-anchor="middle" '
           f'transform="translate(18,{top + PLOT_H / 2:.1f}) rotate(-90)">'
           f'{escape(panel.unit)}</text>']
    for tick in axis.ticks:
        y = axis.y(tick, top)
        out.append(f'<line class="grid" x1="{LEFT}" x2="{LEFT + PLOT_W}" y1="{y:.1f}" '
                   f'y2="{y:.1f}"/><text class="tick" x="{LEFT - 6}" y="{y + 4:.1f}" '
                   f'text-anchor="end">{_label(tick)}</text>')
    legend_y = top + 4
    for s in panel.series:
        points = [None if v is None or (axis.log and v <= 0) else (px(x), axis.y(v, top))
                  for x, v in zip(chart.x, s.values, strict=True)]
        dash = ' stroke-dasharray="6 4"' if s.dashed else ""
        out.append(f'<path class="series" data-label="{escape(s.label)}" stroke="{s.color}"'
                   f'{dash} d="{_path(points)}"/>')
        if s.marker:  # one shape for every marker: a dot at each point
            out += [f'<circle cx="{p[0]:.1f}" cy="{p[1]:.1f}" r="3" fill="{s.color}"/>'
                    for p in points if p is not None]
        out += _legend(legend_y, s.label, s.color, dash)
        legend_y += 18
    for t in panel.targets:
        y = axis.y(t.value, top)
        dots = ' stroke-dasharray="2 3"'
        out.append(f'<path class="target" data-label="{escape(t.label)}" stroke="{t.color}"'
                   f'{dots} d="M{LEFT},{y:.1f} L{LEFT + PLOT_W},{y:.1f}"/>')
        out += _legend(legend_y, t.label, t.color, dots)
        legend_y += 18
    out.append(f'<rect class="frame" x="{LEFT}" y="{top}" width="{PLOT_W}" height="{PLOT_H}"/>')
    return out


def _legend(y: float, label: str, color: str, dash: str) -> list[str]:
    x = LEFT + PLOT_W + 14
    return [f'<path class="key" stroke="{color}"{dash} '
            f'd="M{x},{y + 6:.1f} L{x + 22},{y + 6:.1f}"/>',
            f'<text class="legend" x="{x + 28}" y="{y + 10:.1f}">{escape(label)}</text>']


_STYLE = ("text{font-family:system-ui,-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;"
          "fill:#222}.title{font-size:13px;font-weight:600}.unit,.tick,.legend{font-size:11px}"
          ".sub{font-size:12px;fill:#555}.head{font-size:15px;font-weight:600}"
          ".series,.target,.key{fill:none;stroke-width:1.8}.grid{stroke:#e3e3e3}"
          ".frame{fill:none;stroke:#999}")


def _width(chart: Chart) -> int:
    """Wide enough for the longest legend label (about 6.5 pixels a character at 11 px)."""
    labels = [x.label for p in chart.panels for x in p.series]
    labels += [t.label for p in chart.panels for t in p.targets]
    longest = max((len(label) for label in labels), default=0)
    return LEFT + PLOT_W + max(LEGEND, 48 + round(longest * 6.5))


def chart_svg(chart: Chart) -> str:
    """The whole chart as one ``<svg>`` element, with its own style."""
    height = HEAD + PANEL_H * len(chart.panels) + FOOT
    width = _width(chart)
    ticks, x_lo, x_hi = _x_scale(chart)
    body = [f'<text class="head" x="{LEFT}" y="22">{escape(chart.title)}</text>',
            f'<text class="sub" x="{LEFT}" y="40">{escape(chart.subtitle)}</text>']
    for i, panel in enumerate(chart.panels):
        body += _panel_svg(chart, panel, HEAD + 22 + i * PANEL_H, x_lo, x_hi)
    base = HEAD + 22 + (len(chart.panels) - 1) * PANEL_H + PLOT_H
    for tick in ticks:
        x = LEFT + PLOT_W * ((tick - x_lo) / (x_hi - x_lo) if x_hi > x_lo else 0.5)
        body.append(f'<text class="tick" x="{x:.1f}" y="{base + 16:.1f}" '
                    f'text-anchor="middle">{_label(tick)}</text>')
    body.append(f'<text class="unit" x="{LEFT + PLOT_W / 2:.1f}" y="{base + 36:.1f}" '
                f'text-anchor="middle">{escape(chart.x_label)}</text>')
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(chart.title)}">'
            f"<style>{_STYLE}</style>\n" + "\n".join(body) + "\n</svg>\n")


def chart_html(chart: Chart) -> str:
    """One HTML page holding the SVG: opens in any browser, offline, with nothing to load."""
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{escape(chart.title)}</title>\n"
            "<style>body{margin:24px;background:#fff}svg{max-width:100%;height:auto}</style>\n"
            "</head>\n<body>\n" + chart_svg(chart) + "</body>\n</html>\n")
