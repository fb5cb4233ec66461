"""From a workload spec and the plan's choice to a simulation: the glue the facade calls.

    traffic:   a trace when given; else the spec's pattern: daily -> the planner's daily curve
               starting at its busiest hour; flat with peak_to_mean > 1 -> bursts (Bursty, one
               minute on average at the peak rate); flat at 1 -> Poisson
    lengths:   lognormal fitted to the spec's mean and p95 (fixed when they are equal)
    fleet:     ``--autoscale hpa`` (default) or ``keda`` between the plan's min and peak
               replicas (KEDA: from zero) on the plan's metric and target, starting at the
               replicas the plan gives the starting hour; ``off`` or ``--replicas N``: a fixed
               count (the plan's peak by default), replaced when lost. Replicas per node =
               accelerators per instance // (TP x PP); cold start = node provisioning + image
               pull + weight load from the plan's model cache + engine warm-up (the planner's
               figures); spot interruptions (eksplain.spot) when the spec asks for spot; crashes
               at the published failure rate per GPU-day (data/failures.yaml) x the replica's
               devices; price per instance-hour = the plan's (on-demand or spot)
    engine:    max_num_seqs = the plan's batch (as ``render`` deploys it), the engine's token
               budget (data/calibration.yaml; vLLM's where the engine has no entry, and said
               so) or ``--token-budget``, the KV blocks and block size of an estimate of the
               chosen setup
    steps:     ``EstimatorStepModel`` of that same estimate
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from eksplain.calibration import load_calibration
from eksplain.checkpoint import (
    cold_start_seconds,
    failure_rate,
    find_storage,
    load_storage,
    node_provisioning_seconds,
    read_seconds,
)
from eksplain.errors import InputError, suggest
from eksplain.estimate import Estimate, EstimateRequest, run_estimate
from eksplain.hardware import HardwareCatalog, find_instance
from eksplain.search import Candidate
from eksplain.search.serving import daily_shape
from eksplain.sim.engine import SimConfig, SimResult, Slos, simulate_replicas
from eksplain.sim.fleet import AUTOSCALERS, FleetConfig
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
from eksplain.spot import SPOT_NOTICE_S, interruption_rate_per_hour

__all__ = ["SimulateOptions", "Simulation", "simulate_plan"]

BURST_S = 60.0  # mean length of a burst at the peak rate, for flat traffic with bursts
HOURS_PER_DAY = 24


@dataclass(frozen=True)
class SimulateOptions:
    duration_s: float = 3600.0
    seed: int = 0
    replicas: int | None = None  # a fixed count (autoscaling off); default: autoscaled
    routing: str = "least-outstanding"
    trace: Trace | None = None
    queue_cap: int = 100_000
    autoscale: str = "hpa"  # hpa, keda or off (render's default autoscaler is the HPA)
    token_budget: int | None = None  # the engine's max_num_batched_tokens; default: calibrated
    weight_load_s: float | None = None  # the plan's model-cache load; default: from S3


@dataclass(frozen=True)
class Simulation:
    """A simulated plan: what ran (setup, traffic, engine limits) and what it measured."""

    model_id: str
    choice: Candidate
    traffic: str  # in words
    limits: EngineLimits
    estimated_tpot_s: float  # the estimator's TPOT at the plan's batch, for comparison
    result: SimResult
    token_budget_source: str = ""  # where max_num_batched_tokens came from
    cold_start_s: tuple[tuple[str, float], ...] = ()  # its parts: node, image, load, warm-up


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
    if options.autoscale not in AUTOSCALERS:
        raise InputError(f"Unknown autoscaler {options.autoscale!r}.", hint="hpa, keda or off",
                         suggestions=suggest(options.autoscale, AUTOSCALERS))
    if options.token_budget is not None and options.token_budget < 1:
        raise InputError("--token-budget must be at least 1.")


def token_budget(spec: WorkloadSpec, options: SimulateOptions,
                 accelerator: str) -> tuple[int, str]:
    """The engine's max_num_batched_tokens on ``accelerator`` and where it came from:
    ``--token-budget``, else the engine's default for the device (data/calibration.yaml
    ``token_budgets``, the value estimate, plan and render use), vLLM's where the engine has
    no row."""
    if options.token_budget is not None:
        return options.token_budget, "--token-budget"
    cal = load_calibration()
    budget = cal.token_budget(accelerator, spec.engine)
    if spec.engine in {b.engine for b in cal.token_budgets}:
        return budget, f"{spec.engine}'s default on {accelerator} (data/calibration.yaml)"
    return budget, (f"vLLM's default on {accelerator} (data/calibration.yaml): {spec.engine} "
                    "has no calibrated token budget")


def _start_rate(spec: WorkloadSpec) -> float:
    """Requests/s at the start of the run: the busiest hour of a daily pattern (where the
    simulated day starts), else the mean rate."""
    t = spec.traffic
    if t.pattern == "daily":
        return t.rps * max(daily_shape(t.peak_to_mean))
    return t.rps


def _weight_load_s(spec: WorkloadSpec, choice: Candidate, catalog: HardwareCatalog,
                   options: SimulateOptions) -> float:
    if options.weight_load_s is not None:
        return options.weight_load_s
    weights = int(choice.detail("weights_bytes") or 0) * choice.tp * choice.pp
    return read_seconds(find_storage(load_storage(), "s3"), weights,
                        find_instance(catalog, choice.instance_type))


def _fleet(spec: WorkloadSpec, choice: Candidate, catalog: HardwareCatalog,
           options: SimulateOptions) -> tuple[FleetConfig, tuple[tuple[str, float], ...]]:
    inst = find_instance(catalog, choice.instance_type)
    devices = choice.tp * choice.pp
    per_node = max(1, inst.accelerator_count // devices)
    instances = max(1, math.ceil(devices / max(inst.accelerator_count, 1)))
    low = int(choice.detail("replicas_min") or 1)
    peak = int(choice.detail("replicas_peak") or choice.dp)
    rps = float(choice.detail("requests_per_s_per_replica") or 0)
    start = min(peak, max(low, math.ceil(_start_rate(spec) / rps) if rps > 0 else peak))
    kind = "off" if options.replicas is not None else options.autoscale
    if kind == "off":
        start = low = peak = options.replicas or peak
    elif kind == "keda":
        low = 0
    pull, warmup = cold_start_seconds()
    node = node_provisioning_seconds()
    load = _weight_load_s(spec, choice, catalog, options)
    spot = spec.constraints.capacity_type == "spot"
    price = choice.usd_per_hour / choice.nodes if choice.usd_per_hour and choice.nodes else None
    fleet = FleetConfig(
        autoscaler=kind, initial_replicas=start, min_replicas=low, max_replicas=peak,
        target_per_replica=float(choice.detail("batch") or 1), replicas_per_node=per_node,
        instances_per_node=instances, node_provisioning_s=node, image_pull_s=pull,
        load_s=load + warmup, instance_usd_per_hour=price,
        spot_interruptions_per_instance_hour=(
            interruption_rate_per_hour(choice.instance_type) if spot else 0.0),
        spot_notice_s=SPOT_NOTICE_S,
        crashes_per_replica_hour=failure_rate() * devices / HOURS_PER_DAY)
    parts = (("node_provisioning_s", node), ("image_pull_s", pull),
             ("weight_load_s", round(load, 1)), ("engine_warmup_s", warmup))
    return fleet, parts


def simulate_plan(spec: WorkloadSpec, choice: Candidate, catalog: HardwareCatalog,
                  options: SimulateOptions,
                  progress: Callable[[float], None] | None = None) -> Simulation:
    """Simulate ``choice`` (a serving candidate of ``spec``'s plan) under the spec's traffic."""
    _check(spec, options)
    est = _estimate(spec, choice, catalog)
    if est.kv is None or est.speed.serving is None:
        raise InputError(f"No serving estimate for {choice.label}.")
    t = spec.tokens
    budget, budget_source = token_budget(spec, options, choice.accelerator)
    limits = EngineLimits(
        max_num_seqs=choice.concurrency(est.speed.serving.batch),
        max_num_batched_tokens=budget, kv_blocks=est.kv.blocks, block_size=est.kv.block_size)
    fleet, parts = _fleet(spec, choice, catalog, options)
    s = spec.slo
    cfg = SimConfig(options.duration_s, fleet.initial_replicas, limits, options.routing,
                    options.seed, options.queue_cap, Slos(s.ttft_p95, s.tpot_p95, s.e2e_p95),
                    fleet)
    traffic, words = traffic_for(spec, options.trace)
    model = estimator_step_model(est, catalog, (t.input_mean, t.output_mean))
    lengths = (_lengths(t.input_mean, t.input_high), _lengths(t.output_mean, t.output_high))
    result = simulate_replicas(cfg, model, traffic, lengths, progress)
    return Simulation(spec.model, choice, words, limits, est.speed.serving.tpot_s, result,
                      budget_source, parts)
