"""The nodes: a Karpenter NodePool (karpenter.sh/v1) for exactly the plan's instance type and
capacity type (and, for training, one zone), tainted so that only the plan's pods land there
(on its accelerator resource, or on CPU nodes its own pool label), and its EC2NodeClass
(karpenter.k8s.aws/v1). Field names follow the CRDs in ``eksplain/data/crds``."""

from __future__ import annotations

from typing import Any

from eksplain.render.context import RenderContext
from eksplain.render.workload import cpu_quantity, pool_taint, quantity
from eksplain.units import GIB

__all__ = ["ec2_node_class", "node_pool"]

ROOT_VOLUME_GIB = 100  # the OS, the kubelet and a ~20 GB serving image with room to update it


def node_pool(ctx: RenderContext) -> dict[str, Any]:
    key, value = ctx.node_label
    requirements = [
        {"key": "node.kubernetes.io/instance-type", "operator": "In",
         "values": [ctx.instance.name]},
        {"key": "karpenter.sh/capacity-type", "operator": "In", "values": [ctx.capacity_type]},
        {"key": "kubernetes.io/arch", "operator": "In",
         "values": ["arm64" if ctx.instance.cpu_architecture == "arm64" else "amd64"]},
    ]
    if ctx.zones:
        requirements.append({"key": "topology.kubernetes.io/zone", "operator": "In",
                             "values": list(ctx.zones)})
    taint_key, taint_value = pool_taint(ctx)
    return {
        "apiVersion": "karpenter.sh/v1", "kind": "NodePool",
        "metadata": {"name": ctx.name, "labels": dict(ctx.labels)},
        "spec": {
            "template": {
                "metadata": {"labels": {key: value}},
                "spec": {
                    "nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass",
                                     "name": ctx.name},
                    "requirements": requirements,
                    "taints": [{"key": taint_key, "value": taint_value,
                                "effect": "NoSchedule"}],
                    # A training node lives as long as the job: expiry would stop the run.
                    "expireAfter": "Never" if ctx.training else "720h",
                },
            },
            # The plan's peak node count, as accelerators: Karpenter launches no more.
            "limits": _limits(ctx),
            # Only empty nodes are removed: consolidating a busy GPU node would evict a replica
            # that takes minutes to come back.
            "disruption": {"consolidationPolicy": "WhenEmpty", "consolidateAfter": "5m"},
        },
    }


def _limits(ctx: RenderContext) -> dict[str, str]:
    """The plan's peak nodes as Karpenter limits (counted in node capacity): accelerators, or
    CPU and memory on CPU nodes."""
    if ctx.device_resource is None:
        cap = ctx.instance.capacity
        return {"cpu": cpu_quantity(ctx.nodes_peak * cap.cpu_millicores),
                "memory": quantity(ctx.nodes_peak * cap.memory_bytes)}
    return {ctx.device_resource: str(ctx.nodes_peak * ctx.instance.accelerator_count)}


def _block_devices(ctx: RenderContext) -> list[dict[str, Any]]:
    """The root volume; it also holds the S3 model copy when the node has no local NVMe."""
    size = ROOT_VOLUME_GIB
    if ctx.cache == "s3" and not ctx.instance.local_nvme_bytes:
        size += ctx.cache_volume_bytes * ctx.pods_per_node // GIB
    return [{"deviceName": "/dev/xvda", "ebs": {
        "volumeSize": f"{size}Gi", "volumeType": "gp3", "encrypted": True,
        "deleteOnTermination": True}}]


def ec2_node_class(ctx: RenderContext) -> dict[str, Any]:
    cluster = ctx.options.cluster_name
    def discovery() -> list[dict[str, Any]]:
        return [{"tags": {"karpenter.sh/discovery": cluster}}]

    spec: dict[str, Any] = {
        # AL2023 picks its NVIDIA variant for GPU instance types; pin a dated alias
        # (al2023@vYYYYMMDD) in production so that nodes do not change under you.
        "amiSelectorTerms": [{"alias": "al2023@latest"}],
        "role": f"KarpenterNodeRole-{cluster}",
        "subnetSelectorTerms": discovery(),
        "securityGroupSelectorTerms": discovery(),
        "metadataOptions": {"httpEndpoint": "enabled", "httpTokens": "required",
                            "httpPutResponseHopLimit": 1},
        "blockDeviceMappings": _block_devices(ctx),
    }
    if ctx.instance.local_nvme_bytes:
        # Pods' ephemeral storage (the S3 model copy) goes to the instance's NVMe disks.
        spec["instanceStorePolicy"] = "RAID0"
    return {"apiVersion": "karpenter.k8s.aws/v1", "kind": "EC2NodeClass",
            "metadata": {"name": ctx.name, "labels": dict(ctx.labels)}, "spec": spec}
