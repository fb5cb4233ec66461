"""Checkpoints and failures: size, write and restore time by storage, and the best interval.

    size       = weights (16-bit) + optimizer states (fp32 master weights and moments) for full
                 fine-tuning or pre-training; the adapters and their states for LoRA
    write time = size / min(per-node rate x writing nodes, file-system throughput)
                 per-node rate = min(per-client throughput, the node's network bandwidth) for
                 storage reached over the network or EBS; local NVMe is not capped
                 (FSx for Lustre: PERSISTENT_2-125 disk throughput, 125 MB/s per TiB, for a
                 file system sized to hold two checkpoints: an assumption, stated in the output)
    interval   = sqrt(2 x write time x MTBF)                     (Young 1974; Daly 2006)
    overhead   = write / interval + (interval / 2 + restore) / MTBF   (share of wall-clock time)

MTBF = 1 / (failures per GPU-day x GPUs); the failure rate comes from published large runs
(``data/failures.yaml``), storage throughput from ``data/storage.yaml``.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

from eksplain.datafiles import read_yaml
from eksplain.errors import InputError, suggest
from eksplain.hardware import InstanceType

__all__ = [
    "Checkpoint", "StorageOption", "checkpoint_plan", "cold_start_seconds", "failure_rate",
    "file_system_bytes_per_s", "load_storage", "node_limit_bytes_per_s",
    "node_provisioning_seconds", "provisioned_bytes",
    "read_seconds", "storage_usd_per_month",
]

SECONDS_PER_DAY = 86_400


@dataclass(frozen=True)
class StorageOption:
    id: str
    name: str
    read_bytes_per_s: float | None  # per client
    write_bytes_per_s: float | None  # per client
    price_usd_per_gb_month: float | None
    source: str
    per_tib_bytes_per_s: float | None = None  # throughput that scales with provisioned size
    min_size_bytes: int = 0  # smallest file system that can be provisioned
    attachment: str = "network"  # how a node reaches it: network, ebs or local


@dataclass(frozen=True)
class Checkpoint:
    storage: str
    size_bytes: int
    write_s: float
    restore_s: float
    failures_per_gpu_day: float
    mtbf_s: float
    interval_s: float
    overhead_fraction: float
    storage_usd_per_month: float | None


def _rate(value: Any) -> float | None:
    return float(value) * 1e9 if value is not None else None


TIB = 2**40


def _per_tib(row: dict[str, Any]) -> float | None:
    """Disk throughput per TiB of the cheapest persistent FSx tier (PERSISTENT_2-125)."""
    for tier in row.get("tiers") or []:
        if tier.get("deployment") == "PERSISTENT_2-125":
            return float(tier["disk_mb_per_s_per_tib"]) * 1e6
    return None


@functools.cache
def load_storage() -> tuple[StorageOption, ...]:
    rows = read_yaml("storage.yaml")["options"]
    return tuple(
        StorageOption(
            id=str(r["id"]), name=str(r["name"]),
            read_bytes_per_s=_rate(r.get("read_gb_per_s_per_client")),
            write_bytes_per_s=_rate(r.get("write_gb_per_s_per_client")
                                    or r.get("read_gb_per_s_per_client")),
            price_usd_per_gb_month=r.get("price_usd_per_gb_month"),
            source=str(r.get("source", "")),
            per_tib_bytes_per_s=_per_tib(r),
            min_size_bytes=round(float(r.get("min_size_tib") or 0) * TIB),
            attachment=str(r["attachment"]),
        )
        for r in rows
    )


def find_storage(options: tuple[StorageOption, ...], name: str) -> StorageOption:
    for option in options:
        if option.id == name:
            return option
    ids = [o.id for o in options]
    raise InputError(f"Unknown storage {name!r}.", hint="use one of " + ", ".join(ids),
                     suggestions=suggest(name, ids))


@functools.cache
def cold_start_seconds() -> tuple[float, float]:
    """(image pull, engine warm-up) seconds of a new replica (data/startup.yaml, sourced)."""
    data = read_yaml("startup.yaml")
    return float(data["image_pull"]["seconds"]), float(data["engine_warmup"]["seconds"])


@functools.cache
def node_provisioning_seconds() -> float:
    """Seconds from Karpenter launching a GPU node to a pod being able to use its GPUs
    (data/startup.yaml node_provisioning, sourced)."""
    return float(read_yaml("startup.yaml")["node_provisioning"]["seconds"])


@functools.cache
def failure_rate() -> float:
    """Unexpected interruptions per GPU-day: the largest published run with a derivable rate."""
    reports = [r for r in read_yaml("failures.yaml")["reports"] if r.get("failures_per_gpu_day")]
    largest = max(reports, key=lambda r: int(r.get("gpus") or 0))
    return float(largest["failures_per_gpu_day"])


def node_limit_bytes_per_s(storage: StorageOption, instance: InstanceType | None) -> float:
    """The most one node can move to or from ``storage``, in bytes/s (inf: no node limit).

    S3, FSx and EFS traffic leaves through the instance's network interface, so the node's
    network bandwidth caps it (the rule the planner applies to model-cache loads). EBS has a
    dedicated bandwidth of its own per instance type (EBS-optimized instances; the network
    bandwidth stands in where it is not known). Instance-store NVMe has no network in the path.
    """
    if instance is None or storage.attachment == "local":
        return math.inf
    gbps = instance.ebs_gbps if storage.attachment == "ebs" and instance.ebs_gbps else (
        instance.network_gbps)
    return gbps * 1e9 / 8 if gbps > 0 else math.inf


def provisioned_bytes(storage: StorageOption, data_bytes: int) -> int:
    """What is sized and billed to hold ``data_bytes``: file systems whose throughput scales
    with their size (FSx for Lustre) start at their minimum size (1.2 TiB)."""
    if storage.per_tib_bytes_per_s is None:
        return data_bytes
    return max(data_bytes, storage.min_size_bytes)


def file_system_bytes_per_s(storage: StorageOption, provisioned: int) -> float:
    """The file system's total throughput at its provisioned size (inf: no such limit)."""
    if storage.per_tib_bytes_per_s is None:
        return math.inf
    return storage.per_tib_bytes_per_s * provisioned / TIB


