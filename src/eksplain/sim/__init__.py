"""Discrete-event simulation of a serving fleet under load (``eksplain simulate``).

    traffic   arrival processes (Poisson, bursty, daily, trace) and token-length distributions
    steps     StepModel: the one interface to step times (estimator-backed, or a test double)
    replica   one engine's continuous batching: token budget, chunked prefill, KV blocks,
              preemption by recompute, max_num_seqs
    engine    the event loop, routing across a fixed number of replicas, the tally
    metrics   fixed log-spaced histograms and per-minute samples (memory does not grow)

Deterministic for a seed: one seeded ``random.Random``, an explicit clock, events ordered by
(time, sequence number). Autoscaling, cold starts and faults are not simulated yet.
"""

from eksplain.sim.engine import ROUTING, SimConfig, SimResult, Slos, simulate_replicas
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
    "ROUTING", "Bursty", "Daily", "EngineLimits", "EstimatorStepModel", "Exponential", "Fixed",
    "LatencySummary", "LinearStepModel", "LogNormal", "MinuteSample", "Poisson", "SimConfig",
    "SimResult", "Slos", "StepModel", "Trace", "Uniform", "estimator_step_model", "parse_trace",
    "simulate_replicas",
]
