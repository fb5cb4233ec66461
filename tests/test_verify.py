"""plan --verify: the fallback over candidates, real simulations that miss and hold, the JSON."""

from __future__ import annotations

import dataclasses
import json
from functools import cache
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from eksplain import api
from eksplain.cli.main import app
from eksplain.errors import InputError
from eksplain.search import Candidate
from eksplain.sim import (
    EngineLimits,
    Fixed,
    LinearStepModel,
    Poisson,
    SimConfig,
    SimResult,
    simulate_replicas,
)
from eksplain.sim.verify import VerifyOptions, verify_candidates

# Bursts at three times a mean of 2 req/s and a 300 ms TTFT: the planner's choice (two
# replicas of g5.xlarge, sized on its steady-state TTFT) queues in the bursts; a replica of
# g6e.xlarge (L40S, about twice the prefill speed) does not.
BURSTY = {"model": "meta-llama/Llama-3.1-8B", "task": "inference",
          "tokens": {"input_mean": 512, "output_mean": 128},
          "traffic": {"rps": 2, "peak_to_mean": 3, "pattern": "flat"},
          "slo": {"ttft_p95": "300ms", "tpot_p95": "60ms"}}
# The same model at 1 req/s without bursts and a 2 s TTFT: the choice has room to spare.
CALM = {**BURSTY, "traffic": {"rps": 1, "peak_to_mean": 1, "pattern": "flat"},
        "slo": {"ttft_p95": "2s", "tpot_p95": "60ms"}}
TEN_MINUTES = VerifyOptions(duration_s=600, seed=0, top=5)


@cache
def _planned(key: str) -> tuple[api.WorkloadSpec, api.Plan]:
    spec = api.spec_from_dict({"bursty": BURSTY, "calm": CALM}[key])
    return spec, api.plan(spec)


def test_a_choice_that_misses_in_simulation_falls_back_to_the_next_that_holds() -> None:
    spec, planned = _planned("bursty")
    v = api.verify(spec, planned, TEN_MINUTES)
    ranked = [c.label for c in (planned.choice, *planned.alternatives) if c is not None]
    assert v.status == "verified"
    assert [c.label for c in v.checks] == ranked[:len(v.checks)]  # in rank order
    assert [c.rank for c in v.checks] == list(range(len(v.checks)))
    assert len(v.checks) > 1
    assert not any(c.passed for c in v.checks[:-1])
    assert v.checks[-1].passed
    assert v.verified == v.checks[-1].label != planned.choice.label  # type: ignore[union-attr]
    ttft = v.checks[0].slos[0]
    assert (ttft.metric, ttft.target_s) == ("ttft", 0.3)
    assert ttft.attainment < 0.95
    assert not ttft.held
    assert ttft.latency.p99_s > 0.3  # the tail it missed by
    assert v.reason.endswith(f"{v.verified} (alternative {v.checks[-1].rank}) holds them")


def test_a_choice_that_holds_is_verified_alone() -> None:
    spec, planned = _planned("calm")
    v = api.verify(spec, planned, TEN_MINUTES)
    assert v.status == "verified"
    assert planned.choice is not None
    assert v.verified == planned.choice.label
    assert len(v.checks) == 1
    assert all(s.attainment >= 0.95 for s in v.checks[0].slos)
    assert {s.metric for s in v.checks[0].slos} == {"ttft", "tpot"}
    assert v.traffic == "Poisson, 1 req/s"


@cache
def _base_result() -> SimResult:
    cfg = SimConfig(duration_s=60, replicas=1, limits=EngineLimits(4, 512, 1000))
    return simulate_replicas(cfg, LinearStepModel(fixed_s=0.01), Poisson(1.0),
                             (Fixed(10), Fixed(10)))


def _result(ttft_share: float, stopped: str = "") -> SimResult:
    return dataclasses.replace(_base_result(), slo_attainment=(("ttft", ttft_share),),
                               stopped=stopped)


def _candidates() -> tuple[Candidate, ...]:
    _, planned = _planned("calm")
    assert planned.choice is not None
    return (planned.choice, *planned.alternatives[:3])


