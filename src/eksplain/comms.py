"""Collective communication time: ring all-reduce, all-gather and reduce-scatter over a link.

A ring collective over ``n`` ranks moves ``2(n-1)/n`` of the buffer per rank for all-reduce and
``(n-1)/n`` for all-gather or reduce-scatter (Patarasuk and Yuan 2009; NCCL's "bus bandwidth"
convention, nccl-tests doc/PERFORMANCE.md). Time = latency + bytes moved / bus bandwidth: the
bus bandwidth is the link's speed times a calibrated efficiency, and the latency is the
small-message time of one collective (NCCL switches to tree and low-latency protocols for small
buffers, so it does not grow with the ring's steps); both are data in ``calibration.yaml``.
"""

from __future__ import annotations

from dataclasses import dataclass

from eksplain.hardware import Accelerator, InstanceType

__all__ = [
    "Link",
    "LinkCalibration",
    "all_gather_s",
    "all_reduce_s",
    "all_to_all_s",
    "ena_link",
    "inter_node_link",
    "intra_node_link",
]


@dataclass(frozen=True)
class Link:
    """A path between ranks: its bus bandwidth per rank and per-step latency."""

    name: str
    bus_bytes_per_s: float
    latency_s: float


def all_reduce_s(buffer_bytes: float, ranks: int, link: Link) -> float:
    """Seconds for a ring all-reduce of ``buffer_bytes`` on each of ``ranks`` ranks."""
    if ranks <= 1 or buffer_bytes <= 0:
        return 0.0
    moved = 2 * (ranks - 1) / ranks * buffer_bytes
    return link.latency_s + moved / link.bus_bytes_per_s


def all_gather_s(buffer_bytes: float, ranks: int, link: Link) -> float:
    """Seconds for a ring all-gather (or reduce-scatter) whose full result is ``buffer_bytes``."""
    if ranks <= 1 or buffer_bytes <= 0:
        return 0.0
    moved = (ranks - 1) / ranks * buffer_bytes
    return link.latency_s + moved / link.bus_bytes_per_s


def all_to_all_s(buffer_bytes: float, ranks: int, link: Link) -> float:
    """Seconds for an all-to-all in which each rank sends ``buffer_bytes`` in total, keeping
    1/n of it (MoE token dispatch under expert parallelism)."""
    if ranks <= 1 or buffer_bytes <= 0:
        return 0.0
    return link.latency_s + (ranks - 1) / ranks * buffer_bytes / link.bus_bytes_per_s


@dataclass(frozen=True)
class LinkCalibration:
    """Measured fractions of the nominal link speeds that collectives reach, and latencies."""

    device_link_efficiency: float  # NVLink / NeuronLink: bus bandwidth / listed bandwidth
    pcie_efficiency: float  # PCIe-only GPUs: bus bandwidth / PCIe per-direction bandwidth
    efa_efficiency: float  # inter-node over EFA: bus bandwidth / EFA bandwidth per device
    ena_efficiency: float  # inter-node over plain ENA (TCP)
    device_link_latency_s: float
    pcie_latency_s: float
    network_latency_s: float


def intra_node_link(acc: Accelerator, cal: LinkCalibration) -> Link:
    """The link between devices of one node: NVLink/NeuronLink when present, else PCIe."""
    if acc.interconnect_bytes_per_s:
        return Link(acc.interconnect, acc.interconnect_bytes_per_s * cal.device_link_efficiency,
                    cal.device_link_latency_s)
    return Link("PCIe", acc.host_link_bytes_per_s * cal.pcie_efficiency, cal.pcie_latency_s)


def inter_node_link(instance: InstanceType, cal: LinkCalibration) -> Link:
    """The network between nodes, per device: EFA when the instance has it, else ENA."""
    devices = max(instance.accelerator_count, 1)
    if instance.efa_interfaces:  # EFA runs at the instance's network bandwidth
        per_device = (instance.efa_gbps or instance.network_gbps) * 1e9 / 8 / devices
        return Link("EFA", per_device * cal.efa_efficiency, cal.network_latency_s)
    return ena_link(instance, cal)


def ena_link(instance: InstanceType, cal: LinkCalibration) -> Link:
    """Plain TCP over the instance's ENA network, per device (NCCL's socket transport)."""
    per_device = instance.network_gbps * 1e9 / 8 / max(instance.accelerator_count, 1)
    return Link("ENA", per_device * cal.ena_efficiency, cal.network_latency_s)
