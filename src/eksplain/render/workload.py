"""The serving workload as Kubernetes objects: Namespace, quota, Deployment, Service and the
objects around them (autoscaler, disruption budget, network policy, metrics scrape).

Each builder returns one plain dict in the order ``kubectl get -o yaml`` shows its fields.
"""

from __future__ import annotations

import shlex
from typing import Any

from eksplain.autoscaling import hpa_behavior
from eksplain.render import triton
from eksplain.render.context import (
    CACHE_MOUNT,
    PROBE_PERIOD_S,
    ROLE_LABEL,
    TOKEN_MOUNT,
    WORK_MOUNT,
    RenderContext,
)
from eksplain.render.exposure import nlb_service_fields
from eksplain.units import GIB, MIB

__all__ = [
    "deployment",
    "disruption_budget",
    "env",
    "hpa",
    "leader_worker_set",
    "named_ports",
    "namespace",
    "network_policy",
    "pod_spec",
    "pool_taint",
    "probe_skips",
    "quantity",
    "resource_quota",
    "resources",
    "scale_query",
    "scaled_object",
    "security",
    "server_mounts",
    "service",
    "service_account",
    "service_monitor",
]

__all__ += ["CACHE_MOUNT", "TOKEN_MOUNT", "WORK_MOUNT"]
RAY_PORT = 6379  # Ray's default GCS port
TMP_BYTES = 1 * GIB
WORK_BYTES = 10 * GIB  # torch.compile and Triton kernel caches, vLLM's own cache


# checkov checks that do not apply, each with its reason (checkov reads these annotations).
SCANNER_SKIPS = {
    "checkov.io/skip1": "CKV_K8S_43=image digests cannot be looked up offline; the tag is pinned "
                        "in eksplain/data/images.yaml: pin your registry mirror's digest",
    "checkov.io/skip2": "CKV_K8S_15=the tag is pinned, so IfNotPresent runs the same image "
                        "without asking the registry again for a 10-20 GB image on every start",
}




def probe_skips(reason: str) -> dict[str, str]:
    """checkov's probe checks skipped, with the reason, for a pod that serves no endpoint."""
    return {"checkov.io/skip3": f"CKV_K8S_8={reason}", "checkov.io/skip4": f"CKV_K8S_9={reason}"}


def quantity(num_bytes: int) -> str:
    """Bytes as a Kubernetes quantity in whole MiB or GiB."""
    if num_bytes % (1024 * MIB) == 0:
        return f"{num_bytes // (1024 * MIB)}Gi"
    return f"{-(-num_bytes // MIB)}Mi"


def _meta(ctx: RenderContext, name: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"name": name or ctx.name, "namespace": ctx.namespace, "labels": dict(ctx.labels),
            **extra}


def namespace(ctx: RenderContext) -> dict[str, Any]:
    # The pods meet the "restricted" Pod Security Standard, so the namespace enforces it.
    labels = {**ctx.labels, "pod-security.kubernetes.io/enforce": "restricted"}
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": ctx.namespace, "labels": labels}}


def resource_quota(ctx: RenderContext) -> dict[str, Any]:
    """Accelerators for the autoscaler's maximum: rollouts replace pods without a surge (see the
    Deployment's strategy), so that is the most the namespace ever requests. Without
    accelerators (a CPU plan), the same bound on CPU and memory."""
    pods = ctx.replicas_max * ctx.group_size
    if ctx.device_resource is None:
        hard = {"requests.cpu": cpu_quantity(pods * ctx.cpu_millicores),
                "requests.memory": quantity(pods * ctx.memory_bytes)}
        return {"apiVersion": "v1", "kind": "ResourceQuota",
                "metadata": _meta(ctx, f"{ctx.name}-compute"), "spec": {"hard": hard}}
    return {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": _meta(ctx, f"{ctx.name}-gpus"),
            "spec": {"hard": {f"requests.{ctx.device_resource}": str(pods * ctx.gpus_per_pod)}}}


def service_account(ctx: RenderContext) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(ctx),
            "automountServiceAccountToken": False}


