"""Charts of simulations: one small model of a chart, drawn as PNG (matplotlib) or SVG/HTML.

    Chart     stacked panels that share one x axis (simulated time, or a sweep's traffic level)
    Panel     one y axis: series (a value per x, ``None`` for a gap) and target lines (SLOs)
    timeline_chart(Simulation)   load, replicas, queue and per-minute p95 latency over time
    sweep_chart(SweepResult)     latency, SLO attainment and cost against traffic, a line a plan
    chart_bytes(Chart, suffix)   the file's bytes: ``.png``, ``.svg`` or ``.html``

The model is data, so a test can check what is plotted without decoding an image, and the two
renderers draw the same thing. matplotlib is imported only to draw a PNG (it is the optional
extra ``chart``; it adds about half a second to start-up); SVG and HTML are written here
without dependencies and without JavaScript, so the HTML is one self-contained file.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from eksplain.errors import InputError

if TYPE_CHECKING:
    from eksplain.sim.metrics import MinuteSample
    from eksplain.sim.scenario import Simulation
    from eksplain.sim.sweep import SweepResult, SweepRow

__all__ = ["Chart", "Panel", "Series", "Target", "chart_bytes", "palette", "sweep_chart",
           "timeline_chart"]

# Tableau 10, the default colour cycle of matplotlib: distinct, and readable on white.
_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
            "#7f7f7f", "#bcbd22", "#17becf")
HOURS_AXIS_ABOVE_MIN = 180  # longer runs are drawn in hours, shorter ones in minutes
SUFFIXES = (".png", ".svg", ".html")


def palette(index: int) -> str:
    return _PALETTE[index % len(_PALETTE)]


@dataclass(frozen=True)
class Series:
    label: str
    values: tuple[float | None, ...]  # one per x of the chart; None where there is no value
    color: str
    dashed: bool = False
    marker: str = ""  # matplotlib's name of a marker at each point (o, s, ^, D, v); "" for none


@dataclass(frozen=True)
class Target:
    """A horizontal line: an SLO target, drawn dotted in its series' colour."""

    label: str
    value: float
    color: str


@dataclass(frozen=True)
class Panel:
    title: str
    unit: str  # the y axis label
    series: tuple[Series, ...]
    targets: tuple[Target, ...] = ()
    log: bool = False  # a log y axis (latencies that span decades)


@dataclass(frozen=True)
class Chart:
    title: str
    subtitle: str
    x_label: str
    x: tuple[float, ...]
    panels: tuple[Panel, ...]


def _series(label: str, values: list[float | None], color: int,
            dashed: bool = False) -> Series:
    return Series(label, tuple(values), palette(color), dashed)


def _positive(value: float) -> float | None:
    """A latency of a minute with no completions is 0 in the timeline: a gap, not a point."""
    return value if value > 0 else None


def _replica_series(samples: tuple[MinuteSample, ...]) -> tuple[Series, ...]:
    """Existing and ready replicas; desired replicas and nodes when the timeline has them
    (an autoscaling simulation adds them)."""
    # ready is dashed: while every replica serves it lies on existing, and both stay visible
    out = [_series("existing", [float(m.replicas) for m in samples], 0),
           _series("ready", [float(m.ready) for m in samples], 2, dashed=True)]
    for name, color, dashed in (("desired", 1, False), ("nodes", 7, True)):
        values = [getattr(m, name, None) for m in samples]
        if any(v is not None for v in values):
            out.append(_series(name, [None if v is None else float(v) for v in values],
                               color, dashed))
    return tuple(out)


def _latency_panel(sim: Simulation) -> Panel:
    samples = sim.result.timeline
    slos = sim.result.config.slos
    series = (_series("TTFT p95", [_positive(m.ttft_p95_s * 1000) for m in samples], 0),
              _series("TPOT p95", [_positive(m.tpot_p95_s * 1000) for m in samples], 1))
    targets = tuple(Target(f"{name} target", value * 1000, palette(color))
                    for name, value, color in (("TTFT", slos.ttft_s, 0), ("TPOT", slos.tpot_s, 1))
                    if value is not None)
    return Panel("Latency of the requests completed each minute (p95)", "ms (log scale)",
                 series, targets, log=True)


def timeline_chart(sim: Simulation) -> Chart:
    """Four panels over simulated time, one point a simulated minute (its end): arrivals and
    completions a second; replicas; requests waiting and running; p95 TTFT and TPOT against
    their SLO targets."""
    samples = sim.result.timeline
    hours = len(samples) > HOURS_AXIS_ABOVE_MIN
    x = tuple(m.minute / 60 if hours else float(m.minute) for m in samples)
    cfg = sim.result.config
    return Chart(
        title=f"{sim.model_id} on {sim.choice.label}",
        subtitle=f"{sim.traffic}; {cfg.replicas} replicas ({cfg.routing}), seed {cfg.seed}",
        x_label="simulated time (h)" if hours else "simulated time (min)",
        x=x,
        panels=(
            Panel("Load", "requests/s", (
                _series("arrivals", [m.arrived / 60 for m in samples], 0),
                _series("completions", [m.completed / 60 for m in samples], 2))),
            Panel("Replicas", "count", _replica_series(samples)),
            Panel("Queue", "requests", (
                _series("waiting", [float(m.waiting) for m in samples], 3),
                _series("running", [float(m.running) for m in samples], 0, dashed=True))),
            _latency_panel(sim),
        ))


