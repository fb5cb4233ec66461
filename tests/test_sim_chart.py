"""Charts of a simulation: what is plotted (the model), and valid PNG, SVG and HTML files."""

from __future__ import annotations

import dataclasses
import re
import struct
from functools import cache
from pathlib import Path

import pytest
from typer.testing import CliRunner

from eksplain import api
from eksplain.cli.main import app
from eksplain.errors import InputError
from eksplain.sim.chart import Chart, Panel, Series, chart_bytes, timeline_chart
from eksplain.sim.metrics import MinuteSample
from eksplain.sim.svg import nice_ticks

SPEC = Path("examples/chat-llama-3.1-8b.yaml")
MINUTES = 3


@cache
def _sim() -> api.Simulation:
    # Seven replicas of the chat plan hold its peak: every minute completes requests.
    spec = api.load_spec(SPEC)
    return api.simulate(spec, api.SimulateOptions(duration_s=60 * MINUTES, replicas=7))


def _series(chart: Chart) -> dict[str, Series]:
    return {s.label: s for p in chart.panels for s in p.series}


def test_timeline_chart_plots_the_timeline() -> None:
    sim = _sim()
    chart = timeline_chart(sim)
    tl = sim.result.timeline
    assert chart.x == (1.0, 2.0, 3.0)
    assert [p.title for p in chart.panels][:3] == ["Load", "Replicas", "Queue"]
    s = _series(chart)
    assert s["arrivals"].values == tuple(m.arrived / 60 for m in tl)
    assert s["completions"].values == tuple(m.completed / 60 for m in tl)
    assert s["existing"].values == (7.0,) * MINUTES
    assert s["waiting"].values == tuple(float(m.waiting) for m in tl)
    assert s["TTFT p95"].values == tuple(m.ttft_p95_s * 1000 for m in tl)
    # desired replicas and nodes are plotted exactly when the timeline has them
    assert ("desired" in s) == hasattr(tl[0], "desired")
    assert ("nodes" in s) == hasattr(tl[0], "nodes")
    latency = chart.panels[3]
    assert latency.log
    assert {(t.label, t.value) for t in latency.targets} == {("TTFT target", 500.0),
                                                            ("TPOT target", 50.0)}


@dataclasses.dataclass(frozen=True)
class _ScaledSample(MinuteSample):
    """A timeline sample as an autoscaling simulation writes it."""

    desired: int = 0
    nodes: int = 0


def test_desired_replicas_and_nodes_are_plotted_when_the_timeline_has_them() -> None:
    sim = _sim()
    timeline = tuple(_ScaledSample(**{**dataclasses.asdict(m), "desired": 9, "nodes": 3})
                     for m in sim.result.timeline)
    scaled = dataclasses.replace(sim, result=dataclasses.replace(sim.result, timeline=timeline))
    s = _series(timeline_chart(scaled))
    assert s["desired"].values == (9.0,) * MINUTES
    assert s["nodes"].values == (3.0,) * MINUTES


def test_a_minute_without_completions_is_a_gap_in_the_latency_line() -> None:
    sim = _sim()
    tl = list(sim.result.timeline)
    tl[1] = dataclasses.replace(tl[1], ttft_p95_s=0.0, tpot_p95_s=0.0)
    gap = dataclasses.replace(sim, result=dataclasses.replace(sim.result, timeline=tuple(tl)))
    assert _series(timeline_chart(gap))["TTFT p95"].values[1] is None
    svg = chart_bytes(timeline_chart(gap), ".svg").decode()
    path = re.search(r'data-label="TTFT p95"[^>]* d="([^"]*)"', svg)
    assert path is not None
    assert path.group(1).count("M") == 2  # the pen lifts over the gap


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_png_is_a_png_of_a_readable_size() -> None:
    data = chart_bytes(timeline_chart(_sim()), ".png")
    width, height = _png_size(data)
    assert width == 1100  # 11 inches at 100 dpi
    assert 900 <= height <= 1200  # four panels
    assert data.endswith(b"IEND\xaeB`\x82")
    assert len(data) > 20_000  # lines and text, not a blank canvas


def test_html_is_one_page_with_an_svg_path_for_each_series() -> None:
    chart = timeline_chart(_sim())
    html = chart_bytes(chart, ".html").decode()
    assert html.startswith("<!DOCTYPE html>")
    assert html.count("<svg") == 1
    assert "<script" not in html
    assert "http://" not in html.replace(
        'xmlns="http://www.w3.org/2000/svg"', "")
    for label, series in _series(chart).items():
        match = re.search(rf'<path class="series" data-label="{label}"[^>]* d="([^"]*)"', html)
        assert match is not None, label
        points = re.findall(r"[ML](\d+\.\d),(\d+\.\d)", match.group(1))
        assert len(points) == sum(v is not None for v in series.values), label
    for target in ("TTFT target", "TPOT target"):
        assert f'<path class="target" data-label="{target}"' in html


def test_svg_maps_values_to_the_plot_area() -> None:
    # One panel, linear: 0 at the bottom of the plot area, the top tick at its top.
    chart = Chart("t", "s", "x", (0.0, 10.0), (Panel("p", "u", (
        Series("a", (0.0, 10.0), "#000000"),)),))
    svg = chart_bytes(chart, ".svg").decode()
    d = re.search(r'data-label="a"[^>]* d="([^"]*)"', svg)
    assert d is not None
    (x0, y0), (x1, y1) = ((float(a), float(b)) for a, b in re.findall(r"(\d+\.\d),(\d+\.\d)",
                                                                     d.group(1)))
    assert x1 > x0
    assert y1 < y0
    assert y0 - y1 == pytest.approx(140.0)  # the whole plot height


@pytest.mark.parametrize(("low", "high", "ticks"), [
    (0, 40.9, [0, 10, 20, 30, 40, 50]),
    (0, 7, [0, 2, 4, 6, 8]),
    (0, 12_100, [0, 5000, 10_000, 15_000]),
    (0, 0.3, [0, 0.1, 0.2, 0.3]),
])
def test_nice_ticks(low: float, high: float, ticks: list[float]) -> None:
    assert nice_ticks(low, high) == pytest.approx(ticks)


def test_unknown_chart_suffix_is_refused() -> None:
    with pytest.raises(InputError, match=r"\.png, \.svg or \.html"):
        chart_bytes(timeline_chart(_sim()), ".jpg")


def test_cli_simulate_writes_the_chart(runner: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "sim.png"
    result = runner.invoke(app, ["simulate", str(SPEC), "--duration", "2m", "--json",
                                 "--chart", str(out)])
    assert result.exit_code == 0, result.output
    assert _png_size(out.read_bytes())[0] == 1100
    bad = runner.invoke(app, ["simulate", str(SPEC), "--duration", "1m", "--chart",
                              str(tmp_path / "sim.gif")])
    assert bad.exit_code == 2
    assert "Cannot draw a chart as '.gif'" in bad.output