def security() -> dict[str, Any]:
    return {"allowPrivilegeEscalation": False, "privileged": False,
            "readOnlyRootFilesystem": True, "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]}}


def cpu_quantity(millicores: int) -> str:
    return str(millicores // 1000) if millicores % 1000 == 0 else f"{millicores}m"


def resources(ctx: RenderContext) -> dict[str, Any]:
    """Requests = limits (Guaranteed QoS). Ephemeral storage covers the writable emptyDirs:
    /tmp, the work directory and, for the S3 cache, the local copy of the weights (and the
    TensorRT-LLM engine built beside it)."""
    cache = ctx.cache_volume_bytes if ctx.cache == "s3" else 0
    amounts = {"cpu": cpu_quantity(ctx.cpu_millicores), "memory": quantity(ctx.memory_bytes),
               "ephemeral-storage": quantity(TMP_BYTES + WORK_BYTES + cache)}
    if ctx.device_resource is not None:
        amounts[ctx.device_resource] = str(ctx.gpus_per_pod)
    return {"requests": dict(amounts), "limits": dict(amounts)}


def _probe(ctx: RenderContext, period_s: int, failures: int, path_key: str = "health_path",
           ) -> dict[str, Any]:
    path = ctx.engine.get(path_key) or ctx.engine["health_path"]
    return {"httpGet": {"path": path, "port": "http"},
            "periodSeconds": period_s, "timeoutSeconds": 5, "failureThreshold": failures}


def env(ctx: RenderContext) -> list[dict[str, Any]]:
    container = ctx.engine.get("container", "vllm")
    # the OpenAI Triton compiler's kernel cache (torch.compile, SGLang's kernels), not the
    # Triton server
    kernels = [{"name": "TRITON_CACHE_DIR", "value": f"{WORK_MOUNT}/triton"}]
    vllm = [
        {"name": "VLLM_CACHE_ROOT", "value": f"{WORK_MOUNT}/vllm"}, *kernels,
        {"name": "VLLM_NO_USAGE_STATS", "value": "1"},
    ] if container == "vllm" else kernels if container == "sglang" else []
    return [
        # The token is a file, not an environment variable (which leaks into logs and child
        # processes); huggingface_hub reads it from HF_TOKEN_PATH.
        {"name": "HF_TOKEN_PATH", "value": f"{TOKEN_MOUNT}/HF_TOKEN"},
        # The S3 copy is mounted read-only, so the hub cache then goes to the work directory.
        {"name": "HF_HOME", "value": f"{WORK_MOUNT if ctx.cache == 's3' else CACHE_MOUNT}/hf"},
        {"name": "HOME", "value": f"{WORK_MOUNT}/home"},
        {"name": "XDG_CACHE_HOME", "value": WORK_MOUNT},
        *vllm,
        *({"name": k, "value": str(v)} for k, v in (ctx.engine.get("env") or {}).items()),
    ]


def _model_arg(ctx: RenderContext) -> str:
    """The S3 cache is copied to a local directory; the shared caches hold the HF hub layout."""
    return f"{CACHE_MOUNT}/{ctx.model_id}" if ctx.cache == "s3" else ctx.model_id


def named_ports(ctx: RenderContext) -> list[tuple[str, int]]:
    """(name, port) the server listens on: HTTP, and gRPC and metrics where the engine serves
    them apart."""
    row = ctx.engine
    return [(name, int(row[key])) for name, key in
            (("http", "port"), ("grpc", "grpc_port"), ("metrics", "metrics_port")) if key in row]


def _command(ctx: RenderContext) -> tuple[list[str], list[str]]:
    """The server's command and arguments, per engine."""
    if ctx.engine_key == "triton_trtllm":
        return triton.server_command(ctx)
    if ctx.engine_key == "sglang":
        return (["python3", "-m", "sglang.launch_server"],
                ["--model-path", _model_arg(ctx), *ctx.engine_args])
    if ctx.engine_key == "tei_cpu":
        hub = f"{WORK_MOUNT if ctx.cache == 's3' else CACHE_MOUNT}/hf"
        return (["text-embeddings-router"],
                ["--model-id", _model_arg(ctx), *ctx.engine_args, "--huggingface-hub-cache", hub])
    return ["vllm", "serve"], [_model_arg(ctx), *ctx.engine_args]


def server_mounts(ctx: RenderContext) -> list[dict[str, Any]]:
    shm = [{"name": "dshm", "mountPath": "/dev/shm"}] if ctx.shm_bytes else []
    return [{"name": "model-cache", "mountPath": CACHE_MOUNT, "readOnly": ctx.cache == "s3"},
            *shm,
            {"name": "tmp", "mountPath": "/tmp"},
            {"name": "work", "mountPath": WORK_MOUNT},
            {"name": "hf-token", "mountPath": TOKEN_MOUNT, "readOnly": True}]


def _server(ctx: RenderContext) -> dict[str, Any]:
    command, args = _command(ctx)
    return {
        "name": str(ctx.engine.get("container") or "vllm"), "image": ctx.image(ctx.engine_key),
        "imagePullPolicy": "IfNotPresent", "command": command, "args": args,
        "ports": [{"name": name, "containerPort": port, "protocol": "TCP"}
                  for name, port in named_ports(ctx)],
        "env": env(ctx), "resources": resources(ctx),
        "startupProbe": _probe(ctx, PROBE_PERIOD_S, ctx.startup_failures),
        "readinessProbe": _probe(ctx, 5, 3),
        "livenessProbe": _probe(ctx, 10, 3, "live_path"),
        "securityContext": security(), "volumeMounts": server_mounts(ctx),
    }


def _volumes(ctx: RenderContext, cache_volume: dict[str, Any]) -> list[dict[str, Any]]:
    # No /dev/shm volume for a server that shares no memory between processes (TEI on CPU):
    # the container runtime's default 64 MiB stays.
    shm = ([{"name": "dshm", "emptyDir": {"medium": "Memory",
                                         "sizeLimit": quantity(ctx.shm_bytes)}}]
           if ctx.shm_bytes else [])
    return [
        {"name": "model-cache", **cache_volume},
        *shm,
        {"name": "tmp", "emptyDir": {"sizeLimit": quantity(TMP_BYTES)}},
        {"name": "work", "emptyDir": {"sizeLimit": quantity(WORK_BYTES)}},
        # Optional when the weights come from S3: only gated downloads need the token.
        {"name": "hf-token", "secret": {"secretName": ctx.options.hf_token_secret,
                                        "optional": ctx.cache == "s3", "defaultMode": 0o440}},
    ]


def pool_taint(ctx: RenderContext) -> tuple[str, str]:
    """(key, value) of the NodePool's NoSchedule taint: its accelerator resource, or on CPU
    nodes the pool's own label, so that other pods stay off the nodes the plan sized."""
    return (ctx.device_resource, "true") if ctx.device_resource else ctx.node_label


def pod_spec(ctx: RenderContext, cache: tuple[dict[str, Any], list[dict[str, Any]]],
              ) -> dict[str, Any]:
    cache_volume, init = cache
    uid = int(ctx.engine["user_id"])
    key, value = ctx.node_label
    if ctx.engine_build is not None:
        init = [*init, triton.engine_build_container(ctx)]
    spec: dict[str, Any] = {
        "serviceAccountName": ctx.name, "automountServiceAccountToken": False,
        "securityContext": {"runAsNonRoot": True, "runAsUser": uid, "runAsGroup": uid,
                            "fsGroup": uid, "seccompProfile": {"type": "RuntimeDefault"}},
        "nodeSelector": {key: value,
                         "node.kubernetes.io/instance-type": ctx.instance.name,
                         "karpenter.sh/capacity-type": ctx.capacity_type},
        "tolerations": [{"key": pool_taint(ctx)[0], "operator": "Exists",
                         "effect": "NoSchedule"}],
        "topologySpreadConstraints": [{
            "maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": dict(ctx.selector)}}],
        # vLLM drains in-flight requests on SIGTERM; give long generations time to finish.
        "terminationGracePeriodSeconds": 60,
    }
    if init:
        spec["initContainers"] = init
    spec["containers"] = [_server(ctx)]
    spec["volumes"] = _volumes(ctx, cache_volume)
    return spec


def deployment(ctx: RenderContext, cache: tuple[dict[str, Any], list[dict[str, Any]]],
               ) -> dict[str, Any]:
    """The vLLM server; ``cache`` is the model-cache volume source and its init containers."""
    annotations = {
        "eksplain.io/model": ctx.model_id,
        "eksplain.io/instance-type": ctx.instance.name,
        **SCANNER_SKIPS,
    }
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": _meta(ctx, annotations=annotations),
        "spec": {
            "replicas": ctx.replicas_min,
            "selector": {"matchLabels": dict(ctx.selector)},
            # No surge: a rollout never asks for GPUs beyond the autoscaler's maximum.
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}},
            "template": {"metadata": {"labels": dict(ctx.labels)},
                         "spec": pod_spec(ctx, cache)},
        },
    }


