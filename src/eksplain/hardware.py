"""The hardware catalogue: accelerators, EC2 instance types as Kubernetes sees them, and offerings.

An instance type has *capacity* (what the machine has), *overhead* (what the kubelet, the system
and the eviction threshold keep back) and *allocatable* (what pods may request). Its price is not
part of the machine: it lives on an ``Offering`` (region, capacity type, date), as in SkyPilot's
catalogue and Karpenter's cloud-provider types.

All facts come from ``eksplain/data`` (built from sourced tables by ``tools/build_catalog.py``).
Query functions take the catalogue as an argument, so tests can pass a four-row one.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from eksplain.datafiles import read_csv, read_yaml
from eksplain.errors import CatalogError, InputError, suggest
from eksplain.units import GB, GIB, MIB

__all__ = [
    "POD_SHARE_OF_ALLOCATABLE",
    "Accelerator",
    "HardwareCatalog",
    "HardwareChoice",
    "InstanceType",
    "Offering",
    "Resources",
    "accelerator_of",
    "filter_instances",
    "find_accelerator",
    "find_instance",
    "load_catalog",
    "offering_for",
    "pod_resources",
    "resolve_hardware",
]

_PEAK_COLUMNS = {
    "fp32": "fp32_tflops",
    "tf32": "tf32_tflops",
    "bf16": "bf16_tflops",
    "fp16": "fp16_tflops",
    "fp8": "fp8_tflops",
    "int8": "int8_tops",
}


@dataclass(frozen=True)
class Accelerator:
    """One accelerator chip (a GPU, or a Neuron device)."""

    id: str
    vendor: str
    name: str
    architecture: str
    compute_capability: tuple[int, int] | None  # NVIDIA (major, minor); None: not an NVIDIA GPU
    memory_bytes: int
    memory_bandwidth_bytes_per_s: int
    peak_tflops: tuple[tuple[str, float], ...]
    interconnect: str
    interconnect_bytes_per_s: int  # device-to-device link per device (NVLink, NeuronLink); 0: none
    host_link_bytes_per_s: int  # PCIe to the host, per direction
    cores_per_device: int  # NeuronCores per Neuron device (1 for GPUs)
    k8s_resource: str
    karpenter_label: str
    aliases: tuple[str, ...]
    on_ec2: bool
    source: str

    @property
    def is_neuron(self) -> bool:
        return self.k8s_resource == "aws.amazon.com/neuron"

    def peak(self, dtype: str) -> float | None:
        """Dense peak TFLOP/s (TOPS for int8) for a data type, or None when not published."""
        return dict(self.peak_tflops).get(dtype)


# Each pod asks for this share of its slice of the node's allocatable CPU and memory; the rest is
# left to DaemonSets (VPC CNI, kube-proxy, the NVIDIA device plugin, log and metric agents), whose
# requests the catalogue does not know. A policy choice, not a hardware fact: the planner sizes
# CPU replicas by it and ``eksplain render`` requests it.
POD_SHARE_OF_ALLOCATABLE = 0.9


@dataclass(frozen=True)
class Resources:
    """A set of Kubernetes resources: CPU in millicores, memory in bytes, extended resources."""

    cpu_millicores: int
    memory_bytes: int
    pods: int
    extended: tuple[tuple[str, int], ...] = ()

    def get(self, name: str) -> int:
        return dict(self.extended).get(name, 0)


def pod_resources(allocatable: Resources, pods_per_node: int) -> tuple[int, int]:
    """CPU (millicores, down to whole 100 m) and memory (bytes, down to whole GiB) one of
    ``pods_per_node`` pods asks for: its share of the node's allocatable."""
    share = POD_SHARE_OF_ALLOCATABLE / pods_per_node
    cpu = int(allocatable.cpu_millicores * share) // 100 * 100
    return cpu, int(allocatable.memory_bytes * share) // GIB * GIB


@dataclass(frozen=True)
class InstanceType:
    """An EC2 instance type: capacity, overhead and allocatable as the kubelet computes them."""

    name: str
    family: str
    accelerator_id: str | None
    accelerator_count: int
    vcpus: int
    memory_bytes: int
    local_nvme_bytes: int
    network_gbps: float
    efa_interfaces: int
    efa_gbps: float | None
    accelerator_interconnect: str
    cpu_architecture: str
    capacity: Resources
    overhead: Resources
    source: str
    ebs_gbps: float = 0.0  # the instance's dedicated EBS bandwidth; 0: not known

    @property
    def allocatable(self) -> Resources:
        return Resources(
            cpu_millicores=self.capacity.cpu_millicores - self.overhead.cpu_millicores,
            memory_bytes=self.capacity.memory_bytes - self.overhead.memory_bytes,
            pods=self.capacity.pods,
            extended=self.capacity.extended,
        )


@dataclass(frozen=True)
class Offering:
    """A price for an instance type in a region and capacity type, as of a date."""

    instance_type: str
    region: str
    capacity_type: str
    price_usd_per_hour: float
    price_date: str
    source: str


@dataclass(frozen=True)
class HardwareCatalog:
    accelerators: tuple[Accelerator, ...]
    instances: tuple[InstanceType, ...]
    offerings: tuple[Offering, ...]


