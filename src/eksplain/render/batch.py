"""Batch inference as a Kubernetes Job (batch/v1): the plan's replicas run at once, each an
indexed pod that runs vLLM's offline batch runner (``vllm run-batch``) on its shard of the
requests, and the Job stops at the spec's deadline.

    input    <data volume>/input/shard-<index>.jsonl   OpenAI batch format, one request a line
    output   <data volume>/output/shard-<index>.jsonl  one response a line

The pod is the serving pod without its server: the same image, engine flags (so the same
batch, ``--max-num-seqs``, that the plan sized), model cache, size and security context.
"""

from __future__ import annotations

from typing import Any

from eksplain.render.context import RenderContext
from eksplain.render.training import fsx_objects
from eksplain.render.workload import SCANNER_SKIPS, pod_spec

__all__ = ["DATA_MOUNT", "batch_job", "data_objects", "network_policy"]

DATA_MOUNT = "/data"
BACKOFF_PER_INDEX = 3  # a shard is retried this often before the Job counts it failed


def data_objects(ctx: RenderContext) -> list[dict[str, Any]]:
    """The shared volume for the request shards and their results (the smallest FSx for
    Lustre file system; the README says to grow it for large batches)."""
    return fsx_objects(ctx, f"{ctx.name}-batch", 0)


def _runner(ctx: RenderContext, pod: dict[str, Any]) -> None:
    """Turn the server container into the batch runner, in place."""
    server = pod["containers"][0]
    shard = "shard-$(SHARD).jsonl"
    server["name"] = "vllm"
    server["command"] = ["vllm", "run-batch"]
    model, *flags = server["args"]
    server["args"] = ["-i", f"{DATA_MOUNT}/input/{shard}", "-o", f"{DATA_MOUNT}/output/{shard}",
                      "--model", model, *_without_port(flags)]
    index = "metadata.annotations['batch.kubernetes.io/job-completion-index']"
    server["env"] = [{"name": "SHARD", "valueFrom": {"fieldRef": {"fieldPath": index}}},
                     *server["env"]]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        server.pop(probe)
    server.pop("ports")
    server["volumeMounts"].append({"name": "data", "mountPath": DATA_MOUNT})
    pod["volumes"].append({"name": "data",
                           "persistentVolumeClaim": {"claimName": f"{ctx.name}-batch"}})
    pod["restartPolicy"] = "Never"
    pod.pop("terminationGracePeriodSeconds")


def _without_port(flags: list[str]) -> list[str]:
    """The server's flags less ``--port`` (run-batch serves no API)."""
    out: list[str] = []
    skip = False
    for flag in flags:
        if skip:
            skip = False
        elif flag == "--port":
            skip = True
        else:
            out.append(flag)
    return out


def batch_job(ctx: RenderContext, cache: tuple[dict[str, Any], list[dict[str, Any]]],
              deadline_s: float) -> dict[str, Any]:
    """``replicas`` indexed pods at once; each shard is retried on its own, and the Job is
    stopped at the deadline, whatever is left."""
    pod = pod_spec(ctx, cache)
    _runner(ctx, pod)
    annotations = {"eksplain.io/model": ctx.model_id,
                   "eksplain.io/instance-type": ctx.instance.name, **SCANNER_SKIPS}
    return {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": ctx.name, "namespace": ctx.namespace, "labels": dict(ctx.labels),
                     "annotations": annotations},
        "spec": {
            "parallelism": ctx.replicas_max, "completions": ctx.replicas_max,
            "completionMode": "Indexed", "backoffLimitPerIndex": BACKOFF_PER_INDEX,
            "activeDeadlineSeconds": round(deadline_s),
            "template": {"metadata": {"labels": dict(ctx.labels)}, "spec": pod},
        },
    }


def network_policy(ctx: RenderContext) -> dict[str, Any]:
    """No ingress at all: the runner serves nothing. Egress stays open (S3, the hub)."""
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": ctx.name, "namespace": ctx.namespace,
                         "labels": dict(ctx.labels)},
            "spec": {"podSelector": {"matchLabels": dict(ctx.selector)},
                     "policyTypes": ["Ingress"]}}
