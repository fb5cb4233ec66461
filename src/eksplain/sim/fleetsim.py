"""The simulation with a fleet: nodes, cold starts, the autoscaler and faults (``FleetConfig``).

    scrape     every scrape interval from time 0: Prometheus's copy of the metric (requests
               the serving replicas hold + requests held at the router; starting replicas
               report nothing)
    sync       the HPA every sync period, half a scrape interval after a scrape (the mean lag
               of an unknown phase); KEDA's poll every polling interval, on the same phase
    reconcile  the workload keeps ``desired`` replicas that are starting or serving: it creates
               the missing ones (``fleet`` places them) and removes the extra ones, starting
               replicas first (newest first), then serving ones with the fewest requests, which
               drain: no new requests, they finish what they hold, then go
    spot       each node draws its interruption from an exponential with the rate per
               instance-hour (eksplain.spot) x its instances; at the notice its replicas drain
               and replacements are created at once (elsewhere: the node is cordoned); when
               the node goes, what its replicas still hold is retried at the router, or
               counted failed after ``max_retries`` retries
    crash      each serving replica draws its crash from an exponential (rate per
               replica-hour); what it holds is retried, and a replacement starts
Faults use their own seeded ``random.Random``, so they do not shift the arrivals.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Callable, Iterator

from eksplain.sim.autoscale import Hpa, Keda, MetricSample
from eksplain.sim.engine import (
    CRASH,
    NODE_GONE,
    NOTICE,
    POLL,
    READY_AT,
    RELEASE,
    SCRAPE,
    SYNC,
    Sim,
    SimConfig,
)
from eksplain.sim.fleet import MAX_EVENTS, FleetResult, Node, ScaleEvent
from eksplain.sim.metrics import Histogram
from eksplain.sim.replica import DRAINING, GONE, READY, STARTING, Replica, Seq
from eksplain.sim.steps import StepModel
from eksplain.sim.traffic import Arrival

__all__ = ["FleetSim"]

HOUR_S = 3600.0


class FleetSim(Sim):
    def __init__(self, cfg: SimConfig, model: StepModel, arrivals: Iterator[Arrival],
                 progress: Callable[[float], None] | None) -> None:
        super().__init__(cfg, model, arrivals, progress)
        assert cfg.fleet is not None
        f = self.f = cfg.fleet
        self.faults = random.Random(f"faults-{cfg.seed}")
        self.nodes: list[Node] = []
        self.live_nodes: list[int] = []
        self.desired = f.initial_replicas
        s = f.settings
        self.hpa = (Hpa(s, f.min_replicas, f.max_replicas, f.target_per_replica)
                    if f.autoscaler in ("hpa", "keda") else None)
        self.keda = Keda(s, f.min_replicas) if f.autoscaler == "keda" else None
        self.metric = MetricSample(0.0, 0, 0)
        self.cold = Histogram()
        self.events: list[ScaleEvent] = []
        self.counts = {"up": 0, "down": 0, "spot": 0, "crash": 0, "retries": 0, "lost": 0}
        self.instance_s = 0.0  # of released nodes
        self.serving_s = 0.0  # of retired replicas
        self.busy_s = 0.0
        self.peaks = [0, 0]  # replicas, instances

    # -- start and the periodic controllers ------------------------------------------------

    def start(self) -> None:
        for _ in range(self.f.initial_replicas):
            self._create(at_start=True)
        if self.hpa is None:
            return
        # The fleet ran at its initial size before the run: that is the HPA's recommendation
        # history, so an empty first scrape does not scale a warm fleet down at once.
        self.hpa.recommendations.append((0.0, self.f.initial_replicas))
        s = self.f.settings
        self.push(0.0, SCRAPE)
        self.push(s.scrape_interval_s / 2, SYNC)
        if self.keda is not None:
            self.push(s.scrape_interval_s / 2, POLL)

    def fleet_event(self, kind: int, target: int, version: int) -> None:
        handlers: dict[int, Callable[[int, int], None]] = {
            SCRAPE: self._scrape, SYNC: self._sync, POLL: self._poll, READY_AT: self._ready,
            NOTICE: self._notice, NODE_GONE: self._node_gone, CRASH: self._crash,
            RELEASE: self._release,
        }
        handlers[kind](target, version)

    def _scrape(self, _target: int, _version: int) -> None:
        held = len(self.router) + sum(self.replicas[i].outstanding for i in self.ready)
        starting = sum(self.replicas[i].state == STARTING for i in self.live)
        self.metric = MetricSample(float(held), len(self.ready), starting)
        self.push(self.now + self.f.settings.scrape_interval_s, SCRAPE)

    def _sync(self, _target: int, _version: int) -> None:
        assert self.hpa is not None
        self._set_desired(self.hpa.sync(self.now, self.desired, self.metric))
        self.push(self.now + self.f.settings.sync_period_s, SYNC)

    def _poll(self, _target: int, _version: int) -> None:
        assert self.keda is not None
        self._set_desired(self.keda.poll(self.now, self.desired, self.metric))
        self.push(self.now + self.f.settings.keda_polling_interval_s, POLL)

    def _set_desired(self, new: int) -> None:
        if new != self.desired:
            self.counts["up" if new > self.desired else "down"] += 1
            if len(self.events) < MAX_EVENTS:
                self.events.append(ScaleEvent(round(self.now, 3), self.desired, new))
            self.desired = new
        self._reconcile()

    # -- the workload's replicas -----------------------------------------------------------

    def _reconcile(self) -> None:
        active = [i for i in self.live if self.replicas[i].state in (STARTING, READY)]
        for _ in range(self.desired - len(active)):
            self._create()
        extra = len(active) - self.desired
        if extra <= 0:
            return
        starting = sorted((i for i in active if self.replicas[i].state == STARTING),
                          key=lambda i: -i)
        serving = sorted((i for i in active if self.replicas[i].state == READY),
                         key=lambda i: (self.replicas[i].outstanding, -i))
        for index in (starting + serving)[:extra]:
            if self.replicas[index].state == STARTING:
                self._retire(index)
            else:
                self._drain(index)

    def _create(self, at_start: bool = False) -> None:
        node = self._place(at_start)
        replica = Replica(self.cfg.limits, self.model, node.id, self.now)
        replica.state = READY if at_start else STARTING
        index = self.add_replica(replica)
        node.replicas.add(index)
        node.version += 1
        if not at_start:
            self.push(node.replica_ready_s(self.now, self.f), READY_AT, index)
        else:
            node.image_s = 0.0
            self._serving(index)
        self.peaks[0] = max(self.peaks[0], len(self.live))

    def _place(self, at_start: bool) -> Node:
        for n in self.live_nodes:
            node = self.nodes[n]
            if not node.noticed and len(node.replicas) < self.f.replicas_per_node:
                return node
        ready_s = self.now if at_start else self.now + self.f.node_provisioning_s
        node = Node(len(self.nodes), self.now, ready_s)
        self.nodes.append(node)
        self.live_nodes.append(node.id)
        rate = self.f.spot_interruptions_per_instance_hour * self.f.instances_per_node
        if rate > 0:
            self.push(self.now + self.faults.expovariate(rate / HOUR_S), NOTICE, node.id)
        self.peaks[1] = max(self.peaks[1], self.nodes_held())
        return node

    def _ready(self, index: int, _version: int) -> None:
        # A replica leaves STARTING only to go (never to return): its state tells whether
        # the event still applies (its version also moves when a run is cut short).
        replica = self.replicas[index]
        if replica.state != STARTING:
            return
        replica.state = READY
        bisect.insort(self.ready, index)
        self.cold.add(self.now - replica.created_s)
        self._serving(index)
        self.dispatch()

    def _serving(self, index: int) -> None:
        replica = self.replicas[index]
        replica.serving_since = self.now
        if self.f.crashes_per_replica_hour > 0:
            gap = self.faults.expovariate(self.f.crashes_per_replica_hour / HOUR_S)
            self.push(self.now + gap, CRASH, index)

    def _drain(self, index: int) -> None:
        replica = self.replicas[index]
        replica.state = DRAINING
        self.ready.remove(index)
        if replica.run is None:
            self._retire(index)

    def drained(self, index: int) -> None:
        self._retire(index)

    def _retire(self, index: int) -> None:
        """The replica goes: its slot frees, and an empty node is released later."""
        replica = self.replicas[index]
        if replica.state in (READY, DRAINING):
            self.serving_s += self.now - replica.serving_since
        if replica.state == READY:
            self.ready.remove(index)
        self.busy_s += replica.busy_s
        replica.state = GONE
        replica.version += 1  # its pending run end is stale
        self.live.remove(index)
        node = self.nodes[replica.node]
        node.replicas.discard(index)
        if not node.replicas and node.gone_s < 0:
            self.push(self.now + self.f.settings.consolidate_after_s, RELEASE, node.id,
                      node.version)

    def _lose(self, index: int) -> None:
        """A serving replica is lost: what it holds is retried, or fails after max_retries."""
        replica = self.replicas[index]
        if replica.run is not None:
            replica.busy_s += self.now - replica.run.start_s
        held = replica.held()
        self.held[index] = 0
        self._retire(index)
        for seq in held:
            if seq.retries >= self.f.max_retries:
                self.tally.failed += 1
                self.counts["lost"] += 1
            else:
                self.counts["retries"] += 1
                self.to_router(Seq(seq.id, seq.arrival_s, seq.prompt, seq.output,
                                   seq.retries + 1))

    # -- faults and nodes ------------------------------------------------------------------

    def _crash(self, index: int, _version: int) -> None:
        replica = self.replicas[index]
        if replica.state not in (READY, DRAINING):
            return
        self.counts["crash"] += 1
        self._lose(index)
        self._reconcile()

    def _notice(self, node_id: int, _version: int) -> None:
        node = self.nodes[node_id]
        if node.gone_s >= 0:
            return
        self.counts["spot"] += 1
        node.noticed = True
        for index in sorted(node.replicas):
            if self.replicas[index].state == READY:
                self._drain(index)
            elif self.replicas[index].state == STARTING:
                self._retire(index)
        self.push(self.now + self.f.spot_notice_s, NODE_GONE, node_id)
        self._reconcile()

    def _node_gone(self, node_id: int, _version: int) -> None:
        node = self.nodes[node_id]
        for index in sorted(node.replicas):
            self._lose(index)
        if node.gone_s < 0:
            self._release_node(node)

    def _release(self, node_id: int, version: int) -> None:
        node = self.nodes[node_id]
        if version == node.version and not node.replicas and node.gone_s < 0:
            self._release_node(node)

    def _release_node(self, node: Node) -> None:
        node.gone_s = self.now
        self.instance_s += (self.now - node.launched_s) * self.f.instances_per_node
        self.live_nodes.remove(node.id)

    def nodes_held(self) -> int:
        return len(self.live_nodes) * self.f.instances_per_node

    # -- the result ------------------------------------------------------------------------

    def fleet_result(self) -> FleetResult:
        f = self.f
        instance_s = self.instance_s + sum(
            (self.now - self.nodes[n].launched_s) * f.instances_per_node for n in self.live_nodes)
        serving = self.serving_s + sum(
            self.now - self.replicas[i].serving_since for i in self.live
            if self.replicas[i].state in (READY, DRAINING))
        busy = self.busy_s + sum(self.replicas[i].busy_s for i in self.live)
        hours = instance_s / HOUR_S
        c = self.counts
        return FleetResult(
            autoscaler=f.autoscaler, instance_hours=round(hours, 6),
            cost_usd=(round(hours * f.instance_usd_per_hour, 4)
                      if f.instance_usd_per_hour is not None else None),
            accelerator_utilisation=round(busy / serving, 6) if serving > 0 else 0.0,
            replicas_peak=self.peaks[0], nodes_peak=self.peaks[1],
            cold_starts=self.cold.count, cold_start=self.cold.summary(),
            scale_ups=c["up"], scale_downs=c["down"], scale_events=tuple(self.events),
            spot_interruptions=c["spot"], crashes=c["crash"], retries=c["retries"],
            failed_after_retries=c["lost"],
        )
