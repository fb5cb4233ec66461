"""Speed of the speed model: one serving and one training configuration in the library.

    python bench/bench_speed.py

Target (issue "Speed and cost"): under 1 ms per configuration, so a planner can afford tens of
thousands of them. Times include building the per-device shape (weights, KV bytes).
"""

from __future__ import annotations

import time

from eksplain.calibration import load_calibration
from eksplain.catalog import find_model, load_models
from eksplain.comms import intra_node_link
from eksplain.compute import TrainingSetup, rates, serving_shape, serving_speed, training_speed
from eksplain.hardware import find_accelerator, load_catalog
from eksplain.memory import kv_bytes_per_token, weight_bytes
from eksplain.parallel import Parallelism

RUNS = 2000


def main() -> None:
    cal, catalog = load_calibration(), load_catalog()
    model = find_model(load_models(), "llama-3.1-70b").model
    acc = find_accelerator(catalog, "h100")
    par = Parallelism(tp=8)
    link = intra_node_link(acc, cal.links)
    r, eff = rates(acc, "bf16"), cal.speed.serving_for(acc.architecture)

    start = time.perf_counter()
    for _ in range(RUNS):
        shape = serving_shape(model, weight_bytes(model, cal.format("bf16"), par),
                              kv_bytes_per_token(model.architecture, 16, par), par, False)
        serving_speed(model, shape, r, eff, (64, 1024, 256), par, link)
    serving_ms = (time.perf_counter() - start) / RUNS * 1000

    setup = TrainingSetup(8192, 1, 16, Parallelism(tp=8, dp=8), "full", True, 1.0, link, None, 8)
    train_eff = cal.speed.training_efficiency(acc.architecture, model.architecture.hidden_size,
                                              "bf16")
    start = time.perf_counter()
    for _ in range(RUNS):
        training_speed(model, setup, r, train_eff, cal.speed.dp_overlap)
    training_ms = (time.perf_counter() - start) / RUNS * 1000
    print(f"serving speed, Llama-3.1-70B TP=8 on H100, batch 64: {serving_ms:.3f} ms per "
          "configuration (target < 1 ms)")
    print(f"training speed, Llama-3.1-70B TP=8 DP=8: {training_ms:.3f} ms per configuration "
          "(target < 1 ms)")


if __name__ == "__main__":
    main()
