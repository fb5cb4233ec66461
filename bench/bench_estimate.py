"""Speed of `eksplain estimate`: from the shell (interpreter start included) and in the library.

    python bench/bench_estimate.py

Targets (issue "eksplain estimate"): under 0.5 s from the shell, under 5 ms per library call.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

from eksplain import EstimateRequest, estimate

SHELL = [str(Path(sys.executable).with_name("eksplain")), "estimate", "meta-llama/Llama-3.1-8B",
         "--hardware", "h100", "--batch", "32", "--seq-len", "4096", "--json"]
REQUESTS = [
    EstimateRequest(model="meta-llama/Llama-3.1-8B", hardware="h100", batch=32, seq_len=4096),
    EstimateRequest(model="llama-3.1-70b", hardware="p5.48xlarge", tp=8),
    EstimateRequest(model="deepseek-ai/DeepSeek-V3", hardware="p5e.48xlarge", tp=8),
]
TRAINING = EstimateRequest(model="llama-3.1-8b", hardware="p5.48xlarge", task="training",
                           fsdp="full", batch=2, seq_len=8192)


def shell_seconds(runs: int = 10) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(SHELL, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return times


def library_ms(request: EstimateRequest, runs: int = 200) -> float:
    estimate(request)  # warm the packaged-data caches
    start = time.perf_counter()
    for _ in range(runs):
        estimate(request)
    return (time.perf_counter() - start) / runs * 1000


def main() -> None:
    shell = shell_seconds()
    print(f"shell: median {statistics.median(shell):.3f} s, max {max(shell):.3f} s "
          f"over {len(shell)} runs (target < 0.5 s)")
    for req in REQUESTS:
        print(f"library, serving {req.model} on {req.hardware}: {library_ms(req):.3f} ms "
              f"per call (target < 5 ms)")
    print(f"library, training {TRAINING.model} with max batch/context search: "
          f"{library_ms(TRAINING, 20):.3f} ms per call")


if __name__ == "__main__":
    main()
