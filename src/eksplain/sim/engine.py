"""The event loop: arrivals, routing across replicas, replica runs, and the tally.

Events are ``(time_s, seq, kind, replica, version)`` on one heap; ``seq`` breaks ties in the
order events were scheduled, so a seed fixes the whole history. Three kinds: an arrival, the
end of a replica's run (stale when the replica's version moved on: the run was cut short),
and the end of the simulated time.
"""

from __future__ import annotations

import heapq
import random
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from eksplain.errors import InputError, suggest
from eksplain.sim.metrics import Histogram, LatencySummary, MinuteSample
from eksplain.sim.replica import EngineLimits, Replica, Seq
from eksplain.sim.steps import StepModel
from eksplain.sim.traffic import Arrival, ArrivalProcess, LengthDist

__all__ = ["ROUTING", "SimConfig", "SimResult", "Slos", "simulate_replicas"]

ROUTING = ("round-robin", "least-outstanding", "central-queue")
ARRIVAL, RUN_END, STOP = 0, 1, 2
MINUTE_S = 60.0


@dataclass(frozen=True)
class Slos:
    ttft_s: float | None = None
    tpot_s: float | None = None
    e2e_s: float | None = None


@dataclass(frozen=True)
class SimConfig:
    """One scenario. ``routing``: round-robin, least-outstanding (fewest requests waiting or
    running, lowest index on ties), or central-queue (requests wait at the router until a
    replica runs fewer than max_num_seqs: one queue for all, an M/M/c system)."""

    duration_s: float
    replicas: int
    limits: EngineLimits
    routing: str = "least-outstanding"
    seed: int = 0
    queue_cap: int = 100_000  # waiting requests at which the run stops: the load is unservable
    slos: Slos = Slos()


@dataclass(frozen=True)
class SimResult:
    config: SimConfig
    simulated_s: float  # less than the duration when the queue hit its cap
    arrived: int
    completed: int
    failed: int  # requests longer than the KV cache can ever hold
    in_flight: int  # waiting or running when the run ended
    preemptions: int
    output_tokens: int  # of completed requests
    queue_wait: LatencySummary  # arrival to first admitted into a step
    ttft: LatencySummary
    tpot: LatencySummary  # requests of two or more output tokens
    e2e: LatencySummary
    slo_attainment: tuple[tuple[str, float], ...]  # (ttft / tpot / e2e, share within target)
    timeline: tuple[MinuteSample, ...]
    stopped: str  # why the run ended early; empty when it ran its duration

    @property
    def requests_per_s(self) -> float:
        return self.completed / self.simulated_s if self.simulated_s else 0.0

    @property
    def output_tokens_per_s(self) -> float:
        return self.output_tokens / self.simulated_s if self.simulated_s else 0.0


class _Tally:
    def __init__(self, slos: Slos) -> None:
        self.slos = slos
        self.wait, self.ttft, self.tpot, self.e2e = (Histogram() for _ in range(4))
        self.met = {"ttft": 0, "tpot": 0, "e2e": 0}
        self.output_tokens = 0
        self.failed = 0

    def complete(self, seq: Seq, end_s: float) -> None:
        self.wait.add(seq.started_s - seq.arrival_s)
        ttft = seq.first_token_s - seq.arrival_s
        e2e = end_s - seq.arrival_s
        self.ttft.add(ttft)
        self.e2e.add(e2e)
        self.output_tokens += seq.output
        s = self.slos
        self.met["ttft"] += s.ttft_s is None or ttft <= s.ttft_s
        self.met["e2e"] += s.e2e_s is None or e2e <= s.e2e_s
        if seq.output > 1:
            tpot = (end_s - seq.first_token_s) / (seq.output - 1)
            self.tpot.add(tpot)
            self.met["tpot"] += s.tpot_s is None or tpot <= s.tpot_s

    def attainment(self) -> tuple[tuple[str, float], ...]:
        targets = {"ttft": self.slos.ttft_s, "tpot": self.slos.tpot_s, "e2e": self.slos.e2e_s}
        counts = {"ttft": self.ttft.count, "tpot": self.tpot.count, "e2e": self.e2e.count}
        return tuple((k, self.met[k] / counts[k]) for k in targets
                     if targets[k] is not None and counts[k])


