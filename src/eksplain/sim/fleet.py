"""The fleet under a simulation: nodes, where replicas go, how long they take to start, what the
nodes cost, and what happened to them.

    placement    a new replica takes a free slot on a node that is ready or launching, lowest
                 node first (a node holds ``replicas_per_node`` replicas: accelerators per
                 instance // (TP x PP); a replica larger than an instance takes a node of
                 ``instances_per_node`` instances); with no free slot, Karpenter launches a node
    node ready   launch + node provisioning (data/startup.yaml)
    replica      ready = max(now, node ready, the node's image pulled) + weight load + warm-up;
                 the first replica on a node pulls the image (image pull, data/startup.yaml)
    release      a node with no replica left is removed ``consolidate_after_s`` later
                 (Karpenter's consolidateAfter, data/autoscaling.yaml) unless a replica
                 arrives first; a spot node goes at its interruption
    cost         instance-hours (from launch to release) x the hourly price of the plan's
                 capacity type (the plan's offering: on-demand or spot)
"""

from __future__ import annotations

from dataclasses import dataclass, field

from eksplain.autoscaling import AutoscalingSettings, load_autoscaling
from eksplain.sim.metrics import LatencySummary

__all__ = ["AUTOSCALERS", "FleetConfig", "FleetResult", "Node", "ScaleEvent"]

AUTOSCALERS = ("hpa", "keda", "off")
MAX_EVENTS = 1000  # scale events kept for the output (counts are always complete)


@dataclass(frozen=True)
class FleetConfig:
    """How replicas come and go. ``autoscaler`` off keeps ``initial_replicas`` (replacing those
    lost to faults); hpa and keda follow the metric between the bounds."""

    autoscaler: str = "off"
    initial_replicas: int = 1  # serving at time 0, on nodes that are ready
    min_replicas: int = 1
    max_replicas: int = 1
    target_per_replica: float = 1.0  # requests held (running + waiting) per replica
    replicas_per_node: int = 1
    instances_per_node: int = 1
    node_provisioning_s: float = 0.0
    image_pull_s: float = 0.0
    load_s: float = 0.0  # weight load from the model cache + engine warm-up
    instance_usd_per_hour: float | None = None
    spot_interruptions_per_instance_hour: float = 0.0
    spot_notice_s: float = 120.0
    crashes_per_replica_hour: float = 0.0
    max_retries: int = 1
    settings: AutoscalingSettings = field(default_factory=load_autoscaling)


@dataclass(frozen=True)
class ScaleEvent:
    time_s: float
    replicas_from: int
    replicas_to: int


@dataclass(frozen=True)
class FleetResult:
    autoscaler: str
    instance_hours: float
    cost_usd: float | None
    accelerator_utilisation: float  # share of serving-replica time with a non-empty batch
    replicas_peak: int
    nodes_peak: int  # instances held at once
    cold_starts: int  # replicas started after time 0 that became ready
    cold_start: LatencySummary  # seconds from creation to ready
    scale_ups: int
    scale_downs: int
    scale_events: tuple[ScaleEvent, ...]  # the first MAX_EVENTS
    spot_interruptions: int
    crashes: int
    retries: int  # requests re-queued at the router after their replica was lost
    failed_after_retries: int


class Node:
    """One node (``instances`` instances when a replica spans several)."""

    __slots__ = ("gone_s", "id", "image_s", "launched_s", "noticed", "ready_s", "replicas",
                 "version")

    def __init__(self, ident: int, launched_s: float, ready_s: float) -> None:
        self.id = ident
        self.launched_s = launched_s
        self.ready_s = ready_s
        self.image_s = -1.0  # when the image is on the node; -1: not pulled yet
        self.replicas: set[int] = set()
        self.noticed = False  # a spot interruption notice came: no new replicas
        self.gone_s = -1.0
        self.version = 0  # bumped when a replica is placed (a pending release is stale)

    def replica_ready_s(self, now: float, cfg: FleetConfig) -> float:
        """When a replica placed now can serve; records the image pull it starts."""
        start = max(now, self.ready_s)
        if self.image_s < 0:
            self.image_s = start + cfg.image_pull_s
        return max(start, self.image_s) + cfg.load_s
