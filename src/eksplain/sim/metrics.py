"""What a simulation measures, in memory that does not grow with the number of requests.

Latencies go into fixed log-spaced histograms (``BINS_PER_DECADE`` bins a decade from 0.1 ms
to 10^5 s): a percentile is the upper edge of its bin, at most 10^(1/BINS_PER_DECADE) - 1 =
1.2% above the true value; means and maxima are exact. Time series hold one sample a simulated
minute.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["ATTAINMENT_FOR_P95", "BINS_PER_DECADE", "Histogram", "LatencySummary", "MinuteSample"]

BINS_PER_DECADE = 200
ATTAINMENT_FOR_P95 = 0.95  # a p95 target holds when 95% of requests are within it
LOW_S = 1e-4
DECADES = 9
PERCENTILES = (50, 90, 99)
LAST_BIN = BINS_PER_DECADE * DECADES + 1  # the overflow bin


class Histogram:
    """Counts of values in log-spaced bins, with the exact count, sum and maximum."""

    __slots__ = ("count", "counts", "max", "total")

    def __init__(self) -> None:
        self.counts = [0] * (BINS_PER_DECADE * DECADES + 2)  # + under- and overflow
        self.count = 0
        self.total = 0.0
        self.max = 0.0

    def add(self, value: float) -> None:
        # Written for speed (several calls per simulated request): same bins as
        # min(last, 1 + int(log10(value / LOW_S) x BINS_PER_DECADE)).
        self.count += 1
        self.total += value
        if value > self.max:  # noqa: PLR1730 - a comparison is cheaper than a max() call
            self.max = value
        if value < LOW_S:
            self.counts[0] += 1
            return
        index = 1 + int(math.log10(value / LOW_S) * BINS_PER_DECADE)
        self.counts[index if index < LAST_BIN else LAST_BIN] += 1

    def percentile(self, p: float) -> float:
        """The upper edge of the bin holding the p-th percentile (capped at the maximum)."""
        if self.count == 0:
            return 0.0
        rank = math.ceil(p / 100 * self.count)
        seen = 0
        for index, n in enumerate(self.counts):
            seen += n
            if seen >= rank:
                return min(self.max, LOW_S * 10 ** (index / BINS_PER_DECADE))
        return self.max  # pragma: no cover - the counts add up to count

    def summary(self) -> LatencySummary:
        mean = self.total / self.count if self.count else 0.0
        p50, p90, p99 = (self.percentile(p) for p in PERCENTILES)
        return LatencySummary(self.count, mean, p50, p90, p99, self.max)


@dataclass(frozen=True)
class LatencySummary:
    count: int
    mean_s: float
    p50_s: float
    p90_s: float
    p99_s: float
    max_s: float


@dataclass(frozen=True)
class MinuteSample:
    minute: int  # the sample at the end of this minute (1 = 60 s in)
    waiting: int  # requests queued (at the router and in the replicas' engines)
    running: int  # sequences in the replicas' batches
    replicas: int  # replicas that exist (starting or serving)
    completed: int  # completed during the minute
    arrived: int  # arrivals during the minute
    ready: int  # replicas serving (a starting replica does not serve)
    ttft_p95_s: float  # of the requests completed during the minute; 0 when none
    tpot_p95_s: float  # of those with two or more output tokens; 0 when none
    desired: int  # replicas the autoscaler asks for (the workload's spec.replicas)
    nodes: int  # instances held (launching or running; billed)
