"""Build eksplain's hardware data files from the sourced reference tables.

Run by hand when ../shared/reference changes:

    python tools/build_catalog.py ../shared/reference src/eksplain/data

It selects and renames columns, converts memory to exact bytes and keeps every row's source.
It never invents a value: an empty cell stays empty.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

MIB = 2**20
GIB = 2**30
GB = 10**9

# Short names people type for each accelerator (lower case).
ALIASES: dict[str, str] = {
    "nvidia-t4": "t4 t4-16gb",
    "nvidia-a10g": "a10g a10g-24gb",
    "nvidia-l4": "l4 l4-24gb",
    "nvidia-l40s": "l40s l40s-48gb",
    "nvidia-v100-sxm2-16gb": "v100 v100-16gb",
    "nvidia-v100-sxm2-32gb": "v100-32gb",
    "nvidia-a100-sxm4-40gb": "a100-40gb a100-sxm4-40gb",
    "nvidia-a100-sxm4-80gb": "a100 a100-80gb a100-sxm4-80gb",
    "nvidia-h100-sxm5-80gb": "h100 h100-80gb h100-sxm h100-sxm5",
    "nvidia-h200-sxm-141gb": "h200 h200-141gb h200-sxm",
    "nvidia-b200": "b200 b200-180gb",
    "nvidia-gb200": "gb200",
    "aws-trainium": "trainium trainium1 trn1",
    "aws-trainium2": "trainium2 trn2",
    "aws-inferentia": "inferentia inferentia1 inf1",
    "aws-inferentia2": "inferentia2 inf2",
}

# PCIe x16 bandwidth per direction: 8, 16 and 32 GT/s per lane with 128b/130b encoding
# (PCI-SIG base specifications 3.0, 4.0 and 5.0): 15.75, 31.5 and 63 GB/s.
PCIE_X16_GB_PER_S = {"Gen3": 15.75, "Gen4": 31.5, "Gen5": 63.0}
# The A10G's table row says only "PCIe"; it is a GA102 part like the A10 (PCIe Gen4 x16).
HOST_INTERFACE_FALLBACK = {"nvidia-a10g": "PCIe Gen4 x16"}

ACCELERATOR_COLUMNS = [
    "accelerator_id", "vendor", "name", "architecture", "compute_capability", "memory_bytes",
    "memory_published", "memory_bandwidth_gb_per_s", "fp32_tflops", "tf32_tflops", "bf16_tflops",
    "fp16_tflops", "fp8_tflops", "int8_tops", "interconnect", "interconnect_gb_per_s",
    "host_link_gb_per_s", "tdp_w",
    "cores_per_device", "k8s_resource", "karpenter_label", "aliases", "on_ec2", "source", "notes",
]

INSTANCE_COLUMNS = [
    "instance_type", "family", "accelerator_id", "accelerator_count", "vcpus", "memory_gib",
    "local_nvme_gb", "network_gbps", "efa_interfaces", "efa_gbps", "accelerator_interconnect",
    "ebs_mbps", "cpu_manufacturer", "cpu_architecture", "extended_resources", "source",
]

OFFERING_COLUMNS = [
    "instance_type", "region", "capacity_type", "price_usd_per_hour", "price_date", "source",
]


def _memory_bytes(row: dict[str, str]) -> str:
    """Exact device memory: EC2's MiB figure when present, else the published GiB figure."""
    if row["ec2_reported_memory_mib"]:
        return str(int(row["ec2_reported_memory_mib"]) * MIB)
    if row["memory_capacity_unit"] == "GiB":
        return str(int(float(row["memory_capacity"]) * GIB))
    return str(int(float(row["memory_capacity"]) * GB))


def _host_link(row: dict[str, str]) -> str:
    text = HOST_INTERFACE_FALLBACK.get(row["accelerator_id"], row["host_interface"])
    for gen, rate in PCIE_X16_GB_PER_S.items():
        if f"PCIe {gen} x16" in text:
            return str(rate)
    return ""


