"""A ``Chart`` drawn as a PNG with matplotlib (imported only here, by ``chart.chart_bytes``).

One figure, the panels stacked with a shared x axis, each with its unit, a light grid and a
legend beside it (outside the plot, so it never hides a line). 11 x 2.4 inches a panel at
100 dpi: 1,100 pixels wide, readable on a laptop without zooming.
"""

from __future__ import annotations

import io

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

from eksplain.sim.chart import Chart, Panel

__all__ = ["draw_png"]

WIDTH_IN = 11.0
PANEL_IN = 2.4
HEAD_IN = 0.9
DPI = 100


def _number(value: float, _pos: object) -> str:
    """Tick labels as people write numbers: 12,000 and 0.5, not 1.2e4 or 10^4."""
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:g}"


def _log_subs(panel: Panel) -> tuple[float, ...]:
    """Labels at 1, 2 and 5 within a decade when the panel spans up to three decades, else at
    whole decades only (more would crowd a panel this tall)."""
    values = [v for s in panel.series for v in s.values if v is not None and v > 0]
    values += [t.value for t in panel.targets if t.value > 0]
    if not values:
        return (1.0,)
    return (1.0, 2.0, 5.0) if max(values) / min(values) <= 1000 else (1.0,)


def _draw_panel(ax: Axes, x: tuple[float, ...], panel: Panel) -> None:
    for s in panel.series:
        ys = [float("nan") if v is None else v for v in s.values]
        ax.plot(x, ys, color=s.color, linestyle="--" if s.dashed else "-", linewidth=1.6,
                marker=s.marker or None, markersize=5, label=s.label)
    for t in panel.targets:
        ax.axhline(t.value, color=t.color, linestyle=":", linewidth=1.4, label=t.label)
    if panel.log:
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=_log_subs(panel)))
        ax.yaxis.set_minor_formatter(NullFormatter())
    else:
        ax.set_ylim(bottom=0)  # counts and rates: from zero, so sizes compare by eye
    ax.yaxis.set_major_formatter(FuncFormatter(_number))
    ax.set_title(panel.title, loc="left", fontsize=10, fontweight="bold")
    ax.set_ylabel(panel.unit, fontsize=9)
    ax.grid(True, which="major", color="#dddddd", linewidth=0.8)
    ax.tick_params(labelsize=9)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    if panel.series or panel.targets:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8.5, frameon=False)


def draw_png(chart: Chart, buffer: io.BytesIO) -> bytes:
    """The chart's PNG bytes. Closes its figure, so repeated calls do not accumulate memory."""
    n = len(chart.panels)
    fig, axes = plt.subplots(n, 1, sharex=True, squeeze=False,
                             figsize=(WIDTH_IN, HEAD_IN + PANEL_IN * n), dpi=DPI)
    try:
        for ax, panel in zip(axes[:, 0], chart.panels, strict=True):
            _draw_panel(ax, chart.x, panel)
        axes[-1, 0].set_xlabel(chart.x_label, fontsize=9)
        axes[-1, 0].xaxis.set_major_locator(MaxNLocator(nbins=12, steps=[1, 2, 5, 10]))
        fig.suptitle(f"{chart.title}\n{chart.subtitle}", x=0.01, ha="left", fontsize=11)
        fig.tight_layout(rect=(0, 0, 1, 1))
        # Metadata off: matplotlib stamps its version, which would make the bytes depend on it.
        fig.savefig(buffer, format="png", metadata={"Software": None})
    finally:
        plt.close(fig)
    return buffer.getvalue()