def read_seconds(storage: StorageOption, data_bytes: int, instance: InstanceType | None) -> float:
    """Seconds for one node to read ``data_bytes`` (a model cache load): the storage's
    per-client rate, capped by the node's network (or EBS) bandwidth and by the file system's
    throughput at the size that holds the data."""
    rate = min(storage.read_bytes_per_s or 0.0, node_limit_bytes_per_s(storage, instance),
               file_system_bytes_per_s(storage, provisioned_bytes(storage, data_bytes)))
    return data_bytes / rate if rate > 0 else math.inf


def storage_usd_per_month(storage: StorageOption, data_bytes: int) -> float | None:
    """Dollars a month to keep ``data_bytes`` on ``storage`` (at least its minimum size)."""
    if storage.price_usd_per_gb_month is None:
        return None
    return provisioned_bytes(storage, data_bytes) / 1e9 * storage.price_usd_per_gb_month


def checkpoint_plan(size_bytes: int, gpus: int, nodes: int, storage: StorageOption,
                    rate_per_gpu_day: float, instance: InstanceType | None = None) -> Checkpoint:
    """Write/restore times and the Young/Daly interval for a run on ``gpus`` over ``nodes``.

    With ``instance``, each node's throughput is capped by ``node_limit_bytes_per_s``.
    """
    if storage.write_bytes_per_s is None or storage.read_bytes_per_s is None:
        raise InputError(f"No published throughput for {storage.name}.",
                         hint="pick fsx-lustre, s3, efs, ebs-gp3, ebs-io2 or instance-nvme")
    node = node_limit_bytes_per_s(storage, instance)
    write_rate = min(storage.write_bytes_per_s, node) * nodes
    read_rate = min(storage.read_bytes_per_s, node) * nodes
    provisioned = provisioned_bytes(storage, 2 * size_bytes)  # FSx: sized for two checkpoints
    file_system = file_system_bytes_per_s(storage, provisioned)
    write_rate, read_rate = min(write_rate, file_system), min(read_rate, file_system)
    write = size_bytes / write_rate
    restore = size_bytes / read_rate
    mtbf = SECONDS_PER_DAY / (rate_per_gpu_day * gpus)
    interval = math.sqrt(2 * write * mtbf)
    overhead = write / interval + (interval / 2 + restore) / mtbf
    monthly = storage_usd_per_month(storage, 2 * size_bytes if (
        storage.per_tib_bytes_per_s is not None) else size_bytes)
    return Checkpoint(
        storage=storage.id, size_bytes=size_bytes, write_s=write, restore_s=restore,
        failures_per_gpu_day=rate_per_gpu_day, mtbf_s=mtbf, interval_s=interval,
        overhead_fraction=overhead, storage_usd_per_month=monthly,
    )
