"""Where requests come from: arrival processes and token-length distributions.

    Poisson(rps)                               exponential gaps
    Bursty(rps, peak_to_mean, burst_s)         2-state Markov-modulated Poisson process
    Daily(rps, peak_to_mean, start_hour)       the planner's hourly shape (search/serving.py)
    Trace(rows)                                replayed (timestamp_s, input, output) rows
    Fixed(n), Uniform(low, high), Exponential(mean), LogNormal.fit(mean, p95)

Every draw comes from a ``random.Random`` the caller seeds, so a seed fixes the whole stream.
Arrival processes yield ``(time_s, input_tokens, output_tokens)`` lazily: memory stays flat for
any duration.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from eksplain.errors import InputError
from eksplain.search.serving import daily_shape

__all__ = [
    "Arrival", "ArrivalProcess", "Bursty", "Daily", "Exponential", "Fixed", "LengthDist",
    "LogNormal", "Poisson", "Trace", "Uniform", "parse_trace",
]

Z_95 = 1.6448536269514722  # standard normal 95th percentile
SECONDS_PER_HOUR = 3600.0
HOURS_PER_DAY = 24

Arrival = tuple[float, int, int]  # (time_s, input_tokens, output_tokens)


class LengthDist(Protocol):
    def draw(self, rng: random.Random) -> int: ...


@dataclass(frozen=True)
class Fixed:
    tokens: int

    def draw(self, rng: random.Random) -> int:
        return self.tokens


@dataclass(frozen=True)
class Uniform:
    low: int
    high: int

    def draw(self, rng: random.Random) -> int:
        return rng.randint(self.low, self.high)


@dataclass(frozen=True)
class Exponential:
    """Exponential with the given mean, rounded to whole tokens (at least 1)."""

    mean: float

    def draw(self, rng: random.Random) -> int:
        return max(1, round(rng.expovariate(1 / self.mean)))


@dataclass(frozen=True)
class LogNormal:
    """Lognormal token counts, rounded (at least 1).

    ``fit(mean, p95)``: mean = exp(mu + sigma^2 / 2) and p95 = exp(mu + z sigma), z = 1.645.
    Subtracting the logs, sigma^2 / 2 - z sigma + (ln p95 - ln mean) = 0, so
    sigma = z - sqrt(z^2 - 2 (ln p95 - ln mean)) (the smaller root, the one that keeps the
    mean above the median), and mu = ln mean - sigma^2 / 2. A real root needs
    ln(p95 / mean) <= z^2 / 2, i.e. p95 at most 3.87 x the mean; p95 = mean gives sigma = 0.
    """

    mu: float
    sigma: float

    @classmethod
    def fit(cls, mean: float, p95: float) -> LogNormal:
        gap = math.log(p95) - math.log(mean)
        if mean <= 0 or gap < 0 or gap > Z_95**2 / 2:
            raise InputError(f"No lognormal has mean {mean:g} and p95 {p95:g}.",
                             hint=f"give a p95 between the mean and "
                                  f"{math.exp(Z_95**2 / 2):.2f} x the mean")
        sigma = Z_95 - math.sqrt(Z_95**2 - 2 * gap)
        return cls(math.log(mean) - sigma**2 / 2, sigma)

    def draw(self, rng: random.Random) -> int:
        return max(1, round(rng.lognormvariate(self.mu, self.sigma)))


class ArrivalProcess(Protocol):
    def arrivals(self, rng: random.Random, lengths: tuple[LengthDist, LengthDist],
                 ) -> Iterator[Arrival]: ...


def _with_lengths(times: Iterator[float], rng: random.Random,
                  lengths: tuple[LengthDist, LengthDist]) -> Iterator[Arrival]:
    prompt, output = lengths
    for t in times:
        yield t, prompt.draw(rng), output.draw(rng)


@dataclass(frozen=True)
class Poisson:
    rps: float

    def arrivals(self, rng: random.Random, lengths: tuple[LengthDist, LengthDist],
                 ) -> Iterator[Arrival]:
        def times() -> Iterator[float]:
            t = 0.0
            while True:
                t += rng.expovariate(self.rps)
                yield t
        return _with_lengths(times(), rng, lengths)


@dataclass(frozen=True)
class Bursty:
    """A 2-state Markov-modulated Poisson process: bursts at ``peak_to_mean`` x the mean rate
    lasting ``burst_s`` on average (exponential), calm spells in between at the rate that
    keeps the long-run mean. Bursts take a share q = ``burst_share`` of the time, so the calm
    rate is (1 - q p) / (1 - q) x the mean, which needs q <= 1 / p."""

    rps: float
    peak_to_mean: float = 3.0
    burst_s: float = 60.0
    burst_share: float = 0.1

    def rates_rps(self) -> tuple[float, float]:
        q, p = self.burst_share, self.peak_to_mean
        if not 0 < q < 1 or q * p > 1:
            raise InputError(f"Bursts {p:g} x the mean for {q:.0%} of the time carry more than "
                             "all the traffic.", hint="lower burst_share or peak_to_mean")
        return self.rps * p, self.rps * (1 - q * p) / (1 - q)

    def arrivals(self, rng: random.Random, lengths: tuple[LengthDist, LengthDist],
                 ) -> Iterator[Arrival]:
        high, low = self.rates_rps()
        calm_s = self.burst_s * (1 - self.burst_share) / self.burst_share

        def times() -> Iterator[float]:
            t, bursting = 0.0, False
            switch = rng.expovariate(1 / calm_s)
            while True:
                rate = high if bursting else low
                gap = rng.expovariate(rate) if rate > 0 else math.inf
                if t + gap < switch:
                    t += gap
                    yield t
                    continue
                # Memoryless: restart the draw from the switch at the other state's rate.
                t, bursting = switch, not bursting
                switch = t + rng.expovariate(1 / (self.burst_s if bursting else calm_s))
        return _with_lengths(times(), rng, lengths)


@dataclass(frozen=True)
class Daily:
    """The planner's daily pattern: the mean rate times the hourly multiplier of
    ``search.serving.daily_shape`` (the same curve that sizes the fleet), constant within each
    hour; the run starts at ``start_hour`` of the day."""

    rps: float
    peak_to_mean: float
    start_hour: int = 0

    def hourly_rps(self) -> list[float]:
        return [self.rps * m for m in daily_shape(self.peak_to_mean)]

    def arrivals(self, rng: random.Random, lengths: tuple[LengthDist, LengthDist],
                 ) -> Iterator[Arrival]:
        hourly = self.hourly_rps()

        def times() -> Iterator[float]:
            t = 0.0
            while True:
                hour = int(t // SECONDS_PER_HOUR)
                end = (hour + 1) * SECONDS_PER_HOUR
                rate = hourly[(hour + self.start_hour) % HOURS_PER_DAY]
                gap = rng.expovariate(rate) if rate > 0 else math.inf
                if t + gap < end:
                    t += gap
                    yield t
                else:  # memoryless: restart at the hour's boundary with its rate
                    t = end
        return _with_lengths(times(), rng, lengths)


@dataclass(frozen=True)
class Trace:
    """Replayed requests, their lengths from the trace (the length distributions are unused)."""

    rows: tuple[Arrival, ...]

    def arrivals(self, rng: random.Random, lengths: tuple[LengthDist, LengthDist],
                 ) -> Iterator[Arrival]:
        return iter(self.rows)


TRACE_COLUMNS = ("timestamp_s", "input_tokens", "output_tokens")


def _number(text: str, column: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"{where}: {column} {text!r} is not a number.") from None
    if not math.isfinite(value) or value < 0:
        raise InputError(f"{where}: {column} {text!r} is negative or not finite.")
    return value


def _tokens(text: str, column: str, where: str) -> int:
    value = _number(text, column, where)
    if value != int(value):
        raise InputError(f"{where}: {column} {text!r} is not a whole number of tokens.")
    return int(value)


def parse_trace(lines: Sequence[str], name: str) -> Trace:
    """Rows of a CSV trace with the header timestamp_s,input_tokens,output_tokens (any order,
    other columns ignored); timestamps in seconds from the start, sorted, not negative."""
    if not lines or not lines[0].strip():
        raise InputError(f"The trace {name} is empty.",
                         hint=f"the first line names the columns {', '.join(TRACE_COLUMNS)}")
    header = [c.strip() for c in lines[0].split(",")]
    missing = [c for c in TRACE_COLUMNS if c not in header]
    if missing:
        raise InputError(f"{name}:1: the trace has no column {', '.join(missing)}.",
                         hint=f"the header needs {', '.join(TRACE_COLUMNS)}")
    index = [header.index(c) for c in TRACE_COLUMNS]
    rows: list[Arrival] = []
    last = 0.0
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        cells = [c.strip() for c in line.split(",")]
        where = f"{name}:{number}"
        if len(cells) < len(header):
            raise InputError(f"{where}: {len(cells)} values for {len(header)} columns.")
        t = _number(cells[index[0]], "timestamp_s", where)
        if t < last:
            raise InputError(f"{where}: timestamp_s {t:g} comes before the previous row's "
                             f"{last:g}.", hint="sort the trace by timestamp_s")
        prompt = _tokens(cells[index[1]], "input_tokens", where)
        output = _tokens(cells[index[2]], "output_tokens", where)
        if output < 1:
            raise InputError(f"{where}: output_tokens is 0; a generation request makes at "
                             "least one token.")
        rows.append((t, max(prompt, 1), output))
        last = t
    return Trace(tuple(rows))
