"""Speed of the simulator: one hour at 50 requests/s over the replicas the plan needs.

    python bench/bench_sim.py [--replicas N] [--profile]

Target (issue 7): one hour of traffic at 50 requests/s (180,000 requests, mean 256 output
tokens) in under 10 s wall on one core. Prints wall time and simulated requests per wall
second. The replica count is the plan's peak, or ``--replicas`` (fixed: autoscaling is not
simulated yet).
"""

from __future__ import annotations

import cProfile
import pstats
import sys
import time

from eksplain import api

SPEC = {
    "model": "meta-llama/Llama-3.1-8B", "task": "inference", "precision": ["bf16", "fp8"],
    "tokens": {"input_mean": 1024, "input_p95": 2048, "output_mean": 256, "output_p95": 512},
    "traffic": {"rps": 50, "peak_to_mean": 1.0, "pattern": "flat"},
    "slo": {"ttft_p95": "500ms", "tpot_p95": "50ms"},
}


def main() -> None:
    spec = api.spec_from_dict(SPEC, "bench spec")
    replicas = int(sys.argv[sys.argv.index("--replicas") + 1]) if "--replicas" in sys.argv else None
    options = api.SimulateOptions(duration_s=3600.0, seed=0, replicas=replicas)
    api.simulate(spec, api.SimulateOptions(duration_s=1.0))  # warm the plan's caches
    profiler = cProfile.Profile() if "--profile" in sys.argv else None
    start = time.perf_counter()
    if profiler:
        profiler.enable()
    sim = api.simulate(spec, options)
    if profiler:
        profiler.disable()
    wall = time.perf_counter() - start
    r = sim.result
    print(f"{sim.choice.label}, {r.config.replicas} replicas, {r.simulated_s:,.0f} s simulated")
    print(f"{r.arrived:,} requests arrived, {r.completed:,} completed, "
          f"{r.preemptions:,} preemptions, TPOT mean {r.tpot.mean_s * 1000:.1f} ms")
    print(f"wall {wall:.2f} s, {r.arrived / wall:,.0f} simulated requests per wall second "
          f"(target: under 10 s)")
    if profiler:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(15)


if __name__ == "__main__":
    main()
