"""Cross-object checks on names and selectors: every reference resolves to an object of the
render (or to a Secret the user is told to create), and every selector selects the pods.
Also the Kubernetes quantity parser the checks share."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from eksplain.render.schemas import Finding, object_ref

__all__ = ["PodTemplate", "check_references", "check_selectors", "kind_of", "parse_quantity",
           "pod_templates"]

Obj = dict[str, Any]
SELECTOR_KINDS = ("Deployment", "StatefulSet", "DaemonSet")  # a Job's selector is generated
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
_DECIMAL = {"k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}


def parse_quantity(value: object, millis: bool = False) -> int:
    """A Kubernetes quantity as an integer (in thousandths when ``millis``: CPU millicores)."""
    text = str(value)
    scale = 1000 if millis else 1
    if text.endswith("m"):
        return int(text[:-1]) * scale // 1000
    for suffix, factor in (*_BINARY.items(), *_DECIMAL.items()):
        if text.endswith(suffix):
            return int(float(text[: -len(suffix)]) * factor * scale)
    return int(float(text) * scale)


def kind_of(objs: list[Obj], kind: str) -> list[Obj]:
    return [o for o in objs if o.get("kind") == kind]


def namespace_of(obj: Obj) -> str:
    return str(obj["metadata"].get("namespace", ""))


@dataclass(frozen=True)
class PodTemplate:
    """A pod template inside a workload: where it is, and how many of its pods run at once
    (before any autoscaler)."""

    workload: Obj
    template: Obj
    path: str  # the template's dotted path in the workload, e.g. spec.template
    pods: int
    per_replica: int = 1  # its pods per replica of the workload (an autoscaler scales these)

    @property
    def spec(self) -> Obj:
        result: Obj = self.template["spec"]
        return result


def _job_pods(job_spec: Obj) -> int:
    return int(job_spec.get("parallelism", 1))


def _templates_of(obj: Obj) -> Iterator[PodTemplate]:
    spec = obj.get("spec") or {}
    kind = obj.get("kind")
    if kind in ("Deployment", "StatefulSet", "DaemonSet"):
        yield PodTemplate(obj, spec["template"], "spec.template", int(spec.get("replicas", 1)))
    elif kind == "Job":
        yield PodTemplate(obj, spec["template"], "spec.template", _job_pods(spec))
    elif kind == "LeaderWorkerSet":
        yield from _lws_templates(obj)
    elif kind == "JobSet":
        for i, rjob in enumerate(spec["replicatedJobs"]):
            job = rjob["template"]["spec"]
            yield PodTemplate(obj, job["template"],
                              f"spec.replicatedJobs[{i}].template.spec.template",
                              int(rjob.get("replicas", 1)) * _job_pods(job))
    elif kind == "RayJob":
        yield from _ray_templates(obj)
    elif kind == "PyTorchJob":
        for role, replica in sorted(spec["pytorchReplicaSpecs"].items()):
            yield PodTemplate(obj, replica["template"],
                              f"spec.pytorchReplicaSpecs.{role}.template",
                              int(replica.get("replicas", 1)))


def _ray_templates(obj: Obj) -> Iterator[PodTemplate]:
    """A RayJob's pods: its submitter (when given), the head, and each worker group at its
    maximum (replicas, bounded by maxReplicas when set, times hosts per replica)."""
    spec = obj["spec"]
    if "submitterPodTemplate" in spec:
        yield PodTemplate(obj, spec["submitterPodTemplate"], "spec.submitterPodTemplate", 1)
    cluster = spec.get("rayClusterSpec") or {}
    base = "spec.rayClusterSpec"
    if "headGroupSpec" in cluster:
        yield PodTemplate(obj, cluster["headGroupSpec"]["template"],
                          f"{base}.headGroupSpec.template", 1)
    for i, group in enumerate(cluster.get("workerGroupSpecs") or []):
        top = max(int(group.get("replicas", 0)), int(group.get("maxReplicas", 0)))
        hosts = int(group.get("numOfHosts", 1))
        yield PodTemplate(obj, group["template"], f"{base}.workerGroupSpecs[{i}].template",
                          top * hosts, hosts)


def _lws_templates(obj: Obj) -> Iterator[PodTemplate]:
    """A LeaderWorkerSet's groups: one leader and size - 1 workers per replica (the worker
    template is the leader's too when no leader template is given)."""
    spec = obj["spec"]
    lwt = spec["leaderWorkerTemplate"]
    replicas, size = int(spec.get("replicas", 1)), int(lwt.get("size", 1))
    base = "spec.leaderWorkerTemplate"
    if "leaderTemplate" in lwt:
        yield PodTemplate(obj, lwt["leaderTemplate"], f"{base}.leaderTemplate", replicas)
        workers = size - 1
    else:
        workers = size
    if workers:
        yield PodTemplate(obj, lwt["workerTemplate"], f"{base}.workerTemplate",
                          replicas * workers, workers)


