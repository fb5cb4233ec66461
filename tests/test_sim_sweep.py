"""Sweeps: the file's schema and its errors, the scenarios, runners that agree, the outputs."""

from __future__ import annotations

import dataclasses
import gc
import importlib.util
import json
import warnings
from functools import cache
from pathlib import Path

import pytest
from typer.testing import CliRunner

from eksplain import api
from eksplain.cli.main import app
from eksplain.errors import InputError
from eksplain.hardware import load_catalog
from eksplain.sim.chart import sweep_chart
from eksplain.sim.sweep import (
    ProcessRunner,
    RayRunner,
    SequentialRunner,
    Sweep,
    SweepRow,
    load_sweep,
    prepare_jobs,
    run_sweep,
)

ROOT = Path(__file__).resolve().parents[1]
SPEC = ("model: meta-llama/Llama-3.1-8B\ntask: inference\n"
        "tokens: {input_mean: 512, output_mean: 128}\n"
        "traffic: {rps: 1, peak_to_mean: 1, pattern: flat}\n"
        "slo: {ttft_p95: 2s, tpot_p95: 60ms}\n")
# Two plans x two rates x two seeds, one simulated minute each: eight small scenarios.
SWEEP = "spec: specs/calm.yaml\nplans: 2\nrps: [1, 3]\nseeds: [0, 1]\nduration: 1m\n"


def _files(tmp_path: Path, sweep: str = SWEEP) -> Path:
    (tmp_path / "specs").mkdir(exist_ok=True)
    (tmp_path / "specs" / "calm.yaml").write_text(SPEC)
    path = tmp_path / "sweep.yaml"
    path.write_text(sweep)
    return path


@cache
def _sweep() -> Sweep:
    # A fixed folder of this checkout would do, but the spec lives beside the sweep: write both
    # to a directory that lives as long as the test session.
    import tempfile

    return load_sweep(_files(Path(tempfile.mkdtemp())))


@cache
def _sequential() -> tuple[SweepRow, ...]:
    return run_sweep(_sweep(), SequentialRunner(), load_catalog()).rows


def test_scenarios_are_every_combination_in_the_files_order() -> None:
    jobs = prepare_jobs(_sweep(), load_catalog())
    planned = api.plan(_sweep().specs[0][1])
    assert planned.choice is not None
    plans = [planned.choice.label, planned.alternatives[0].label]
    assert [(j.candidate.label, j.spec.traffic.rps, j.seed) for j in jobs] == [
        (p, rps, seed) for p in plans for rps in (1, 3) for seed in (0, 1)]
    assert [j.index for j in jobs] == list(range(8))
    # the rate replaces the spec's mean; the rest of the traffic stays
    assert {j.spec.traffic.pattern for j in jobs} == {"flat"}
    assert all(j.replicas == j.candidate.detail("replicas_peak") for j in jobs)


def test_rows_measure_their_scenario() -> None:
    rows = _sequential()
    assert len(rows) == 8
    for row in rows:
        assert row.arrived == row.completed + row.failed + row.in_flight
        assert row.simulated_s == 60
        assert dict(row.targets) == {"ttft": 2.0, "tpot": 0.06}
    # three times the traffic, three times the arrivals (within Poisson noise)
    low = sum(r.arrived for r in rows if r.rps == 1)
    high = sum(r.arrived for r in rows if r.rps == 3)
    assert 2.2 < high / low < 3.8
    # cost: the replicas at the plan's peak price per replica, per million output tokens
    row = rows[0]
    assert row.usd_per_million_output_tokens == pytest.approx(
        row.usd_per_hour / 60 / (row.output_tokens_per_s * 60) * 1e6)


def test_local_processes_give_the_sequential_result_byte_for_byte() -> None:
    rows = run_sweep(_sweep(), ProcessRunner(3), load_catalog()).rows
    assert rows == _sequential()
    first = json.dumps(api.sweep_dict(api.SweepResult("s", 60, "x", rows)))
    assert first == json.dumps(api.sweep_dict(api.SweepResult("s", 60, "x", _sequential())))


@pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                    reason="Ray is an optional extra (pip install 'eksplain[ray]')")
def test_a_local_ray_instance_gives_the_sequential_result() -> None:
    sweep = _sweep()
    small = dataclasses.replace(sweep, file=sweep.file.model_copy(update={"seeds": [0]}))
    heard: list[tuple[int, int]] = []
    with warnings.catch_warnings():
        # Ray's node start-up leaves handles on /dev/null open (its code, not ours): collect
        # them here, where their ResourceWarning is ignored, not in a later test.
        warnings.simplefilter("ignore", ResourceWarning)
        rows = run_sweep(small, RayRunner("local", 1), load_catalog(),
                         lambda done, total: heard.append((done, total))).rows
        gc.collect()
    assert rows == tuple(r for r in _sequential() if r.seed == 0)
    assert heard[-1] == (4, 4)


