"""The model cache: where a new replica reads its weights from.

    s3           an init container copies s3://<bucket>/<model id>/ to a local emptyDir (the
                 node's NVMe or root volume) and vLLM loads from there
    fsx-lustre   a ReadWriteMany PVC on an FSx for Lustre StorageClass, holding the HF hub cache
    efs          the same on an EFS StorageClass (access points)

Parameters follow the CSI drivers' documented keys (aws-fsx-csi-driver v1.9.0, aws-efs-csi-driver
v3.4.1); every StorageClass parameter is a string.
"""

from __future__ import annotations

import math
from typing import Any

from eksplain.render.context import RenderContext
from eksplain.render.workload import CACHE_MOUNT, quantity
from eksplain.units import GIB

__all__ = ["cache_objects", "cache_volume"]

# FSx for Lustre SSD capacity (PERSISTENT_2): 1.2 TiB, 2.4 TiB, then increments of 2.4 TiB
# (docs.aws.amazon.com/fsx/latest/LustreGuide/managing-storage-capacity.html, as storage.yaml
# cites; the 3.6 TiB steps in the CSI driver's older examples are SCRATCH_1's).
FSX_MIN_GIB = 1200
FSX_STEP_GIB = 2400


def _cache_gib(ctx: RenderContext) -> int:
    return ctx.cache_volume_bytes // GIB


def fsx_capacity_gib(need_gib: int) -> int:
    """The smallest valid FSx for Lustre SSD capacity that holds ``need_gib``."""
    if need_gib <= FSX_MIN_GIB:
        return FSX_MIN_GIB
    return math.ceil(need_gib / FSX_STEP_GIB) * FSX_STEP_GIB


def _copy_container(ctx: RenderContext) -> dict[str, Any]:
    uid = int(ctx.images["aws_cli"]["user_id"])
    source = f"s3://{ctx.options.model_bucket}/{ctx.model_id}/"
    return {
        "name": "copy-model", "image": ctx.image("aws_cli"), "imagePullPolicy": "IfNotPresent",
        "command": ["aws", "s3", "sync", "--only-show-errors", source,
                    f"{CACHE_MOUNT}/{ctx.model_id}/"],
        "env": [{"name": "HOME", "value": "/tmp"}],
        "resources": {"requests": {"cpu": "1", "memory": "1Gi"},
                      "limits": {"cpu": "1", "memory": "1Gi"}},
        "securityContext": {"allowPrivilegeEscalation": False, "privileged": False,
                            "readOnlyRootFilesystem": True, "runAsNonRoot": True,
                            "runAsUser": uid, "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": [{"name": "model-cache", "mountPath": CACHE_MOUNT},
                         {"name": "tmp", "mountPath": "/tmp"}],
    }


def cache_volume(ctx: RenderContext) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The ``model-cache`` volume source of the pod, and its init containers."""
    if ctx.cache == "s3":
        size = quantity(_cache_gib(ctx) * GIB)
        return {"emptyDir": {"sizeLimit": size}}, [_copy_container(ctx)]
    return {"persistentVolumeClaim": {"claimName": f"{ctx.name}-model-cache"}}, []


def _storage_class(ctx: RenderContext) -> dict[str, Any]:
    o = ctx.options
    if ctx.cache == "fsx-lustre":
        provisioner = "fsx.csi.aws.com"
        params = {"subnetId": o.fsx_subnet_id, "securityGroupIds": o.fsx_security_group_ids,
                  # the file system the planner timed and priced (PERSISTENT_2-125)
                  "deploymentType": "PERSISTENT_2", "perUnitStorageThroughput": "125"}
    else:
        provisioner = "efs.csi.aws.com"
        params = {"provisioningMode": "efs-ap", "fileSystemId": o.efs_file_system_id,
                  "directoryPerms": "700", "uid": str(ctx.engine["user_id"]),
                  "gid": str(ctx.engine["user_id"])}
    return {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {"name": f"{ctx.name}-{ctx.cache}", "labels": dict(ctx.labels)},
            "provisioner": provisioner, "parameters": params,
            # A cache can be refilled: deleting the claim deletes the file system and its bill.
            "reclaimPolicy": "Delete", "volumeBindingMode": "Immediate"}


def cache_objects(ctx: RenderContext) -> list[dict[str, Any]]:
    """The StorageClass and PVC of a shared cache; nothing for the S3 copy."""
    if ctx.cache == "s3":
        return []
    need = _cache_gib(ctx)
    size = fsx_capacity_gib(need) if ctx.cache == "fsx-lustre" else need  # EFS ignores the size
    pvc = {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
           "metadata": {"name": f"{ctx.name}-model-cache", "namespace": ctx.namespace,
                        "labels": dict(ctx.labels)},
           "spec": {"accessModes": ["ReadWriteMany"], "storageClassName": f"{ctx.name}-{ctx.cache}",
                    "resources": {"requests": {"storage": f"{size}Gi"}}}}
    return [_storage_class(ctx), pvc]
