"""Speed of `eksplain explain`: every term from the shell, slowest first.

    python bench/bench_explain.py

Target (issue "eksplain explain"): under 0.5 s wall from the shell for any term.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from eksplain.explain import glossary


def main() -> None:
    cli = str(Path(sys.executable).with_name("eksplain"))
    times = []
    for entry in glossary():
        start = time.perf_counter()
        subprocess.run([cli, "explain", entry.key], check=True, capture_output=True)
        times.append((time.perf_counter() - start, entry.key))
    times.sort(reverse=True)
    for seconds, key in times[:5]:
        print(f"{key:28s} {seconds:5.2f} s")
    median = times[len(times) // 2][0]
    print(f"{len(times)} terms: median {median:.2f} s, slowest {times[0][0]:.2f} s "
          "(target < 0.5 s)")


if __name__ == "__main__":
    main()