@dataclass(frozen=True)
class HardwareChoice:
    """What an estimate runs on: an accelerator, how many, and the instance when one was named."""

    accelerator: Accelerator
    devices: int
    instance: InstanceType | None


# ---------------------------------------------------------------------------------------------
# Loading


def _float(cell: str) -> float | None:
    return float(cell) if cell.strip() else None


def _compute_capability(cell: str) -> tuple[int, int] | None:
    """``"8.9"`` -> (8, 9); an empty cell (Neuron devices) -> None."""
    if not cell.strip():
        return None
    major, minor = cell.strip().split(".")
    return int(major), int(minor)


def _accelerator(row: dict[str, str]) -> Accelerator:
    peaks = tuple(
        (dtype, value)
        for dtype, column in _PEAK_COLUMNS.items()
        if (value := _float(row[column])) is not None
    )
    return Accelerator(
        id=row["accelerator_id"],
        vendor=row["vendor"],
        name=row["name"],
        architecture=row["architecture"],
        compute_capability=_compute_capability(row["compute_capability"]),
        memory_bytes=int(row["memory_bytes"]),
        memory_bandwidth_bytes_per_s=int(float(row["memory_bandwidth_gb_per_s"]) * GB),
        peak_tflops=peaks,
        interconnect=row["interconnect"],
        interconnect_bytes_per_s=int((_float(row["interconnect_gb_per_s"]) or 0) * GB),
        host_link_bytes_per_s=int((_float(row["host_link_gb_per_s"]) or 0) * GB),
        cores_per_device=int(row["cores_per_device"] or 1),
        k8s_resource=row["k8s_resource"],
        karpenter_label=row["karpenter_label"],
        aliases=tuple(row["aliases"].split()),
        on_ec2=row["on_ec2"] == "yes",
        source=row["source"],
    )


def _extended(cell: str) -> tuple[tuple[str, int], ...]:
    pairs = []
    for part in cell.split(";"):
        if "=" in part:
            name, count = part.strip().split("=")
            pairs.append((name, int(count)))
    return tuple(pairs)


def _kube_reserved(vcpus: int, rules: dict[str, Any]) -> Resources:
    """kube-reserved + eviction threshold for a node, per the EKS AMI / Karpenter defaults."""
    reserved = rules["kube_reserved"]
    max_pods = int(rules["max_pods"])
    memory_mib = reserved["memory_mib_base"] + reserved["memory_mib_per_pod"] * max_pods
    memory_mib += rules["eviction_hard_memory_mib"]
    millicores = 0.0
    remaining = vcpus
    for tier in reserved["cpu_tiers"]:
        cores = remaining if tier["cores"] is None else min(tier["cores"], remaining)
        millicores += cores * 1000 * tier["fraction"]
        remaining -= cores
    return Resources(cpu_millicores=round(millicores), memory_bytes=memory_mib * MIB, pods=0)


def _instance(row: dict[str, str], rules: dict[str, Any]) -> InstanceType:
    vcpus = int(row["vcpus"])
    memory = int(float(row["memory_gib"]) * GIB)
    vm_overhead = int(memory * float(rules["vm_memory_overhead_percent"]))
    reserved = _kube_reserved(vcpus, rules)
    extended = _extended(row.get("extended_resources", ""))
    return InstanceType(
        name=row["instance_type"],
        family=row["family"],
        accelerator_id=row.get("accelerator_id") or None,
        accelerator_count=int(row.get("accelerator_count") or 0),
        vcpus=vcpus,
        memory_bytes=memory,
        local_nvme_bytes=int(float(row.get("local_nvme_gb") or 0) * GB),
        network_gbps=float(row.get("network_gbps") or row.get("network_baseline_gbps") or 0),
        efa_interfaces=int(row.get("efa_interfaces") or 0),
        efa_gbps=_float(row.get("efa_gbps", "")),
        ebs_gbps=float(row.get("ebs_mbps") or 0) / 1000,
        accelerator_interconnect=row.get("accelerator_interconnect", ""),
        cpu_architecture=row["cpu_architecture"],
        capacity=Resources(
            cpu_millicores=vcpus * 1000,
            memory_bytes=memory - vm_overhead,
            pods=int(rules["max_pods"]),
            extended=extended,
        ),
        overhead=reserved,
        source=row["source"],
    )


def _cpu_instance_row(row: dict[str, str]) -> dict[str, str]:
    """Map a CPU-only instance row (data/cpu_instances.csv) to the accelerated-instance layout."""
    return {
        **row,
        "network_gbps": row.get("network_baseline_gbps", ""),
        "efa_interfaces": "1" if row.get("efa_supported") == "yes" else "0",
        "extended_resources": "",
    }


def _cpu_offerings(rows: list[dict[str, str]]) -> list[Offering]:
    return [
        Offering(
            instance_type=r["instance_type"],
            region="us-east-1",
            capacity_type="on-demand",
            price_usd_per_hour=float(r["price_usd_per_hour_us_east_1"]),
            price_date=r["price_date"],
            source=r["source"],
        )
        for r in rows
        if r.get("price_usd_per_hour_us_east_1", "").strip()
    ]