def _ray_script(ctx: RenderContext, server: dict[str, Any]) -> str:
    """The leader starts Ray's head and then vLLM across the group (Ray executor); vLLM's
    multi-node guide: docs.vllm.ai .../serving/parallelism_scaling.html for the pinned version."""
    serve = shlex.join([*server["command"], *server["args"],
                        "--distributed-executor-backend", "ray"])
    return f"ray start --head --port={RAY_PORT} {_object_store(ctx)} && exec {serve}"


def _object_store(ctx: RenderContext) -> str:
    """Ray's object store in half of /dev/shm: its default (30 % of memory) would not fit and
    spill to /tmp; vLLM passes little through it."""
    return f"--object-store-memory={ctx.shm_bytes // 2}"


def leader_worker_set(ctx: RenderContext, cache: tuple[dict[str, Any], list[dict[str, Any]]],
                      ) -> dict[str, Any]:
    """One replica = one leader (the vLLM server, Ray head) and group_size - 1 workers (Ray
    workers that join the leader at LWS_LEADER_ADDRESS); every pod holds a node's GPUs."""
    leader, worker = pod_spec(ctx, cache), pod_spec(ctx, cache)
    server = leader["containers"][0]
    server["command"], server["args"] = ["bash", "-c"], [_ray_script(ctx, server)]
    node = worker["containers"][0]
    node["name"] = "ray-worker"
    node["command"] = ["bash", "-c"]
    node["args"] = [f'exec ray start --address="$LWS_LEADER_ADDRESS:{RAY_PORT}" '
                    f"{_object_store(ctx)} --block"]
    for key in ("startupProbe", "readinessProbe", "livenessProbe", "ports"):
        node.pop(key)
    def template(role: str, spec: dict[str, Any], skips: dict[str, str]) -> dict[str, Any]:
        # checkov does not read a LeaderWorkerSet; the skips are for a scan of its pods
        return {"metadata": {"labels": {**ctx.labels, ROLE_LABEL: role}, "annotations": skips},
                "spec": spec}

    worker_skips = {**SCANNER_SKIPS, **probe_skips(
        "a Ray worker serves no endpoint; the leader's probes cover the replica, and the group "
        "is recreated when any of its pods restarts")}

    return {
        "apiVersion": "leaderworkerset.x-k8s.io/v1", "kind": "LeaderWorkerSet",
        "metadata": _meta(ctx, annotations={"eksplain.io/model": ctx.model_id,
                                            "eksplain.io/instance-type": ctx.instance.name}),
        "spec": {
            "replicas": ctx.replicas_min,
            # the group starts, fails and restarts as one: a lost worker stops the server
            "leaderWorkerTemplate": {"size": ctx.group_size,
                                     "restartPolicy": "RecreateGroupOnPodRestart",
                                     "leaderTemplate": template("leader", leader,
                                                                dict(SCANNER_SKIPS)),
                                     "workerTemplate": template("worker", worker,
                                                                worker_skips)},
            "startupPolicy": "LeaderReady",
        },
    }