def test_fallback_stops_at_the_first_candidate_that_holds() -> None:
    shares = [0.5, 0.94, 0.96, 1.0]  # the third holds: the fourth is never simulated
    ran: list[int] = []

    def run(rank: int, cand: Candidate) -> SimResult:
        ran.append(rank)
        return _result(shares[rank])

    cands = _candidates()
    verified, checks = verify_candidates(cands, (("ttft", 0.5),), run)
    assert ran == [0, 1, 2]
    assert verified == cands[2].label
    assert [c.passed for c in checks] == [False, False, True]
    assert [c.slos[0].attainment for c in checks] == [0.5, 0.94, 0.96]


def test_fallback_reports_none_when_every_candidate_misses_or_cannot_run() -> None:
    def run(rank: int, cand: Candidate) -> SimResult:
        if rank == 1:
            raise InputError("No serving estimate.")
        # rank 2 holds its share but its queue grew without bound: that fails too
        return _result(0.99, "the queue grew without bound") if rank == 2 else _result(0.1)

    verified, checks = verify_candidates(_candidates(), (("ttft", 0.5),), run)
    assert verified is None
    assert len(checks) == 4
    assert checks[1].stopped == "could not be simulated: No serving estimate."
    assert not checks[2].passed


def test_a_target_with_no_completed_request_is_missed() -> None:
    # An e2e target, but the result has attainment only for ttft (nothing completed for e2e).
    verified, checks = verify_candidates(_candidates()[:1], (("ttft", 0.5), ("e2e", 9.0)),
                                         lambda rank, cand: _result(1.0))
    assert verified is None
    assert [(s.metric, s.held) for s in checks[0].slos] == [("ttft", True), ("e2e", False)]


def test_top_limits_the_candidates_tried() -> None:
    spec, planned = _planned("bursty")
    v = api.verify(spec, planned, VerifyOptions(duration_s=600, top=1))
    assert v.status == "failed"
    assert v.verified is None
    assert len(v.checks) == 2  # the choice and one alternative


def test_plans_that_are_not_online_serving_are_not_applicable(runner: CliRunner) -> None:
    spec = api.load_spec(Path("examples/lora-llama-3.1-8b.yaml"))
    v = api.verify(spec, api.plan(spec))
    assert v.status == "not-applicable"
    assert "only serving plans of task inference" in v.reason
    assert v.checks == ()
    result = runner.invoke(app, ["plan", "examples/lora-llama-3.1-8b.yaml", "--verify"],
                           env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "verify: not applicable: only serving plans of task inference" in result.output


def test_a_spec_without_latency_targets_is_not_applicable() -> None:
    spec = api.spec_from_dict({**CALM, "slo": {}})
    v = api.verify(spec, api.plan(spec), TEN_MINUTES)
    assert v.status == "not-applicable"
    assert "no ttft_p95, tpot_p95 or e2e_p95" in v.reason


def _write(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(json.dumps(data))  # JSON is YAML
    return path


def test_cli_plan_verify_json_has_a_verification_section(runner: CliRunner,
                                                         tmp_path: Path) -> None:
    spec = _write(tmp_path, BURSTY)
    result = runner.invoke(app, ["plan", str(spec), "--verify", "--verify-duration", "10m",
                                 "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    v = data["verification"]
    assert v["status"] == "verified"
    assert v["verified"] != data["choice"]["label"]
    assert v["attainment_required"] == 0.95
    first = v["candidates"][0]
    assert first["label"] == data["choice"]["label"]
    assert first["passed"] is False
    assert first["slos"][0]["metric"] == "ttft"
    assert first["slos"][0]["attainment"] < 0.95
    assert v["candidates"][-1]["passed"] is True
    # render still reads the plan JSON (the section is an addition)
    (tmp_path / "plan.json").write_text(result.output)
    assert api.load_plan_json(tmp_path / "plan.json").choice_label == data["choice"]["label"]
    # the same plan without --verify has no section
    plain = json.loads(runner.invoke(app, ["plan", str(spec), "--json"]).output)
    assert "verification" not in plain


def test_cli_plan_verify_prints_each_candidate(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(app, ["plan", str(_write(tmp_path, BURSTY)), "--verify",
                                 "--verify-duration", "10m"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "(the choice, 2 replicas): misses: TTFT" in result.output
    assert "holds" in result.output
    assert "verified: g6e.xlarge" in result.output


def test_cli_plan_verify_bad_duration(runner: CliRunner) -> None:
    result = runner.invoke(app, ["plan", "examples/chat-llama-3.1-8b.yaml", "--verify",
                                 "--verify-duration", "soon"])
    assert result.exit_code == 2
    assert "Cannot read 'soon' as a duration" in result.output