def pod_templates(objs: list[Obj]) -> Iterator[PodTemplate]:
    """Every pod template of every workload kind the render emits."""
    for obj in objs:
        yield from _templates_of(obj)


def _names(objs: list[Obj], kind: str, namespace: str | None) -> set[str]:
    return {o["metadata"]["name"] for o in kind_of(objs, kind)
            if namespace is None or namespace_of(o) == namespace}


def _secret_refs(pod: Obj) -> Iterator[tuple[str, str]]:
    for group in ("initContainers", "containers"):
        for i, c in enumerate(pod.get(group, [])):
            for j, env in enumerate(c.get("env", [])):
                ref = (env.get("valueFrom") or {}).get("secretKeyRef")
                if ref:
                    yield f"{group}[{i}].env[{j}].valueFrom.secretKeyRef.name", ref["name"]


def _secret_volumes(pod: Obj) -> Iterator[tuple[str, str]]:
    for i, vol in enumerate(pod.get("volumes", [])):
        if "secret" in vol:
            yield f"volumes[{i}].secret.secretName", vol["secret"]["secretName"]


def _check_pod_refs(objs: list[Obj], pt: PodTemplate,
                    external: tuple[str, ...]) -> Iterator[Finding]:
    workload, pod, at = pt.workload, pt.spec, f"{pt.path}.spec"
    ns = namespace_of(workload)
    where = object_ref(workload)
    claims, config_maps = _names(objs, "PersistentVolumeClaim", ns), _names(objs, "ConfigMap", ns)
    for i, vol in enumerate(pod.get("volumes", [])):
        claim = (vol.get("persistentVolumeClaim") or {}).get("claimName")
        if claim is not None and claim not in claims:
            yield Finding(where, f"{at}.volumes[{i}].persistentVolumeClaim",
                          f"PersistentVolumeClaim {claim!r} is not in the render (namespace "
                          f"{ns}): the pod would stay Pending; add the claim or fix the name")
        cm = (vol.get("configMap") or {}).get("name")
        if cm is not None and cm not in config_maps:
            yield Finding(where, f"{at}.volumes[{i}].configMap",
                          f"ConfigMap {cm!r} is not in the render: add it or fix the name")
    secrets = _names(objs, "Secret", ns) | set(external)
    for field, name in (*_secret_refs(pod), *_secret_volumes(pod)):
        if name not in secrets:
            yield Finding(where, f"{at}.{field}",
                          f"Secret {name!r} is neither rendered nor one the README asks you to "
                          "create: fix the name")
    account = pod.get("serviceAccountName")
    if account and account not in _names(objs, "ServiceAccount", ns):
        yield Finding(where, f"{at}.serviceAccountName",
                      f"ServiceAccount {account!r} is not in the render: add it or fix the name")


def _check_claims(objs: list[Obj]) -> Iterator[Finding]:
    classes = _names(objs, "StorageClass", None)
    for pvc in kind_of(objs, "PersistentVolumeClaim"):
        name = pvc["spec"].get("storageClassName")
        if name is not None and name not in classes:
            yield Finding(object_ref(pvc), "spec.storageClassName",
                          f"StorageClass {name!r} is not in the render: add it or fix the name")


def check_references(objs: list[Obj], external_secrets: tuple[str, ...]) -> list[Finding]:
    found = list(_check_claims(objs))
    for pt in pod_templates(objs):
        found += _check_pod_refs(objs, pt, external_secrets)
    return found


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def _pod_labels(objs: list[Obj], namespace: str) -> list[dict[str, str]]:
    return [pt.template["metadata"].get("labels") or {} for pt in pod_templates(objs)
            if namespace_of(pt.workload) == namespace]