_GREY = "#555555"
_MARKERS = ("o", "s", "^", "D", "v")


def _group(row: SweepRow, several_specs: bool) -> str:
    label = f"{row.plan}, {row.replicas} replicas"
    return f"{label} [{row.spec}]" if several_specs else label


def _mean(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return math.fsum(known) / len(known) if known else None


def _sweep_values(result: SweepResult, x: tuple[float, ...],
                  metric: Callable[[SweepRow], float | None]) -> dict[str, list[float | None]]:
    """Per line (spec, plan, replicas), the mean over seeds of ``metric`` at each rate."""
    several = len({r.spec for r in result.rows}) > 1
    cells: dict[str, dict[float, list[float | None]]] = {}
    for row in result.rows:
        cells.setdefault(_group(row, several), {}).setdefault(row.rps, []).append(metric(row))
    return {name: [_mean(by_rate.get(rate, [])) for rate in x]
            for name, by_rate in cells.items()}


def _sweep_panel(result: SweepResult, x: tuple[float, ...], head: tuple[str, str],
                 metric: Callable[[SweepRow], float | None], targets: tuple[Target, ...] = (),
                 log: bool = False) -> Panel:
    lines = _sweep_values(result, x, metric)
    # a marker a line: plans on the same accelerator give the same latencies, and lie on top
    series = tuple(Series(name, tuple(v), palette(i), marker=_MARKERS[i % len(_MARKERS)])
                   for i, (name, v) in enumerate(lines.items()))
    return Panel(head[0], head[1], series, targets, log)


def _targets(result: SweepResult, metric: str) -> tuple[Target, ...]:
    values = sorted({t for r in result.rows for m, t in r.targets if m == metric})
    name = metric.upper()
    return tuple(Target(f"{name} target (p95) {v * 1000:g} ms", v * 1000, _GREY) for v in values)


def _lowest_share(row: SweepRow) -> float | None:
    shares = [share for _, share in row.attainment]
    return min(shares) * 100 if shares else None


def _p99_ms(index: int) -> Callable[[SweepRow], float | None]:
    def metric(row: SweepRow) -> float | None:
        value = (row.ttft, row.tpot)[index][2]
        return value * 1000 if value > 0 else None
    return metric


def sweep_chart(result: SweepResult) -> Chart:
    """A sweep against the mean traffic asked for, one line a plan (and replica count), each
    point the mean over the seeds: p99 TTFT and TPOT with the p95 targets, the lowest share of
    requests within a target, and the fleet's dollars per million output tokens."""
    x = tuple(sorted({r.rps for r in result.rows}))
    seeds = len({r.seed for r in result.rows})
    return Chart(
        title=f"Sweep {result.path}",
        subtitle=(f"{len(result.rows)} scenarios of {result.duration_s / 60:g} simulated min "
                  f"({result.routing}); each point the mean over {seeds} seed(s)"),
        x_label="mean traffic (requests/s)",
        x=x,
        panels=(
            _sweep_panel(result, x, ("TTFT p99", "ms (log scale)"), _p99_ms(0),
                         _targets(result, "ttft"), log=True),
            _sweep_panel(result, x, ("TPOT p99", "ms (log scale)"), _p99_ms(1),
                         _targets(result, "tpot"), log=True),
            _sweep_panel(result, x, ("Requests within the p95 targets (the lowest share)", "%"),
                         _lowest_share, (Target("95%: the p95 holds", 95.0, _GREY),)),
            _sweep_panel(result, x, ("Cost of the fleet", "USD / 1M output tokens"),
                         lambda r: r.usd_per_million_output_tokens),
        ))


def chart_bytes(chart: Chart, suffix: str) -> bytes:
    """The chart as a file's bytes, by the file's suffix (``.png``, ``.svg`` or ``.html``)."""
    kind = suffix.lower()
    if kind == ".png":
        return _png(chart)
    from eksplain.sim.svg import chart_html, chart_svg

    if kind == ".svg":
        return chart_svg(chart).encode()
    if kind in (".html", ".htm"):
        return chart_html(chart).encode()
    raise InputError(f"Cannot draw a chart as {suffix or 'a file without a suffix'!r}.",
                     hint="name the file .png, .svg or .html, e.g. --chart sim.png")


def _png(chart: Chart) -> bytes:
    try:
        import matplotlib
    except ImportError as exc:  # pragma: no cover - the dev extra installs it
        raise InputError("A PNG chart needs matplotlib, which is not installed.",
                         hint="pip install 'eksplain[chart]', or write --chart FILE.html "
                              "(no extra needed)") from exc
    matplotlib.use("Agg")  # no display; the same pixels everywhere
    from eksplain.sim.mplchart import draw_png

    return draw_png(chart, io.BytesIO())