def test_progress_hears_each_scenario() -> None:
    heard: list[tuple[int, int]] = []
    one = dataclasses.replace(_sweep(), file=_sweep().file.model_copy(
        update={"plans": 1, "rps": [1], "seeds": [0, 1]}))
    run_sweep(one, ProcessRunner(2), load_catalog(), lambda d, t: heard.append((d, t)))
    assert heard == [(1, 2), (2, 2)]


@pytest.mark.parametrize(("text", "words"), [
    (SWEEP.replace("rps: [1, 3]", "rps: [1, -3]"),
     "sweep.yaml:3: rps.1: Input should be greater than 0"),
    (SWEEP + "replicas: [0]\n", "sweep.yaml:6: replicas.0: Input should be greater than or "
                                "equal to 1"),
    (SWEEP.replace("seeds:", "seed:"), "sweep.yaml:4: seed: Extra inputs are not permitted "
                                       "(did you mean seeds?)"),
    (SWEEP.replace("duration: 1m", "duration: a while"),
     "sweep.yaml:5: duration: Cannot read 'a while' as a duration."),
    (SWEEP.replace("plans: 2", "plans: 0"), "sweep.yaml:2: plans: Input should be greater than"),
    (SWEEP.replace("spec: specs/calm.yaml", "specs: [specs/calm.yaml]\nspec: specs/calm.yaml"),
     "give exactly one of spec (a path) and specs (a list of paths)"),
    (SWEEP + "routing: random\n", "sweep.yaml:6: routing: routing must be one of"),
    (SWEEP.replace("rps: [1, 3]", "rps: [1, 3"), "sweep.yaml:4: not valid YAML"),
    ("- spec: a.yaml\n", "a sweep file is a mapping"),
])
def test_sweep_file_errors_name_the_line_and_field(tmp_path: Path, text: str,
                                                   words: str) -> None:
    with pytest.raises(InputError) as err:
        load_sweep(_files(tmp_path, text))
    assert words in str(err.value)


def test_sweep_specs_are_relative_to_the_file_and_must_serve(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"missing\.yaml"):
        load_sweep(_files(tmp_path, SWEEP.replace("specs/calm.yaml", "specs/missing.yaml")))
    (tmp_path / "specs").mkdir(exist_ok=True)
    (tmp_path / "specs" / "lora.yaml").write_text(
        (ROOT / "examples" / "lora-llama-3.1-8b.yaml").read_text())
    with pytest.raises(InputError, match=r"lora\.yaml is a fine-tuning spec"):
        load_sweep(_files(tmp_path, SWEEP.replace("calm.yaml", "lora.yaml")))


def test_examples_sweep_files_load() -> None:
    files = sorted((ROOT / "examples" / "sweeps").glob("*.yaml"))
    assert files
    for path in files:
        assert load_sweep(path).specs


def test_sweep_chart_has_a_line_a_plan_at_the_mean_over_seeds() -> None:
    rows = _sequential()
    chart = sweep_chart(api.SweepResult("s.yaml", 60, "least-outstanding", rows))
    assert chart.x == (1.0, 3.0)
    plans = sorted({f"{r.plan}, {r.replicas} replicas" for r in rows})
    for panel in chart.panels:
        assert sorted(s.label for s in panel.series) == plans
    ttft = {s.label: s.values for s in chart.panels[0].series}
    first = rows[0]
    at_rate = [r.ttft[2] * 1000 for r in rows if r.plan == first.plan and r.rps == first.rps]
    assert len(at_rate) == 2  # two seeds
    assert ttft[f"{first.plan}, {first.replicas} replicas"][0] == pytest.approx(
        sum(at_rate) / 2)
    assert [t.value for t in chart.panels[0].targets] == [2000.0]
    assert [t.value for t in chart.panels[2].targets] == [95.0]


def test_cli_sweep_table_json_and_chart(runner: CliRunner, tmp_path: Path) -> None:
    path = _files(tmp_path, SWEEP.replace("seeds: [0, 1]", "seeds: [0]"))
    out = tmp_path / "sweep.html"
    result = runner.invoke(app, ["simulate", "--sweep", str(path), "--jobs", "2", "--json",
                                 "--chart", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["scenarios"] == 4
    assert [(r["rps"], r["seed"]) for r in data["rows"]][:2] == [(1, 0), (3, 0)]
    assert "sweep: 4/4 scenarios done" in result.stderr
    html = out.read_text()
    assert html.count('<path class="series"') == 4 * 2  # four panels, two plans
    table = runner.invoke(app, ["simulate", "--sweep", str(path), "--jobs", "1"],
                          env={"COLUMNS": "100"})
    assert table.exit_code == 0, table.output
    assert "#1: " in table.stdout
    assert "#2: " in table.stdout
    assert "TTFT" in table.stdout


def test_cli_simulate_needs_a_spec_or_a_sweep(runner: CliRunner) -> None:
    result = runner.invoke(app, ["simulate"])
    assert result.exit_code == 2
    assert "Give a spec file, or --sweep FILE" in result.output


def test_cli_sweep_needs_a_worker(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(app, ["simulate", "--sweep", str(_files(tmp_path)), "--jobs", "0"])
    assert result.exit_code == 2
    assert "--jobs must be at least 1" in result.output
