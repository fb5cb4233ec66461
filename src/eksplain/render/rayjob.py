"""Training plans as a KubeRay RayJob (ray.io/v1), when the spec asks for
``render.training_launcher: rayjob``: a fixed-size Ray cluster that lives for one job.

    head        Ray's control plane (GCS, dashboard, the job's driver), no accelerators and no
                Ray tasks (``num-cpus: 0``); it runs on one of the job's GPU nodes, see
                ``_head_ctx``
    workers     one group of the plan's nodes, one pod per node, with the PyTorchJob pod's
                accelerators, EFA interfaces, environment, volumes and security context
    entrypoint  ``python <script>``: the user's script runs on the head as the driver and starts
                its training function on the workers with Ray Train (TorchTrainer), one worker
                per GPU; eksplain writes no training code
    lifetime    K8sJobMode submission; the cluster is deleted a few minutes after the job ends
                (KubeRay keeps it, GPUs and all, unless told otherwise)
"""

from __future__ import annotations

import dataclasses
from typing import Any

from eksplain.render.context import RenderContext
from eksplain.render.training import layout_of, network_policy, pod_spec
from eksplain.render.workload import (
    SCANNER_SKIPS,
    TMP_BYTES,
    WORK_BYTES,
    cpu_quantity,
    probe_skips,
    quantity,
    security,
)
from eksplain.units import GIB

__all__ = ["KUBERAY_OPERATOR_LABELS", "WORKER_GROUP", "ray_job", "ray_network_policy"]

# The label the KubeRay Helm chart gives the operator's pods (not checked against the chart).
KUBERAY_OPERATOR_LABELS = {"app.kubernetes.io/name": "kuberay-operator"}
WORKER_GROUP = "gpu"  # the one worker group; KubeRay names its pods <cluster>-gpu-worker-<id>
_RAY_NODE = ("a Ray node's health is KubeRay's to watch (it recreates a failed pod); a failed job "
             "is retried and resumes from its last checkpoint")


def _row(ctx: RenderContext) -> dict[str, Any]:
    row: dict[str, Any] = ctx.images[layout_of(ctx).image_key]
    return row


def _side_pods(ctx: RenderContext) -> tuple[int, int]:
    """CPU (millicores) and memory (bytes) of the head and the submitter together."""
    row = _row(ctx)
    cpu = int(row["head_cpu_millicores"]) + int(row["submitter_cpu_millicores"])
    memory = (int(row["head_memory_gib"]) + int(row["submitter_memory_gib"])) * GIB
    return cpu, memory


def _worker_ctx(ctx: RenderContext) -> RenderContext:
    """The worker pod is the PyTorchJob pod less the head and the submitter, so that those two
    fit beside one worker within the same share of the node's allocatable."""
    cpu, memory = _side_pods(ctx)
    return dataclasses.replace(ctx, cpu_millicores=ctx.cpu_millicores - cpu,
                               memory_bytes=ctx.memory_bytes - memory)


def _head_ctx(ctx: RenderContext) -> RenderContext:
    """The head runs on one of the job's GPU nodes, beside a worker (the worker is sized to
    leave it room), rather than on a CPU NodePool: a second NodePool would need its own
    EC2NodeClass, limits and checks, and a CPU node for the whole job costs more than the few
    cores the head takes from a GPU node whose GPUs the workers use anyway."""
    row = _row(ctx)
    return dataclasses.replace(ctx, cpu_millicores=int(row["head_cpu_millicores"]),
                               memory_bytes=int(row["head_memory_gib"]) * GIB,
                               shm_bytes=int(row["head_shm_gib"]) * GIB)


def _ray_pod(ctx: RenderContext, name: str, resources: dict[str, Any]) -> dict[str, Any]:
    """The training pod spec as a Ray pod: KubeRay writes the container's command (``ray
    start``), so none is set here."""
    spec = pod_spec(ctx)
    container = spec["containers"][0]
    for key in ("command", "args", "ports"):
        container.pop(key)
    container.update({"name": name, "resources": resources})
    return spec


def _head_resources(ctx: RenderContext) -> dict[str, Any]:
    amounts = {"cpu": cpu_quantity(ctx.cpu_millicores), "memory": quantity(ctx.memory_bytes),
               "ephemeral-storage": quantity(TMP_BYTES + WORK_BYTES)}
    return {"requests": dict(amounts), "limits": dict(amounts)}


def _worker_resources(ctx: RenderContext) -> dict[str, Any]:
    resources: dict[str, Any] = pod_spec(ctx)["containers"][0]["resources"]
    return resources