class _Sim:
    """The state of one run; ``run`` is the loop, one small method per event."""

    def __init__(self, cfg: SimConfig, model: StepModel, arrivals: Iterator[Arrival],
                 progress: Callable[[float], None] | None) -> None:
        self.cfg = cfg
        self.replicas = [Replica(cfg.limits, model) for _ in range(cfg.replicas)]
        self.arrivals = arrivals
        self.progress = progress
        self.heap: list[tuple[float, int, int, int, int]] = []
        self.seq = 0
        self.router: deque[Seq] = deque()
        self.turn = 0
        self.arrived = 0
        self.tally = _Tally(cfg.slos)
        self.timeline: list[MinuteSample] = []
        self.minute_completed = 0
        self.minute_arrived = 0
        self.minute_ttft, self.minute_tpot = Histogram(), Histogram()
        self.now = 0.0
        self.stopped = ""
        self.pending: Arrival = (0.0, 0, 0)
        if cfg.routing not in ROUTING:
            raise InputError(f"Unknown routing {cfg.routing!r}.",
                             suggestions=suggest(cfg.routing, ROUTING))

    def push(self, time_s: float, kind: int, replica: int = -1, version: int = 0) -> None:
        heapq.heappush(self.heap, (time_s, self.seq, kind, replica, version))
        self.seq += 1

    def run(self) -> None:
        self.push(self.cfg.duration_s, STOP)
        self._next_arrival()
        while self.heap:
            time_s, _, kind, index, version = heapq.heappop(self.heap)
            self._sample_until(time_s)
            self.now = time_s
            if kind == STOP:
                return
            if kind != ARRIVAL:
                if version == self.replicas[index].version:
                    self._run_end(index)
                continue
            self._arrive()
            # Only arrivals add to the queues (a preemption moves a running sequence back).
            if self._waiting() > self.cfg.queue_cap:
                self.stopped = (f"the queue grew without bound: more than {self.cfg.queue_cap:,}"
                                f" requests waiting at {time_s:,.0f} s; {self.cfg.replicas} "
                                "replicas cannot serve this traffic")
                return

    def _next_arrival(self) -> None:
        nxt = next(self.arrivals, None)
        if nxt is not None and nxt[0] < self.cfg.duration_s:
            self.pending = nxt
            self.push(nxt[0], ARRIVAL)

    def _arrive(self) -> None:
        time_s, prompt, output = self.pending
        self.arrived += 1
        self.minute_arrived += 1
        seq = Seq(self.arrived, time_s, prompt, output)
        if not self.replicas[0].fits_ever(seq):
            self.tally.failed += 1
        elif self.cfg.routing == "central-queue":
            self.router.append(seq)
            self._dispatch()
        else:
            self._enqueue(self._route(), seq)
        self._next_arrival()

    def _route(self) -> int:
        if self.cfg.routing == "round-robin":
            self.turn = (self.turn + 1) % len(self.replicas)
            return self.turn
        return min(range(len(self.replicas)), key=lambda i: self.replicas[i].outstanding)

    def _dispatch(self) -> None:
        limit = self.cfg.limits.max_num_seqs
        while self.router:
            index = self._route()
            if self.replicas[index].outstanding >= limit:
                return
            self._enqueue(index, self.router.popleft())

    def _enqueue(self, index: int, seq: Seq) -> None:
        replica = self.replicas[index]
        replica.waiting.append(seq)
        if replica.run is None:
            self._start(index)
        elif len(replica.running) < self.cfg.limits.max_num_seqs:
            end = replica.cut(self.now)  # admit it at the next step boundary
            if end is not None:
                self.push(end, RUN_END, index, replica.version)

    def _start(self, index: int) -> None:
        replica = self.replicas[index]
        replica.run = replica.plan(self.now)
        if replica.run is not None:
            run = replica.run
            self.push(run.start_s + run.steps * run.step_s, RUN_END, index, replica.version)

    def _run_end(self, index: int) -> None:
        for seq in self.replicas[index].finish(self.now):
            self.tally.complete(seq, self.now)
            self.minute_completed += 1
            self.minute_ttft.add(seq.first_token_s - seq.arrival_s)
            if seq.output > 1:
                self.minute_tpot.add((self.now - seq.first_token_s) / (seq.output - 1))
        if self.router:
            self._dispatch()  # may start this replica's next run already
        if self.replicas[index].run is None:
            self._start(index)

    def _waiting(self) -> int:
        return len(self.router) + sum(len(r.waiting) for r in self.replicas)

    def _sample_until(self, time_s: float) -> None:
        while (len(self.timeline) + 1) * MINUTE_S <= min(time_s, self.cfg.duration_s):
            self.timeline.append(MinuteSample(
                len(self.timeline) + 1, self._waiting(),
                sum(len(r.running) for r in self.replicas), len(self.replicas),
                self.minute_completed, self.minute_arrived, len(self.replicas),
                self.minute_ttft.percentile(95), self.minute_tpot.percentile(95)))
            self.minute_completed = self.minute_arrived = 0
            self.minute_ttft, self.minute_tpot = Histogram(), Histogram()
            if self.progress is not None:
                self.progress(len(self.timeline) * MINUTE_S)

    def result(self) -> SimResult:
        t = self.tally
        in_flight = len(self.router) + sum(r.outstanding for r in self.replicas)
        return SimResult(
            config=self.cfg, simulated_s=self.now, arrived=self.arrived,
            completed=t.e2e.count, failed=t.failed, in_flight=in_flight,
            preemptions=sum(r.preemptions for r in self.replicas),
            output_tokens=t.output_tokens, queue_wait=t.wait.summary(),
            ttft=t.ttft.summary(), tpot=t.tpot.summary(), e2e=t.e2e.summary(),
            slo_attainment=t.attainment(), timeline=tuple(self.timeline), stopped=self.stopped,
        )


def simulate_replicas(cfg: SimConfig, model: StepModel, traffic: ArrivalProcess,
                      lengths: tuple[LengthDist, LengthDist],
                      progress: Callable[[float], None] | None = None) -> SimResult:
    """Run ``cfg`` with step times from ``model``; ``progress`` hears simulated seconds done
    once a simulated minute. The seed feeds one ``random.Random``: arrivals and lengths."""
    rng = random.Random(cfg.seed)
    sim = _Sim(cfg, model, traffic.arrivals(rng, lengths), progress)
    sim.run()
    return sim.result()
