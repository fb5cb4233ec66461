"""Training on spot capacity: the expected time and dollars of interruptions, and the
checkpoint interval the higher interruption rate calls for.

    spot rate      r = interruptions per node-hour of the instance type (eksplain.spot: the
                       Spot Instance Advisor band of its family, -ln(1 - f) / 730)
    failure rate     = hardware failures per GPU-day (data/failures.yaml)
                       + r x 24 / GPUs per node            (both per GPU-day)
    interval       I = sqrt(2 x write x MTBF) at the combined rate (checkpoint.checkpoint_plan,
                       Young 1974 / Daly 2006)
    restart        R = node provisioning + image pull + checkpoint read  (data/startup.yaml;
                       provisioning only where it has a sourced figure, else left out and said)
    lost share       = write / I + (I / 2 + read) / MTBF  (every interruption, at the combined rate)
                       + r x nodes / 3600 x (provisioning + image pull)   (spot restarts only)
    wall-clock       = compute / (1 - lost share)
    interruptions  N = r x nodes x wall-clock hours
    their cost       = N x (I / 2 + R) x the cluster's dollars per hour / 3600

The work lost per interruption is about half the interval: an interruption lands, on average,
halfway between two checkpoints (the two-minute notice is too short to write a large checkpoint,
so the model does not count on it).
"""

from __future__ import annotations

from dataclasses import dataclass

from eksplain.checkpoint import (
    Checkpoint,
    checkpoint_plan,
    cold_start_seconds,
    failure_rate,
    find_storage,
    load_storage,
)
from eksplain.datafiles import read_yaml
from eksplain.hardware import InstanceType
from eksplain.spot import SPOT_NOTICE_S, interruption_rate_per_hour, spot_band

__all__ = ["SpotRun", "spot_run"]

HOURS_PER_DAY = 24


@dataclass(frozen=True)
class SpotRun:
    """A training run's checkpointing and interruptions on spot nodes."""

    checkpoint: Checkpoint  # at the combined (hardware + spot) interruption rate
    interval_on_demand_s: float  # the Young/Daly interval without spot interruptions
    rate_per_node_hour: float
    band: str  # the advisor band of the family, e.g. "10-20%"
    band_published: bool  # False: the stated stand-in band (no published one for the family)
    restart_s: float  # node provisioning (when known) + image pull + checkpoint read
    node_provisioning_s: float | None  # None: no sourced figure, left out of restart_s
    overhead_fraction: float  # share of wall-clock time lost to checkpoints and interruptions
    notice_s: int

    def interruptions(self, nodes: int, wall_s: float) -> float:
        """Expected spot interruptions over ``wall_s`` seconds of ``nodes`` nodes."""
        return self.rate_per_node_hour * nodes * wall_s / 3600

    def lost_per_interruption_s(self) -> float:
        """Work since the last checkpoint (half an interval on average) plus the restart."""
        return self.checkpoint.interval_s / 2 + self.restart_s


def _node_provisioning_s() -> float | None:
    value = read_yaml("startup.yaml")["node_provisioning"]["seconds"]
    return float(value) if value is not None else None


def spot_run(on_demand: Checkpoint, inst: InstanceType, nodes: int, gpus: int,
             storage: str) -> SpotRun:
    """Checkpointing and interruptions of ``gpus`` devices on ``nodes`` spot nodes of ``inst``,
    given the on-demand checkpoint plan of the same run (module docstring for the maths)."""
    rate = interruption_rate_per_hour(inst.name)
    per_node = max(inst.accelerator_count, 1)
    combined = failure_rate() + rate * HOURS_PER_DAY / per_node
    check = checkpoint_plan(on_demand.size_bytes, gpus, nodes,
                            find_storage(load_storage(), storage), combined, inst)
    pull, _ = cold_start_seconds()
    provisioning = _node_provisioning_s()
    replace = pull + (provisioning or 0.0)
    band = spot_band(inst.name)
    return SpotRun(
        checkpoint=check, interval_on_demand_s=on_demand.interval_s, rate_per_node_hour=rate,
        band=band.band, band_published=band.published, restart_s=replace + check.restore_s,
        node_provisioning_s=provisioning,
        overhead_fraction=check.overhead_fraction + rate * nodes / 3600 * replace,
        notice_s=SPOT_NOTICE_S,
    )
