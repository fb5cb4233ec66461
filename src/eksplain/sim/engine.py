"""The event loop: arrivals, routing across replicas, replica runs, and the tally.

Events are ``(time_s, seq, kind, target, version)`` on one heap; ``seq`` breaks ties in the
order events were scheduled, so a seed fixes the whole history. ``target`` is a replica or a
node; an event whose ``version`` no longer matches its target's is stale (a run cut short, a
replica lost, a node that took a replica after its release was planned) and is skipped.

Without a ``FleetConfig`` the replicas are a fixed set that serve from time 0 (the theory
tests). With one, ``fleetsim`` adds nodes, cold starts, the autoscaler and faults.
"""

from __future__ import annotations

import heapq
import random
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from eksplain.errors import InputError, suggest
from eksplain.sim.fleet import FleetConfig, FleetResult
from eksplain.sim.metrics import Histogram, LatencySummary, MinuteSample
from eksplain.sim.replica import DRAINING, READY, EngineLimits, Replica, Seq
from eksplain.sim.steps import StepModel
from eksplain.sim.traffic import Arrival, ArrivalProcess, LengthDist

__all__ = ["ROUTING", "SimConfig", "SimResult", "Slos", "simulate_replicas"]

ROUTING = ("round-robin", "least-outstanding", "central-queue")
# Event kinds. The fleet's (``fleetsim``): a scrape of the metric, an HPA sync, a KEDA poll, a
# replica ready, a spot notice, a node gone, a replica crash, a node release.
ARRIVAL, RUN_END, STOP, SCRAPE, SYNC, POLL, READY_AT, NOTICE, NODE_GONE, CRASH, RELEASE = range(11)
MINUTE_S = 60.0
CAP_CHECK = 64


@dataclass(frozen=True)
class Slos:
    ttft_s: float | None = None
    tpot_s: float | None = None
    e2e_s: float | None = None


@dataclass(frozen=True)
class SimConfig:
    """One scenario. ``routing``: round-robin, least-outstanding (fewest requests waiting or
    running, lowest index on ties), or central-queue (requests wait at the router until a
    replica runs fewer than max_num_seqs: one queue for all, an M/M/c system). ``replicas``:
    the fixed count without ``fleet``; with it, ``fleet.initial_replicas`` start the run."""

    duration_s: float
    replicas: int
    limits: EngineLimits
    routing: str = "least-outstanding"
    seed: int = 0
    queue_cap: int = 100_000  # waiting requests at which the run stops: the load is unservable
    slos: Slos = Slos()
    fleet: FleetConfig | None = None


@dataclass(frozen=True)
class SimResult:
    config: SimConfig
    simulated_s: float  # less than the duration when the queue hit its cap
    arrived: int
    completed: int
    failed: int  # longer than the KV cache can ever hold, or lost more often than retried
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
    fleet: FleetResult | None = None

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


