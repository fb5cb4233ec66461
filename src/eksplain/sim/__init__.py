"""Discrete-event simulation of a serving fleet under load (``eksplain simulate``).

    traffic   arrival processes (Poisson, bursty, daily, trace) and token-length distributions
    steps     StepModel: the one interface to step times (estimator-backed, or a test double)
    replica   one engine's continuous batching: token budget, chunked prefill, KV blocks,
              preemption by recompute, max_num_seqs
    engine    the event loop, routing across the serving replicas, the tally
    fleet     nodes, placement, cold starts and cost (FleetConfig, FleetResult)
    fleetsim  the loop with a fleet: scrapes, the autoscaler, spot notices, crashes, retries
    autoscale the HPA's sync (windows, policies) and KEDA's activation and scale to zero
    metrics   fixed log-spaced histograms and per-minute samples (memory does not grow)

Deterministic for a seed: seeded ``random.Random`` generators (arrivals; faults), an explicit
clock, events ordered by (time, sequence number).
"""

from eksplain.sim.engine import ROUTING, SimConfig, SimResult, Slos, simulate_replicas
from eksplain.sim.fleet import AUTOSCALERS, FleetConfig, FleetResult, ScaleEvent
from eksplain.sim.metrics import LatencySummary, MinuteSample
from eksplain.sim.replica import EngineLimits
from eksplain.sim.steps import (
    EstimatorStepModel,
    LinearStepModel,
    StepModel,
    estimator_step_model,
)
from eksplain.sim.traffic import (
    Bursty,
    Daily,
    Exponential,
    Fixed,
    LogNormal,
    Poisson,
    Trace,
    Uniform,
    parse_trace,
)

__all__ = [
    "AUTOSCALERS", "ROUTING", "Bursty", "Daily", "EngineLimits", "EstimatorStepModel",
    "Exponential", "Fixed", "FleetConfig", "FleetResult", "LatencySummary", "LinearStepModel",
    "LogNormal", "MinuteSample", "Poisson", "ScaleEvent", "SimConfig", "SimResult", "Slos",
    "StepModel", "Trace", "Uniform", "estimator_step_model", "parse_trace", "simulate_replicas",
]