def accelerators(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    out = []
    for r in rows:
        resource = r["k8s_extended_resource"].split(" ")[0]
        out.append({
            "accelerator_id": r["accelerator_id"],
            "vendor": r["vendor"],
            "name": r["model"],
            "architecture": r["architecture"],
            "compute_capability": r["compute_capability"],
            "memory_bytes": _memory_bytes(r),
            "memory_published": " ".join(
                (r["memory_capacity"], r["memory_capacity_unit"], r["memory_type"])),
            "memory_bandwidth_gb_per_s": r["memory_bandwidth_gbps"],
            "fp32_tflops": r["fp32_tflops"],
            "tf32_tflops": r["tf32_dense_tflops"],
            "bf16_tflops": r["bf16_dense_tflops"],
            "fp16_tflops": r["fp16_dense_tflops"],
            "fp8_tflops": r["fp8_dense_tflops"],
            "int8_tops": r["int8_dense_tops"],
            "interconnect": r["device_interconnect"],
            "interconnect_gb_per_s": r["device_interconnect_bandwidth_gbps"],
            "host_link_gb_per_s": _host_link(r),
            "tdp_w": r["tdp_w"],
            "cores_per_device": r["cores_per_device"],
            "k8s_resource": resource,
            "karpenter_label": r["karpenter_name_label"],
            "aliases": ALIASES.get(r["accelerator_id"], ""),
            "on_ec2": "no" if r["accelerator_id"] == "nvidia-a10" else "yes",
            "source": r["source"],
            "notes": r["notes"],
        })
    return out


def _cpu_architecture(row: dict[str, str]) -> str:
    # Graviton ("aws") and Grace (p6e-gb200, manufacturer cell empty) are Arm.
    return "x86_64" if row["cpu_manufacturer"] in ("intel", "amd") else "arm64"


def instances(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    out = []
    for r in rows:
        out.append({
            "instance_type": r["instance_type"],
            "family": r["family"],
            "accelerator_id": r["accelerator_id"],
            "accelerator_count": r["accelerator_count"],
            "vcpus": r["vcpus"],
            "memory_gib": r["memory_gib"],
            "local_nvme_gb": r["local_nvme_gb"],
            "network_gbps": r["network_baseline_gbps"],
            "efa_interfaces": r["efa_max_interfaces"] if r["efa_supported"] == "yes" else "0",
            "efa_gbps": r["efa_bandwidth_gbps"],
            "accelerator_interconnect": r["accelerator_interconnect"],
            "ebs_mbps": r["ebs_bandwidth_mbps"],
            "cpu_manufacturer": r["cpu_manufacturer"],
            "cpu_architecture": _cpu_architecture(r),
            "extended_resources": r["k8s_extended_resources"],
            "source": r["source"],
        })
    return out


def offerings(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    out = []
    for r in rows:
        if not r["price_usd_per_hour_us_east_1"]:
            continue
        price_source = next(
            (part.strip()[len("price: "):] for part in r["source"].split("|")
             if part.strip().startswith("price: ")),
            r["source"],
        )
        out.append({
            "instance_type": r["instance_type"],
            "region": "us-east-1",
            "capacity_type": "on-demand",
            "price_usd_per_hour": r["price_usd_per_hour_us_east_1"],
            "price_date": r["price_date"],
            "source": price_source,
        })
    return out


def _write(path: Path, columns: list[str], rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def main(reference: Path, out: Path) -> None:
    acc = list(csv.DictReader((reference / "accelerators.csv").open()))
    ec2 = list(csv.DictReader((reference / "ec2_instances.csv").open()))
    _write(out / "accelerators.csv", ACCELERATOR_COLUMNS, accelerators(acc))
    _write(out / "instances.csv", INSTANCE_COLUMNS, instances(ec2))
    _write(out / "offerings.csv", OFFERING_COLUMNS, offerings(ec2))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
