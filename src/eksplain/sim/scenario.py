"""From a workload spec and the plan's choice to a simulation: the glue the facade calls.

    traffic:   a trace when given; else the spec's pattern: daily -> the planner's daily curve
               starting at its busiest hour; flat with peak_to_mean > 1 -> bursts (Bursty, one
               minute on average at the peak rate); flat at 1 -> Poisson
    lengths:   lognormal fitted to the spec's mean and p95 (fixed when they are equal)
    replicas:  the plan's peak replicas, or the caller's count (fixed for the whole run)
    engine:    max_num_seqs = the plan's batch (as ``render`` deploys it), vLLM's token budget
               (data/calibration.yaml), the KV blocks and block size of an estimate of the
               chosen setup
    steps:     ``EstimatorStepModel`` of that same estimate
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from eksplain.calibration import load_calibration
from eksplain.errors import InputError
from eksplain.estimate import Estimate, EstimateRequest, run_estimate
from eksplain.hardware import HardwareCatalog
from eksplain.search import Candidate
from eksplain.search.serving import daily_shape
from eksplain.sim.engine import SimConfig, SimResult, Slos, simulate_replicas
from eksplain.sim.replica import EngineLimits
from eksplain.sim.steps import estimator_step_model
from eksplain.sim.traffic import (
    ArrivalProcess,
    Bursty,
    Daily,
    Fixed,
    LengthDist,
    LogNormal,
    Poisson,
    Trace,
)
from eksplain.spec import WorkloadSpec

__all__ = ["SimulateOptions", "Simulation", "simulate_plan"]

BURST_S = 60.0  # mean length of a burst at the peak rate, for flat traffic with bursts


@dataclass(frozen=True)
class SimulateOptions:
    duration_s: float = 3600.0
    seed: int = 0
    replicas: int | None = None  # default: the plan's peak replicas
    routing: str = "least-outstanding"
    trace: Trace | None = None
    queue_cap: int = 100_000


@dataclass(frozen=True)
class Simulation:
    """A simulated plan: what ran (setup, traffic, engine limits) and what it measured."""

    model_id: str
    choice: Candidate
    traffic: str  # in words
    limits: EngineLimits
    estimated_tpot_s: float  # the estimator's TPOT at the plan's batch, for comparison
    result: SimResult


def _lengths(mean: int, p95: int) -> LengthDist:
    return Fixed(mean) if p95 <= mean else LogNormal.fit(mean, p95)


def traffic_for(spec: WorkloadSpec, trace: Trace | None) -> tuple[ArrivalProcess, str]:
    t = spec.traffic
    if trace is not None:
        n = len(trace.rows)
        return trace, f"trace of {n:,} request{'' if n == 1 else 's'}"
    if t.pattern == "daily":
        shape = daily_shape(t.peak_to_mean)
        busiest = shape.index(max(shape))
        return (Daily(t.rps, t.peak_to_mean, busiest),
                f"daily pattern, mean {t.rps:g} req/s, peak-to-mean {t.peak_to_mean:g}, "
                f"from hour {busiest} (the busiest)")
    if t.peak_to_mean > 1:
        share = 0.5 / t.peak_to_mean  # bursts half as often as the mean allows
        return (Bursty(t.rps, t.peak_to_mean, BURST_S, share),
                f"Poisson with bursts, mean {t.rps:g} req/s, bursts of {BURST_S:.0f} s at "
                f"{t.peak_to_mean:g} x the mean")
    return Poisson(t.rps), f"Poisson, {t.rps:g} req/s"


def _estimate(spec: WorkloadSpec, c: Candidate, catalog: HardwareCatalog) -> Estimate:
    batch = c.detail("batch")
    return run_estimate(EstimateRequest(
        model=spec.model, hardware=c.instance_type, devices=c.tp * c.pp, tp=c.tp, pp=c.pp,
        dp=1, ep=int(c.detail("ep") or 1), task="inference", dtype=c.weight_format,
        batch=int(batch) if isinstance(batch, int | float) else 1,
        input_tokens=spec.tokens.input_mean, output_tokens=spec.tokens.output_mean,
        engine=spec.engine, region=spec.constraints.region,
        capacity_type=spec.constraints.capacity_type, storage="s3"), catalog)


def _check(spec: WorkloadSpec, options: SimulateOptions) -> None:
    if spec.task != "inference" or spec.tokens.output_mean < 1:
        raise InputError(f"simulate runs online generation (task: inference); this spec's task "
                         f"is {spec.task} with {spec.tokens.output_mean} output tokens.",
                         hint="use a serving spec such as examples/chat-llama-3.1-8b.yaml")
    if options.duration_s <= 0:
        raise InputError("The simulated duration must be more than zero.", hint="--duration 1h")
    if options.replicas is not None and options.replicas < 1:
        raise InputError("--replicas must be at least 1.")


def simulate_plan(spec: WorkloadSpec, choice: Candidate, catalog: HardwareCatalog,
                  options: SimulateOptions,
                  progress: Callable[[float], None] | None = None) -> Simulation:
    """Simulate ``choice`` (a serving candidate of ``spec``'s plan) under the spec's traffic."""
    _check(spec, options)
    est = _estimate(spec, choice, catalog)
    if est.kv is None or est.speed.serving is None:
        raise InputError(f"No serving estimate for {choice.label}.")
    t = spec.tokens
    limits = EngineLimits(
        max_num_seqs=choice.concurrency(est.speed.serving.batch),
        max_num_batched_tokens=load_calibration().token_budget(choice.accelerator),
        kv_blocks=est.kv.blocks, block_size=est.kv.block_size)
    replicas = options.replicas or int(choice.detail("replicas_peak") or choice.dp)
    s = spec.slo
    cfg = SimConfig(options.duration_s, replicas, limits, options.routing, options.seed,
                    options.queue_cap, Slos(s.ttft_p95, s.tpot_p95, s.e2e_p95))
    traffic, words = traffic_for(spec, options.trace)
    model = estimator_step_model(est, catalog, (t.input_mean, t.output_mean))
    lengths = (_lengths(t.input_mean, t.input_high), _lengths(t.output_mean, t.output_high))
    result = simulate_replicas(cfg, model, traffic, lengths, progress)
    return Simulation(spec.model, choice, words, limits, est.speed.serving.tpot_s, result)