class Sim:
    """The state of one run; ``run`` is the loop, one small method per event. Requests that
    find no serving replica wait at the router (as the gateway or KEDA's interceptor holds
    them) and go out when one is ready."""

    def __init__(self, cfg: SimConfig, model: StepModel, arrivals: Iterator[Arrival],
                 progress: Callable[[float], None] | None) -> None:
        self.cfg = cfg
        self.model = model
        self.replicas: list[Replica] = []
        self.live: list[int] = []  # replicas not GONE
        self.ready: list[int] = []  # replicas READY (the router's choices), in index order
        self.held: list[int] = []  # requests each replica holds (its ``outstanding``)
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
        self.desired = cfg.replicas
        if cfg.routing not in ROUTING:
            raise InputError(f"Unknown routing {cfg.routing!r}.",
                             suggestions=suggest(cfg.routing, ROUTING))

    def push(self, time_s: float, kind: int, target: int = -1, version: int = 0) -> None:
        heapq.heappush(self.heap, (time_s, self.seq, kind, target, version))
        self.seq += 1

    def start(self) -> None:
        for _ in range(self.cfg.replicas):
            self.add_replica(Replica(self.cfg.limits, self.model))

    def add_replica(self, replica: Replica) -> int:
        index = len(self.replicas)
        self.replicas.append(replica)
        self.held.append(0)
        self.live.append(index)
        if replica.state == READY:
            self.ready.append(index)
        return index

    def run(self) -> None:
        self.start()
        self.push(self.cfg.duration_s, STOP)
        self._next_arrival()
        while self.heap:
            time_s, _, kind, target, version = heapq.heappop(self.heap)
            self._sample_until(time_s)
            self.now = time_s
            if kind == STOP:
                return
            if kind == RUN_END:
                if version == self.replicas[target].version:
                    self._run_end(target)
            elif kind == ARRIVAL:
                self._arrive()
                # Only arrivals add to the queues (a preemption moves a running sequence back);
                # checked every CAP_CHECK arrivals: the cap guards memory, not a latency.
                if self.arrived % CAP_CHECK == 0 and self._waiting() > self.cfg.queue_cap:
                    self._stop_unbounded(time_s)
                    return
            else:
                self.fleet_event(kind, target, version)

    def fleet_event(self, kind: int, target: int, version: int) -> None:
        """Events of the fleet: none without one (``fleetsim.FleetSim`` handles them)."""

    def _stop_unbounded(self, time_s: float) -> None:
        self.stopped = (f"the queue grew without bound: more than {self.cfg.queue_cap:,}"
                        f" requests waiting at {time_s:,.0f} s; {len(self.ready)} serving "
                        "replicas cannot serve this traffic")

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
        if not _fits(self.cfg.limits, seq):
            self.tally.failed += 1
        else:
            self.to_router(seq)
        self._next_arrival()

    def to_router(self, seq: Seq) -> None:
        """Send ``seq`` to a replica, or hold it at the router (central queue; no replica
        serving)."""
        if self.cfg.routing == "central-queue" or not self.ready:
            self.router.append(seq)
            self.dispatch()
        else:
            self._enqueue(self._route(), seq)

    def _route(self) -> int:
        if self.cfg.routing == "round-robin":
            self.turn = (self.turn + 1) % len(self.ready)
            return self.ready[self.turn]
        # The fewest requests held; ``ready`` is in index order, so ties go to the lowest.
        return min(self.ready, key=self.held.__getitem__)

    def dispatch(self) -> None:
        """Requests held at the router to serving replicas: with a central queue, while one
        runs fewer than max_num_seqs; otherwise all of them, as soon as one serves."""
        limit = self.cfg.limits.max_num_seqs
        while self.router and self.ready:
            index = self._route()
            if self.cfg.routing == "central-queue" and self.replicas[index].outstanding >= limit:
                return
            self._enqueue(index, self.router.popleft())

    def _enqueue(self, index: int, seq: Seq) -> None:
        replica = self.replicas[index]
        replica.waiting.append(seq)
        self.held[index] += 1
        if replica.run is None:
            self._start_run(index)
        elif len(replica.running) < self.cfg.limits.max_num_seqs:
            end = replica.cut(self.now)  # admit it at the next step boundary
            if end is not None:
                self.push(end, RUN_END, index, replica.version)

    def _start_run(self, index: int) -> None:
        replica = self.replicas[index]
        replica.run = replica.plan(self.now)
        if replica.run is not None:
            run = replica.run
            self.push(run.start_s + run.steps * run.step_s, RUN_END, index, replica.version)

    def _run_end(self, index: int) -> None:
        replica = self.replicas[index]
        replica.busy_s += self.now - replica.run.start_s if replica.run else 0.0
        done = replica.finish(self.now)
        self.held[index] -= len(done)
        for seq in done:
            self.tally.complete(seq, self.now)
            self.minute_completed += 1
            self.minute_ttft.add(seq.first_token_s - seq.arrival_s)
            if seq.output > 1:
                self.minute_tpot.add((self.now - seq.first_token_s) / (seq.output - 1))
        if self.router and self.cfg.routing == "central-queue":
            self.dispatch()  # may start this replica's next run already
        if replica.run is None:
            self._start_run(index)
        if replica.state == DRAINING and replica.run is None:
            self.drained(index)

    def drained(self, index: int) -> None:
        """A draining replica finished its last request (``fleetsim`` retires it)."""

    def _waiting(self) -> int:
        return len(self.router) + sum(len(self.replicas[i].waiting) for i in self.live)

    def _sample_until(self, time_s: float) -> None:
        while (len(self.timeline) + 1) * MINUTE_S <= min(time_s, self.cfg.duration_s):
            live = [self.replicas[i] for i in self.live]
            self.timeline.append(MinuteSample(
                len(self.timeline) + 1, self._waiting(), sum(len(r.running) for r in live),
                len(live), self.minute_completed, self.minute_arrived, len(self.ready),
                self.minute_ttft.percentile(95), self.minute_tpot.percentile(95),
                self.desired, self.nodes_held()))
            self.minute_completed = self.minute_arrived = 0
            self.minute_ttft, self.minute_tpot = Histogram(), Histogram()
            if self.progress is not None:
                self.progress(len(self.timeline) * MINUTE_S)

    def nodes_held(self) -> int:
        return 0

    def fleet_result(self) -> FleetResult | None:
        return None

    def result(self) -> SimResult:
        t = self.tally
        in_flight = len(self.router) + sum(self.replicas[i].outstanding for i in self.live)
        return SimResult(
            config=self.cfg, simulated_s=self.now, arrived=self.arrived,
            completed=t.e2e.count, failed=t.failed, in_flight=in_flight,
            preemptions=sum(r.preemptions for r in self.replicas),
            output_tokens=t.output_tokens, queue_wait=t.wait.summary(),
            ttft=t.ttft.summary(), tpot=t.tpot.summary(), e2e=t.e2e.summary(),
            slo_attainment=t.attainment(), timeline=tuple(self.timeline), stopped=self.stopped,
            fleet=self.fleet_result(),
        )


def _fits(limits: EngineLimits, seq: Seq) -> bool:
    """Whether the whole request fits the KV cache of an otherwise empty engine."""
    return -(-(seq.prompt + seq.output) // limits.block_size) <= limits.kv_blocks


def simulate_replicas(cfg: SimConfig, model: StepModel, traffic: ArrivalProcess,
                      lengths: tuple[LengthDist, LengthDist],
                      progress: Callable[[float], None] | None = None) -> SimResult:
    """Run ``cfg`` with step times from ``model``; ``progress`` hears simulated seconds done
    once a simulated minute. The seed feeds one ``random.Random`` for arrivals and lengths, and
    (with a fleet) a second one for faults, so faults do not change the arrivals."""
    rng = random.Random(cfg.seed)
    arrivals = traffic.arrivals(rng, lengths)
    if cfg.fleet is None:
        sim = Sim(cfg, model, arrivals, progress)
    else:
        from eksplain.sim.fleetsim import FleetSim
        sim = FleetSim(cfg, model, arrivals, progress)
    sim.run()
    return sim.result()