def service(ctx: RenderContext) -> dict[str, Any]:
    """ClusterIP, or an internal NLB when the spec exposes the server through one."""
    meta, spec = _meta(ctx), {"type": "ClusterIP"}
    if ctx.expose == "nlb":
        annotations, spec = nlb_service_fields(ctx)
        meta["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta,
            "spec": {**spec, "selector": dict(ctx.server_selector),
                     "ports": [{"name": name, "port": port, "targetPort": name,
                                "protocol": "TCP"} for name, port in named_ports(ctx)]}}


def network_policy(ctx: RenderContext) -> dict[str, Any]:
    """Ingress to the server's ports only (and, in a replica that spans nodes, between its own
    pods: Ray and NCCL); egress stays open (S3, the Hugging Face hub)."""
    ingress: list[dict[str, Any]] = [{"ports": [{"protocol": "TCP", "port": port}
                                                for _, port in named_ports(ctx)]}]
    if ctx.group_size > 1:
        ingress.append({"from": [{"podSelector": {"matchLabels": dict(ctx.selector)}}]})
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": _meta(ctx),
            "spec": {"podSelector": {"matchLabels": dict(ctx.selector)},
                     "policyTypes": ["Ingress"], "ingress": ingress}}


def disruption_budget(ctx: RenderContext) -> dict[str, Any]:
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": _meta(ctx),
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": dict(ctx.selector)}}}


