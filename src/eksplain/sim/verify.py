"""``eksplain plan --verify``: does the plan's choice hold its SLOs under simulated traffic?

Each candidate is simulated (``scenario.simulate_plan``) as a fixed fleet at its peak
replicas under the spec's traffic: a daily pattern starts at its busiest hour, so the run sees
the load the plan sized its peak for. The spec's targets are p95s (``ttft_p95``, ``tpot_p95``,
``e2e_p95``); a p95 holds when at least 95% of the completed requests are within the target,
which is what the simulator's SLO attainment counts (exactly, request by request). A
candidate passes when every target holds and the queue did not grow past the simulator's cap.

Candidates are tried in the plan's rank order, the choice first and then the alternatives
(cheapest first), at most ``top`` alternatives; the first that passes is the verified one. Each
failed one reports, per target, the share it reached and its p50, p90 and p99.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from eksplain.errors import EksplainError
from eksplain.hardware import HardwareCatalog
from eksplain.search import Candidate, Plan
from eksplain.sim.engine import SimResult
from eksplain.sim.metrics import ATTAINMENT_FOR_P95, LatencySummary
from eksplain.sim.sweep import peak_replicas
from eksplain.spec import WorkloadSpec

__all__ = ["ATTAINMENT_FOR_P95", "CandidateCheck", "SloCheck", "Verification", "VerifyOptions",
           "verify_candidates", "verify_plan"]



@dataclass(frozen=True)
class VerifyOptions:
    duration_s: float = 3600.0
    seed: int = 0
    top: int = 5  # alternatives to try after the plan's choice (as many as `plan --top` shows)


@dataclass(frozen=True)
class SloCheck:
    """One p95 target against the simulation: the share within it and the percentiles."""

    metric: str  # ttft | tpot | e2e
    target_s: float
    attainment: float  # share of completed requests within the target (0 when none completed)
    latency: LatencySummary

    @property
    def held(self) -> bool:
        return self.attainment >= ATTAINMENT_FOR_P95


@dataclass(frozen=True)
class CandidateCheck:
    label: str
    rank: int  # 0: the plan's choice; 1: its first alternative ...
    replicas: int
    slos: tuple[SloCheck, ...]
    arrived: int
    completed: int
    in_flight: int
    stopped: str  # why the simulation stopped early (the queue cap), or could not run

    @property
    def passed(self) -> bool:
        return not self.stopped and all(s.held for s in self.slos)


@dataclass(frozen=True)
class Verification:
    status: str  # verified | failed | not-applicable
    reason: str  # in words: what was verified, or why nothing could be
    verified: str | None  # the label of the candidate that holds its SLOs
    duration_s: float
    seed: int
    traffic: str
    checks: tuple[CandidateCheck, ...]
    attainment_required: float = ATTAINMENT_FOR_P95


def _targets(spec: WorkloadSpec) -> tuple[tuple[str, float], ...]:
    s = spec.slo
    return tuple((name, value) for name, value in
                 (("ttft", s.ttft_p95), ("tpot", s.tpot_p95), ("e2e", s.e2e_p95))
                 if value is not None)


def not_verifiable(spec: WorkloadSpec, plan: Plan) -> str:
    """Why this plan cannot be verified by simulation; empty when it can."""
    if spec.task != "inference" or spec.tokens.output_mean < 1:
        return (f"only serving plans of task inference can be verified by simulation; this plan "
                f"is {spec.task}")
    if plan.choice is None:
        return "the plan chose nothing to verify"
    if not _targets(spec):
        return "the spec sets no ttft_p95, tpot_p95 or e2e_p95 to verify"
    return ""


def _check(c: Candidate, rank: int, result: SimResult,
           targets: tuple[tuple[str, float], ...]) -> CandidateCheck:
    shares = dict(result.slo_attainment)
    latency = {"ttft": result.ttft, "tpot": result.tpot, "e2e": result.e2e}
    slos = tuple(SloCheck(m, t, shares.get(m, 0.0), latency[m]) for m, t in targets)
    return CandidateCheck(c.label, rank, result.config.replicas, slos, result.arrived,
                          result.completed, result.in_flight, result.stopped)


def verify_candidates(candidates: tuple[Candidate, ...], targets: tuple[tuple[str, float], ...],
                      run: Callable[[int, Candidate], SimResult],
                      ) -> tuple[str | None, tuple[CandidateCheck, ...]]:
    """Simulate candidates in order with ``run(rank, candidate)`` until one holds every
    target: that one's label (None when none does) and each check made. A candidate the
    simulator cannot run fails with the reason."""
    checks: list[CandidateCheck] = []
    for rank, cand in enumerate(candidates):
        try:
            check = _check(cand, rank, run(rank, cand), targets)
        except EksplainError as exc:
            check = CandidateCheck(cand.label, rank, cand.dp, (), 0, 0, 0,
                                   f"could not be simulated: {exc.message}")
        checks.append(check)
        if check.passed:
            return cand.label, tuple(checks)
    return None, tuple(checks)


def verify_plan(spec: WorkloadSpec, plan: Plan, catalog: HardwareCatalog,
                options: VerifyOptions,
                progress: Callable[[float], None] | None = None) -> Verification:
    """Verify ``plan`` (of ``spec``) by simulation; ``progress`` hears the simulated seconds
    done over all candidates so far."""
    from eksplain.sim.scenario import SimulateOptions, simulate_plan, traffic_for

    why = not_verifiable(spec, plan)
    if why:
        return Verification("not-applicable", why, None, options.duration_s, options.seed, "",
                            ())
    candidates = ((plan.choice,) if plan.choice else ()) + plan.alternatives

    def run(rank: int, cand: Candidate) -> SimResult:
        def heard(done_s: float) -> None:
            if progress is not None:
                progress(rank * options.duration_s + done_s)

        # A fixed fleet at the candidate's peak replicas: the sizing the plan chose for the
        # busiest hour, checked without the autoscaler's own dynamics.
        sim_options = SimulateOptions(duration_s=options.duration_s, seed=options.seed,
                                      replicas=peak_replicas(cand))
        return simulate_plan(spec, cand, catalog, sim_options, heard).result

    verified, checks = verify_candidates(candidates[:1 + max(options.top, 0)], _targets(spec), run)
    _, traffic = traffic_for(spec, None)
    if verified is None:
        reason = (f"none of the {len(checks)} candidate(s) tried holds the spec's p95 targets "
                  "in simulation")
    elif checks[-1].rank == 0:
        reason = "the plan's choice holds the spec's p95 targets in simulation"
    else:
        reason = (f"the plan's choice misses its targets in simulation; {verified} "
                  f"(alternative {checks[-1].rank}) holds them")
    return Verification("verified" if verified else "failed", reason, verified,
                        options.duration_s, options.seed, traffic, checks)