def _selector_paths(obj: Obj) -> Iterator[tuple[str, dict[str, str]]]:
    spec = obj.get("spec", {})
    kind = obj.get("kind")
    if kind == "Service":
        yield "spec.selector", spec.get("selector") or {}
    elif kind in ("PodDisruptionBudget", *SELECTOR_KINDS):
        yield "spec.selector.matchLabels", spec["selector"].get("matchLabels") or {}
    elif kind == "NetworkPolicy":
        yield "spec.podSelector.matchLabels", spec["podSelector"].get("matchLabels") or {}


def _check_targets(objs: list[Obj]) -> Iterator[Finding]:
    for scaler in kind_of(objs, "HorizontalPodAutoscaler") + kind_of(objs, "ScaledObject"):
        ref = scaler["spec"]["scaleTargetRef"]
        kind = ref.get("kind", "Deployment")
        if ref["name"] not in _names(objs, kind, namespace_of(scaler)):
            yield Finding(object_ref(scaler), "spec.scaleTargetRef",
                          f"{kind} {ref['name']!r} is not in the render: point the autoscaler "
                          "at the rendered workload")


def _ingress_backends(ingress: Obj) -> Iterator[tuple[str, Obj]]:
    for i, rule in enumerate(ingress["spec"].get("rules", [])):
        for j, path in enumerate((rule.get("http") or {}).get("paths", [])):
            service = path["backend"].get("service")
            if service:
                yield f"spec.rules[{i}].http.paths[{j}].backend.service", service


def _check_ingresses(objs: list[Obj]) -> Iterator[Finding]:
    """An Ingress backend names a rendered Service and one of its ports (by name or number)."""
    for ing in kind_of(objs, "Ingress"):
        for field, backend in _ingress_backends(ing):
            services = [s for s in kind_of(objs, "Service") if namespace_of(s) == namespace_of(ing)
                        and s["metadata"]["name"] == backend["name"]]
            if not services:
                yield Finding(object_ref(ing), f"{field}.name",
                              f"Service {backend['name']!r} is not in the render: the load "
                              "balancer would have no targets; fix the name")
                continue
            port = backend.get("port") or {}
            ports = services[0]["spec"]["ports"]
            if not any(p.get("name") == port.get("name") if "name" in port
                       else p.get("port") == port.get("number") for p in ports):
                yield Finding(object_ref(ing), f"{field}.port",
                              f"Service {backend['name']!r} has no port {port}: use one of "
                              f"{sorted(str(p.get('name') or p['port']) for p in ports)}")


def _check_monitors(objs: list[Obj]) -> Iterator[Finding]:
    for monitor in kind_of(objs, "ServiceMonitor"):
        selector = monitor["spec"]["selector"].get("matchLabels") or {}
        services = [s for s in kind_of(objs, "Service") if namespace_of(s) == namespace_of(monitor)
                    and _selects(selector, s["metadata"].get("labels") or {})]
        if not services:
            yield Finding(object_ref(monitor), "spec.selector.matchLabels",
                          f"{selector} selects no Service of the render: use the Service's labels")
            continue
        ports = {p.get("name") for s in services for p in s["spec"]["ports"]}
        for i, endpoint in enumerate(monitor["spec"]["endpoints"]):
            if endpoint.get("port") not in ports:
                yield Finding(object_ref(monitor), f"spec.endpoints[{i}].port",
                              f"no selected Service has a port named {endpoint.get('port')!r}")


def check_selectors(objs: list[Obj]) -> list[Finding]:
    found: list[Finding] = [*_check_targets(objs), *_check_monitors(objs),
                            *_check_ingresses(objs)]
    for obj in objs:
        for field, selector in _selector_paths(obj):
            if not any(_selects(selector, labels)
                       for labels in _pod_labels(objs, namespace_of(obj))):
                found.append(Finding(object_ref(obj), field,
                                     f"{selector} selects no pod of the render: use the pod "
                                     "template's labels"))
    return found