def _target(ctx: RenderContext) -> dict[str, Any]:
    api_version, kind = ctx.workload_ref
    return {"apiVersion": api_version, "kind": kind, "name": ctx.name}


def _behavior() -> dict[str, Any]:
    # Scale up at once (a new replica takes minutes to start); scale down after five minutes
    # of lower load, the Kubernetes default window, so a lull does not drop warm replicas. The
    # values live in data/autoscaling.yaml, which the simulator reads too.
    return hpa_behavior()


def adapter_metric(ctx: RenderContext) -> str:
    """The per-pod metric name the Prometheus adapter serves for the plan's metric expression
    (``a + b``: one rule summing the gauges; see the rendered README). An engine whose
    series carries label matchers names its own (``adapter_metric`` in images.yaml)."""
    if ctx.engine.get("adapter_metric"):
        return str(ctx.engine["adapter_metric"])
    names = [m.strip().replace(":", "_") for m in ctx.scale_metric.split("+")]
    common = names[0]  # the shared prefix: vllm_num_requests_ (running, waiting)
    for n in names[1:]:
        while not n.startswith(common):
            common = common[:-1]
    return common + "_and_".join(n[len(common):] for n in names)


def hpa(ctx: RenderContext) -> dict[str, Any]:
    """Scale on the requests each pod holds (running + waiting), served per pod by the
    Prometheus adapter under ``adapter_metric`` (the rendered README gives the rule)."""
    return {
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": _meta(ctx),
        "spec": {
            "scaleTargetRef": _target(ctx),
            "minReplicas": ctx.replicas_min, "maxReplicas": ctx.replicas_max,
            "metrics": [{"type": "Pods", "pods": {
                "metric": {"name": adapter_metric(ctx)},
                "target": {"type": "AverageValue", "averageValue": str(ctx.scale_target)}}}],
            "behavior": _behavior(),
        },
    }


def _scoped(series: str, matchers: str) -> str:
    """A series selector (``name`` or ``name{a="b"}``) narrowed by more label matchers."""
    name, brace, rest = series.strip().partition("{")
    return f"{name}{{{matchers},{rest}" if brace else f"{name}{{{matchers}}}"


def scale_query(ctx: RenderContext) -> str:
    """The PromQL sum of the engine's metric over the Service's pods (what KEDA divides by the
    replicas and compares with the target)."""
    matchers = f'namespace="{ctx.namespace}",service="{ctx.name}"'
    return " + ".join(f"sum({_scoped(m, matchers)})" for m in ctx.scale_metric.split(" + "))


def scaled_object(ctx: RenderContext) -> dict[str, Any]:
    query = scale_query(ctx)
    return {
        "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": _meta(ctx),
        "spec": {
            "scaleTargetRef": _target(ctx),
            "minReplicaCount": ctx.replicas_min, "maxReplicaCount": ctx.replicas_max,
            "advanced": {"horizontalPodAutoscalerConfig": {"behavior": _behavior()}},
            "triggers": [{"type": "prometheus", "metricType": "AverageValue", "metadata": {
                "serverAddress": ctx.options.prometheus_url, "query": query,
                "threshold": str(ctx.scale_target)}}],
        },
    }


def service_monitor(ctx: RenderContext) -> dict[str, Any]:
    return {"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor",
            "metadata": _meta(ctx),
            "spec": {"selector": {"matchLabels": dict(ctx.selector)},
                     "endpoints": [{"port": "metrics" if "metrics_port" in ctx.engine
                                    else "http", "path": ctx.engine["metrics_path"],
                                    "interval": "15s"}]}}
