"""Cross-object checks: what schemas cannot see, and what leaves pods Pending in a real cluster.

    nodes        every pod's nodeSelector is provided by an emitted NodePool (its template
                 labels or single-valued In requirements), the pod tolerates its taints, and
                 the NodePool's limits leave room for the nodes the maximum replicas need
                 (pods without devices, such as a Ray head, packed beside the device pods)
    capacity     a pod's requests (EFA interfaces included) fit the allocatable of the
                 NodePool's instance type
    quota        the namespace's ResourceQuota covers the most the autoscaler asks for
    launchers    a PyTorchJob starts one torchrun process per GPU its pods request; torchrun
                 under a JobSet points at the JobSet's first pod; a RayJob's worker groups are
                 fixed in size and its cluster is deleted when the job ends
    references   PVC, StorageClass, Secret, ConfigMap and ServiceAccount names resolve
    scaling      HPA / KEDA targets and PDB / Service / NetworkPolicy / ServiceMonitor selectors
                 match the pods, and named ports exist

Secrets the user must create (the Hugging Face token) are passed in as ``external`` names.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from eksplain.hardware import HardwareCatalog, InstanceType, Resources
from eksplain.render.references import (
    PodTemplate,
    check_references,
    check_selectors,
    kind_of,
    namespace_of,
    parse_quantity,
    pod_templates,
)
from eksplain.render.schemas import Finding, object_ref

__all__ = ["check_consistency", "pod_requests"]

Obj = dict[str, Any]


def _amount(name: str, value: object) -> int:
    return parse_quantity(value, millis=name == "cpu")


def pod_requests(pod: Obj) -> dict[str, int]:
    """A pod's effective requests: the larger of its containers' sum and any init container
    (CPU in millicores, memory in bytes, extended resources as counts)."""
    total: dict[str, int] = {}
    for c in pod.get("containers", []):
        for name, value in (c.get("resources", {}).get("requests") or {}).items():
            total[name] = total.get(name, 0) + _amount(name, value)
    for c in pod.get("initContainers", []):
        for name, value in (c.get("resources", {}).get("requests") or {}).items():
            total[name] = max(total.get(name, 0), _amount(name, value))
    return total


def _provided_labels(pool: Obj) -> dict[str, str]:
    template = pool["spec"]["template"]
    labels = dict((template.get("metadata") or {}).get("labels") or {})
    for req in template["spec"].get("requirements", []):
        if req.get("operator") == "In" and len(req.get("values", [])) == 1:
            labels[req["key"]] = req["values"][0]
    return labels


def _tolerates(tolerations: list[Obj], taint: Obj) -> bool:
    for t in tolerations:
        if t.get("key") not in (None, taint["key"]):
            continue
        if t.get("effect") not in (None, "", taint["effect"]):
            continue
        if t.get("operator") == "Exists" or t.get("value") == taint.get("value"):
            return True
    return False


def _pool_for(pod: Obj, pools: list[Obj]) -> Obj | None:
    selector = pod.get("nodeSelector") or {}
    for pool in pools:
        labels = _provided_labels(pool)
        taints = pool["spec"]["template"]["spec"].get("taints", [])
        if (all(labels.get(k) == v for k, v in selector.items())
                and all(_tolerates(pod.get("tolerations", []), t) for t in taints)):
            return pool
    return None


def _check_nodes(objs: list[Obj], catalog: HardwareCatalog) -> Iterator[Finding]:
    pools = kind_of(objs, "NodePool")
    placed: dict[tuple[str, str], list[PodTemplate]] = {}
    for pt in pod_templates(objs):
        pool = _pool_for(pt.spec, pools)
        if pool is None:
            yield Finding(object_ref(pt.workload), f"{pt.path}.spec.nodeSelector",
                          f"no NodePool in the render provides {pt.spec.get('nodeSelector') or {}} "
                          "with taints the pod tolerates: the pod would stay Pending; make the "
                          "selector match a NodePool's template labels or requirements, or add "
                          "the matching toleration")
            continue
        yield from _check_capacity(pt, pool, catalog)
        key = (pool["metadata"]["name"], object_ref(pt.workload))
        placed.setdefault(key, []).append(pt)
    for (pool_name, _), templates in sorted(placed.items()):
        pool = next(p for p in pools if p["metadata"]["name"] == pool_name)
        yield from _check_pool_limits(objs, templates, pool, catalog)


def _instance_of(pool: Obj, catalog: HardwareCatalog) -> InstanceType | None:
    name = _provided_labels(pool).get("node.kubernetes.io/instance-type")
    return next((i for i in catalog.instances if i.name == name), None)


def _check_capacity(pt: PodTemplate, pool: Obj, catalog: HardwareCatalog) -> Iterator[Finding]:
    inst = _instance_of(pool, catalog)
    if inst is None:
        return
    limits = _amounts(inst.allocatable)
    for name, asked in sorted(pod_requests(pt.spec).items()):
        have = limits.get(name)
        if have is not None and asked > have:
            yield Finding(object_ref(pt.workload),
                          f"{pt.path}.spec.containers[*].resources.requests.{name}",
                          f"the pod requests {asked:,} ({name}) but {inst.name} has {have:,} "
                          f"allocatable (NodePool/{pool['metadata']['name']}): lower the request "
                          "or choose a larger instance type")


def _amounts(res: Resources) -> dict[str, int]:
    """Resources keyed as in a pod's requests (CPU in millicores, memory in bytes)."""
    return {"cpu": res.cpu_millicores, "memory": res.memory_bytes, **dict(res.extended)}


