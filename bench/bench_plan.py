"""Speed of `eksplain plan`: every example, from the shell, and candidates evaluated per second.

    python bench/bench_plan.py

Target (issue "eksplain plan"): under 1 s wall from the shell for any example over the whole
catalogue.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from eksplain import api

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    cli = str(Path(sys.executable).with_name("eksplain"))
    worst = 0.0
    for path in sorted((ROOT / "examples").glob("*.yaml")):
        start = time.perf_counter()
        done = subprocess.run([cli, "plan", str(path), "--json"], check=False,
                              capture_output=True)
        shell = time.perf_counter() - start
        if done.returncode:  # the spot example needs a price file: eksplain bundles none
            print(f"{path.name:36s} shell {shell:5.2f} s, infeasible without a price file")
            continue
        spec = api.load_spec(path)
        api.plan(spec)  # warm the caches
        start = time.perf_counter()
        result = api.plan(spec)
        library = time.perf_counter() - start
        worst = max(worst, shell)
        print(f"{path.name:36s} shell {shell:5.2f} s, library {library:5.3f} s, "
              f"{result.evaluated:5d} candidates, {result.evaluated / library:8,.0f} per second")
    print(f"slowest from the shell: {worst:.2f} s (target < 1 s)")


if __name__ == "__main__":
    main()