def _template(ctx: RenderContext, spec: dict[str, Any], reason: str) -> dict[str, Any]:
    # Karpenter leaves these nodes alone while the job runs (a voluntary disruption costs the
    # work since the last checkpoint). checkov does not read RayJobs: its skips are for a scan
    # of the pods.
    skips = {**SCANNER_SKIPS, **probe_skips(reason)}
    return {"metadata": {"labels": dict(ctx.labels),
                         "annotations": {"karpenter.sh/do-not-disrupt": "true", **skips}},
            "spec": spec}


def _head_group(ctx: RenderContext) -> dict[str, Any]:
    row = _row(ctx)
    head = _head_ctx(ctx)
    spec = _ray_pod(head, "ray-head", _head_resources(head))
    spec["containers"][0]["ports"] = [
        {"name": "gcs-server", "containerPort": int(row["gcs_port"]), "protocol": "TCP"},
        {"name": "dashboard", "containerPort": int(row["dashboard_port"]), "protocol": "TCP"},
        {"name": "client", "containerPort": int(row["client_port"]), "protocol": "TCP"}]
    # num-cpus 0: Ray schedules no task or actor on the head, only the driver runs there.
    return {"rayStartParams": {"num-cpus": "0", "dashboard-host": "0.0.0.0"},
            "template": _template(ctx, spec, _RAY_NODE)}


def _worker_group(ctx: RenderContext) -> dict[str, Any]:
    nodes = layout_of(ctx).nodes
    worker = _worker_ctx(ctx)
    spec = _ray_pod(worker, "ray-worker", _worker_resources(worker))
    return {"groupName": WORKER_GROUP, "replicas": nodes, "minReplicas": nodes,
            "maxReplicas": nodes, "numOfHosts": 1, "rayStartParams": {},
            "template": _template(ctx, spec, _RAY_NODE)}


def _submitter(ctx: RenderContext) -> dict[str, Any]:
    """KubeRay's submitter pod (``ray job submit``; KubeRay sets its command), given here so
    that it carries the job's labels (the NetworkPolicy admits it to the head's dashboard),
    the security defaults, and a node the render provides."""
    row = _row(ctx)
    amounts = {"cpu": cpu_quantity(int(row["submitter_cpu_millicores"])),
               "memory": quantity(int(row["submitter_memory_gib"]) * GIB),
               "ephemeral-storage": quantity(TMP_BYTES)}
    base = pod_spec(ctx)
    spec = {"serviceAccountName": ctx.name, "automountServiceAccountToken": False,
            "restartPolicy": "Never", "securityContext": base["securityContext"],
            "nodeSelector": base["nodeSelector"], "tolerations": base["tolerations"],
            "containers": [{"name": "ray-job-submitter", "image": ctx.image(layout_of(ctx)
                                                                             .image_key),
                            "imagePullPolicy": "IfNotPresent",
                            "env": [{"name": "HOME", "value": "/tmp"}],
                            "resources": {"requests": dict(amounts), "limits": dict(amounts)},
                            "securityContext": security(),
                            "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}]}],
            "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": quantity(TMP_BYTES)}}]}
    return _template(ctx, spec, "the submitter runs `ray job submit` and follows the job's "
                     "logs; it serves nothing")


def ray_job(ctx: RenderContext) -> dict[str, Any]:
    """A RayJob whose cluster is the plan's nodes; the driver is the user's Ray Train script."""
    row = _row(ctx)
    return {
        "apiVersion": "ray.io/v1", "kind": "RayJob",
        "metadata": {"name": ctx.name, "namespace": ctx.namespace, "labels": dict(ctx.labels),
                     "annotations": {"eksplain.io/model": ctx.model_id,
                                     "eksplain.io/instance-type": ctx.instance.name}},
        "spec": {
            "entrypoint": f"python {row['entrypoint']}",
            "submissionMode": "K8sJobMode",
            "shutdownAfterJobFinishes": True,
            "ttlSecondsAfterFinished": int(row["ttl_after_finished_s"]),
            # A failed job is retried on a new cluster; the script resumes from its checkpoint.
            "backoffLimit": 3,
            "submitterPodTemplate": _submitter(ctx),
            "rayClusterSpec": {"rayVersion": str(row["ray_version"]),
                               "enableInTreeAutoscaling": False,
                               "headGroupSpec": _head_group(ctx),
                               "workerGroupSpecs": [_worker_group(ctx)]},
        },
    }


def ray_network_policy(ctx: RenderContext) -> dict[str, Any]:
    """The training NetworkPolicy, plus the KubeRay operator (in whatever namespace it runs)
    to the head's dashboard port: the operator follows the job's status through the
    dashboard's HTTP API, and a job it cannot see never finishes."""
    policy = network_policy(ctx)
    port = int(_row(ctx)["dashboard_port"])
    policy["spec"]["ingress"].append({
        "from": [{"namespaceSelector": {}, "podSelector": {"matchLabels":
                                                           dict(KUBERAY_OPERATOR_LABELS)}}],
        "ports": [{"protocol": "TCP", "port": port}]})
    return policy