def _nodes_needed(objs: list[Obj], pt: PodTemplate, have: dict[str, int]) -> int:
    """Nodes the template's maximum pods need, packed by their accelerator, CPU and memory."""
    asked = {k: v for k, v in pod_requests(pt.spec).items() if v > 0 and k in have}
    per_node = min((have[k] // v for k, v in asked.items()), default=1)
    if per_node < 1:
        return 0  # a pod that fits no node is reported by _check_capacity
    return math.ceil(_max_replicas(objs, pt) / per_node)


def _uses_devices(pt: PodTemplate) -> bool:
    """Whether the pod asks for an extended resource (GPUs, Neuron devices, EFA)."""
    return any(v > 0 and k not in ("cpu", "memory", "ephemeral-storage", "pods")
               for k, v in pod_requests(pt.spec).items())


def _pool_nodes(objs: list[Obj], templates: list[PodTemplate], have: dict[str, int]) -> int:
    """Nodes a workload's templates need on one NodePool: the device pods packed by their own
    requests, then the pods without devices (a Ray head, a job submitter) first-fit into what
    those nodes leave free, on nodes of their own when they do not fit."""
    devices = [pt for pt in templates if _uses_devices(pt)]
    nodes = sum(_nodes_needed(objs, pt, have) for pt in devices)
    free = [_left_on_node(pt, have) for pt in devices
            for _ in range(_nodes_needed(objs, pt, have))]
    for pt in (pt for pt in templates if not _uses_devices(pt)):
        asked = {k: v for k, v in pod_requests(pt.spec).items() if k in have}
        for _ in range(_max_replicas(objs, pt)):
            node = next((n for n in free if all(n.get(k, 0) >= v for k, v in asked.items())),
                        None)
            if node is None:
                node = dict(have)
                free.append(node)
                nodes += 1
            for k, v in asked.items():
                node[k] = node.get(k, 0) - v
    return nodes


def _left_on_node(pt: PodTemplate, have: dict[str, int]) -> dict[str, int]:
    """What a node full of the template's pods leaves free."""
    asked = {k: v for k, v in pod_requests(pt.spec).items() if v > 0 and k in have}
    per_node = min((have[k] // v for k, v in asked.items()), default=1)
    return {k: have[k] - per_node * asked.get(k, 0) for k in have}


def _check_pool_limits(objs: list[Obj], templates: list[PodTemplate], pool: Obj,
                       catalog: HardwareCatalog) -> Iterator[Finding]:
    """Karpenter stops launching nodes at the NodePool's limits (counted in node capacity):
    the nodes that a workload's maximum replicas need (all its pod templates on this pool)
    must fit under them."""
    inst = _instance_of(pool, catalog)
    limits = pool["spec"].get("limits") or {}
    if inst is None or not limits:
        return
    have = _amounts(inst.allocatable)
    nodes = _pool_nodes(objs, templates, have)
    pods = sum(_max_replicas(objs, pt) for pt in templates)
    capacity = _amounts(inst.capacity)
    workload = object_ref(templates[0].workload)
    for name, value in sorted(limits.items()):
        need = capacity.get(name, 0) * nodes
        if need > _amount(name, value):
            yield Finding(object_ref(pool), f"spec.limits.{name}",
                          f"allows {value} but {workload} needs {nodes} {inst.name} nodes at "
                          f"its maximum replicas ({pods} pods), {need:,} ({name}): raise the "
                          "limit or lower the replicas")


def _max_replicas(objs: list[Obj], pt: PodTemplate) -> int:
    """The template's pods, or its autoscaler's maximum when one targets the workload."""
    top = pt.pods
    name = pt.workload["metadata"]["name"]
    for scaler in kind_of(objs, "HorizontalPodAutoscaler") + kind_of(objs, "ScaledObject"):
        ref = scaler["spec"]["scaleTargetRef"]
        if ref["name"] == name and ref.get("kind", "Deployment") == pt.workload.get("kind"):
            top = max(top, pt.per_replica * int(scaler["spec"].get("maxReplicas")
                                                or scaler["spec"].get("maxReplicaCount") or 0))
    return top


def _check_quota(objs: list[Obj]) -> Iterator[Finding]:
    for quota in kind_of(objs, "ResourceQuota"):
        for key, value in sorted(quota["spec"]["hard"].items()):
            if not key.startswith("requests."):
                continue
            resource = key.removeprefix("requests.")
            need = sum(_max_replicas(objs, pt) * pod_requests(pt.spec).get(resource, 0)
                       for pt in pod_templates(objs)
                       if namespace_of(pt.workload) == namespace_of(quota))
            if need > _amount(resource, value):
                yield Finding(object_ref(quota), f"spec.hard.{key}",
                              f"allows {value} but the workloads ask for {need} at their "
                              f"maximum replicas: raise the quota to at least {need}")


def _master_address(job_set: Obj) -> str:
    """The stable DNS name of a JobSet's first pod: <jobset>-<job>-<job index>-<pod index>
    under the JobSet's subdomain (its name unless set)."""
    name = job_set["metadata"]["name"]
    subdomain = (job_set["spec"].get("network") or {}).get("subdomain") or name
    return f"{name}-{job_set['spec']['replicatedJobs'][0]['name']}-0-0.{subdomain}"


def _check_rendezvous(objs: list[Obj]) -> Iterator[Finding]:
    """torchrun under a JobSet reaches rank 0 by its DNS name: a wrong name hangs every rank."""
    for job_set in kind_of(objs, "JobSet"):
        expected = _master_address(job_set)
        for pt in pod_templates([job_set]):
            for i, c in enumerate(pt.spec.get("containers", [])):
                args = [str(a) for a in c.get("args") or []]
                if "--master-addr" not in args:
                    continue
                given = args[args.index("--master-addr") + 1]
                if given != expected:
                    yield Finding(object_ref(job_set), f"{pt.path}.spec.containers[{i}].args",
                                  f"--master-addr {given} is not the JobSet's first pod: "
                                  f"use {expected}")


def _check_ray_jobs(objs: list[Obj]) -> Iterator[Finding]:
    """A training RayJob's cluster is the plan's nodes, no more and no fewer, and goes away
    when the job ends: KubeRay's default keeps it, and its GPUs, until someone deletes it."""
    for job in kind_of(objs, "RayJob"):
        spec = job["spec"]
        if not spec.get("shutdownAfterJobFinishes"):
            yield Finding(object_ref(job), "spec.shutdownAfterJobFinishes",
                          "is not true: the Ray cluster and its GPUs outlive the job; set it "
                          "(with ttlSecondsAfterFinished)")
        groups = (spec.get("rayClusterSpec") or {}).get("workerGroupSpecs") or []
        for i, group in enumerate(groups):
            bounds = [group.get(k) for k in ("replicas", "minReplicas", "maxReplicas")]
            if len(set(bounds)) != 1:
                yield Finding(object_ref(job), f"spec.rayClusterSpec.workerGroupSpecs[{i}]",
                              f"replicas, minReplicas and maxReplicas are {bounds}: a training "
                              "job needs a fixed set of nodes; set all three to its nodes")


def _check_launchers(objs: list[Obj]) -> Iterator[Finding]:
    """torchrun starts ``nprocPerNode`` ranks per pod, one per GPU: more ranks than the pod's
    GPUs share a device (or fail), fewer leave GPUs idle."""
    yield from _check_rendezvous(objs)
    yield from _check_ray_jobs(objs)
    for job in kind_of(objs, "PyTorchJob"):
        procs = job["spec"].get("nprocPerNode")
        if procs is None or not str(procs).isdigit():
            continue
        for pt in pod_templates([job]):
            gpus = pod_requests(pt.spec).get("nvidia.com/gpu")
            if gpus is not None and gpus != int(procs):
                yield Finding(object_ref(job), "spec.nprocPerNode",
                              f"starts {procs} processes per pod but {pt.path} requests {gpus} "
                              "nvidia.com/gpu: set nprocPerNode (and torchrun's "
                              "--nproc-per-node) to the pod's GPUs")
                break


def check_consistency(objects: tuple[Obj, ...], catalog: HardwareCatalog,
                      external_secrets: tuple[str, ...] = ()) -> list[Finding]:
    """Every cross-object problem, in a stable order."""
    objs = list(objects)
    found = [*_check_nodes(objs, catalog), *_check_quota(objs), *_check_launchers(objs),
             *check_references(objs, external_secrets), *check_selectors(objs)]
    return sorted(found, key=lambda f: (f.object, f.field, f.message))