@functools.cache
def load_catalog() -> HardwareCatalog:
    """The packaged hardware catalogue (read once; values are immutable)."""
    rules = read_yaml("kubernetes.yaml")
    cpu_rows = read_csv("cpu_instances.csv")
    # Rows without node facts (p6e-gb200 is sold as UltraServers only) are not schedulable nodes.
    instances = [_instance(r, rules) for r in read_csv("instances.csv") if r["vcpus"]]
    instances += [_instance(_cpu_instance_row(r), rules) for r in cpu_rows]
    offerings = [
        Offering(
            instance_type=r["instance_type"],
            region=r["region"],
            capacity_type=r["capacity_type"],
            price_usd_per_hour=float(r["price_usd_per_hour"]),
            price_date=r["price_date"],
            source=r["source"],
        )
        for r in read_csv("offerings.csv")
    ]
    return HardwareCatalog(
        accelerators=tuple(_accelerator(r) for r in read_csv("accelerators.csv")),
        instances=tuple(sorted(instances, key=lambda i: i.name)),
        offerings=tuple(offerings + _cpu_offerings(cpu_rows)),
    )


# ---------------------------------------------------------------------------------------------
# Queries


def accelerator_of(catalog: HardwareCatalog, inst: InstanceType) -> Accelerator:
    """The accelerator an instance type carries (CatalogError for a CPU-only type)."""
    if inst.accelerator_id is None:
        raise CatalogError(f"{inst.name} has no accelerator.")
    return find_accelerator(catalog, inst.accelerator_id)


def find_accelerator(catalog: HardwareCatalog, name: str) -> Accelerator:
    """An accelerator by id or alias (``h100``, ``a100-40gb``, ``inferentia2``), any case."""
    key = name.strip().lower()
    for acc in catalog.accelerators:
        if key == acc.id or key in acc.aliases:
            return acc
    names = [a.id for a in catalog.accelerators]
    names += [alias for a in catalog.accelerators for alias in a.aliases]
    raise CatalogError(
        f"Unknown accelerator {name!r}.",
        hint="run `eksplain hardware` to list accelerators and instance types",
        suggestions=suggest(name, names),
    )


def find_instance(catalog: HardwareCatalog, name: str) -> InstanceType:
    key = name.strip().lower()
    for inst in catalog.instances:
        if inst.name == key:
            return inst
    raise CatalogError(
        f"Unknown instance type {name!r}.",
        hint="run `eksplain hardware` to list instance types",
        suggestions=suggest(name, [i.name for i in catalog.instances]),
    )


def resolve_hardware(catalog: HardwareCatalog, name: str, devices: int | None) -> HardwareChoice:
    """Resolve ``--hardware`` (accelerator or instance type) and ``--devices`` to a choice.

    An instance type means all of its accelerators unless ``devices`` says fewer; a multiple of
    its accelerator count means several nodes.
    """
    if devices is not None and devices < 1:
        raise InputError(f"--devices must be at least 1, not {devices}.")
    if "." in name:
        inst = find_instance(catalog, name)
        if inst.accelerator_id is None:
            raise InputError(
                f"{inst.name} has no accelerator; eksplain estimates accelerator memory.",
                hint="pick a GPU, Trainium or Inferentia instance, or an accelerator name",
            )
        count = devices or inst.accelerator_count
        if count > inst.accelerator_count and count % inst.accelerator_count:
            raise InputError(
                f"{inst.name} has {inst.accelerator_count} accelerators; {count} devices would "
                "leave a node partly used.",
                hint=f"use --devices up to {inst.accelerator_count}, or a multiple of it for "
                     "several nodes",
            )
        return HardwareChoice(find_accelerator(catalog, inst.accelerator_id), count, inst)
    return HardwareChoice(find_accelerator(catalog, name), devices or 1, None)


def filter_instances(
    catalog: HardwareCatalog,
    family: str | None = None,
    min_accelerator_memory_bytes: int | None = None,
) -> list[InstanceType]:
    """Instance types of a family and/or with at least this much accelerator memory in total."""
    acc = {a.id: a for a in catalog.accelerators}
    out = []
    for inst in catalog.instances:
        if family and inst.family != family.lower():
            continue
        if min_accelerator_memory_bytes is not None:
            total = acc[inst.accelerator_id].memory_bytes * inst.accelerator_count if (
                inst.accelerator_id
            ) else 0
            if total < min_accelerator_memory_bytes:
                continue
        out.append(inst)
    if family and not out and not any(i.family == family.lower() for i in catalog.instances):
        raise CatalogError(
            f"Unknown instance family {family!r}.",
            suggestions=suggest(family, sorted({i.family for i in catalog.instances})),
        )
    return out


def offering_for(
    catalog: HardwareCatalog, instance: str, region: str = "us-east-1",
    capacity_type: str = "on-demand",
) -> Offering | None:
    """The price of an instance type in a region and capacity type, or None when unknown."""
    for off in catalog.offerings:
        if (off.instance_type, off.region, off.capacity_type) == (instance, region, capacity_type):
            return off
    return None
