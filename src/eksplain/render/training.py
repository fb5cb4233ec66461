"""Training plans (fine-tuning, pre-training) as Kubernetes objects: a Kubeflow PyTorchJob
(kubeflow.org/v1) or, when the spec asks, a JobSet (jobset.x-k8s.io/v1alpha2) running torchrun
with the plan's layout, an FSx for Lustre volume for data and
checkpoints, and a NodePool for the training instances pinned to one availability zone.

    layout      one pod per node; torchrun starts one process per GPU (per NeuronCore on
                Trainium) and the training operator sets its rendezvous (PET_* variables)
    parallelism the plan's TP, PP, DP, FSDP, micro-batch and recomputation reach the user's
                script as EKSPLAIN_* environment variables: eksplain writes no training code
    network     EFA devices and the libfabric/NCCL settings when the job spans nodes
    storage     a PERSISTENT_2 FSx for Lustre file system (125 MB/s per TiB, the tier the
                checkpoint estimate of section 11 assumes), sized for two checkpoints
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from eksplain.catalog import Model
from eksplain.datafiles import read_yaml
from eksplain.errors import RenderError
from eksplain.hardware import (
    Accelerator,
    HardwareCatalog,
    InstanceType,
    accelerator_of,
    find_instance,
)
from eksplain.render.cache import fsx_capacity_gib
from eksplain.render.context import RenderContext, RenderOptions, pod_size, short_name
from eksplain.render.workload import (
    SCANNER_SKIPS,
    TMP_BYTES,
    TOKEN_MOUNT,
    WORK_BYTES,
    WORK_MOUNT,
    cpu_quantity,
    probe_skips,
    quantity,
    security,
)
from eksplain.search import Candidate, Plan
from eksplain.spec import WorkloadSpec
from eksplain.units import GIB

__all__ = ["TRAINING_TASKS", "TrainingLayout", "fsx_objects", "job_set", "layout_of",
           "network_policy", "pod_spec", "pytorch_job", "storage_objects", "training_context",
           "training_job"]

TRAINING_TASKS = ("fine-tuning", "pre-training")
Recompute = Literal["none", "selective", "full"]
TRAIN_MOUNT = "/mnt/train"  # the FSx volume: data/, checkpoints/, hf/
FSX_THROUGHPUT_MB_PER_TIB = "125"  # PERSISTENT_2-125, as checkpoint.py assumes
JOBSET_JOB = "node"  # the JobSet's one replicated job; pods are <name>-node-0-<rank>


@dataclass(frozen=True)
class TrainingLayout:
    """The plan's training layout, as the job and the user's script need it."""

    nodes: int
    procs_per_node: int  # torchrun --nproc-per-node: GPUs, or NeuronCores on Trainium
    tp: int
    pp: int
    dp: int
    fsdp: str
    micro_batch: int
    recompute: Recompute
    seq_len: int
    checkpoint_interval_s: int
    storage_bytes: int  # the FSx file system: two checkpoints, rounded to a valid capacity
    efa_per_pod: int  # 0 on one node
    rdma: bool
    image_key: str  # the images.yaml row
    launcher: str  # pytorchjob | jobset | rayjob


def _fsx_bytes(need_bytes: int) -> int:
    return fsx_capacity_gib(math.ceil(need_bytes / GIB)) * GIB


def _recompute(choice: Candidate) -> Recompute:
    value = choice.detail("recompute")
    if value == "selective":
        return "selective"
    return "full" if value == "full" else "none"


def _layout(spec: WorkloadSpec, choice: Candidate, inst: InstanceType, acc: Accelerator,
            storage_bytes: int) -> TrainingLayout:
    efa: dict[str, Any] = read_yaml("images.yaml")["efa"]
    multi = choice.nodes > 1
    return TrainingLayout(
        nodes=choice.nodes, procs_per_node=inst.accelerator_count * acc.cores_per_device,
        tp=choice.tp, pp=choice.pp, dp=choice.dp, fsdp=str(choice.detail("fsdp") or "none"),
        micro_batch=int(choice.detail("micro_batch") or 1), recompute=_recompute(choice),
        seq_len=spec.tokens.context,
        checkpoint_interval_s=round(float(choice.detail("checkpoint_interval_s") or 0)),
        storage_bytes=_fsx_bytes(storage_bytes),
        efa_per_pod=inst.efa_interfaces if multi else 0,
        rdma=multi and inst.family in efa["rdma_families"],
        image_key=_image_key(spec, acc), launcher=spec.render.training_launcher)


def _image_key(spec: WorkloadSpec, acc: Accelerator) -> str:
    """The images.yaml row: the Neuron DLC on Trainium, a Ray image under a RayJob."""
    ray = spec.render.training_launcher == "rayjob"
    if ray and acc.is_neuron:
        raise RenderError("render builds RayJobs for GPU instances only: no Ray image with the "
                          "Neuron SDK is pinned in eksplain/data/images.yaml.",
                          hint="set render.training_launcher: pytorchjob or jobset")
    if acc.is_neuron:
        return "pytorch_training_neuron"
    return "ray_training" if ray else "pytorch_training"


def _zone(spec: WorkloadSpec) -> str:
    """One zone for the whole job (EFA does not cross zones, and the FSx file system lives in
    one): the spec's first zone, else the region's "a" zone (the README says to change it)."""
    zones = sorted(spec.constraints.availability_zones)
    return zones[0] if zones else f"{spec.constraints.region}a"


def training_context(spec: WorkloadSpec, plan: Plan, model: Model, catalog: HardwareCatalog,
                     options: RenderOptions) -> RenderContext:
    """The render's view of a training plan; ``RenderError`` for what it cannot build."""
    choice = plan.choice
    if choice is None:
        raise RenderError("the plan has no chosen configuration to render.")
    if spec.storage != "fsx-lustre":
        raise RenderError(f"render keeps training data and checkpoints on FSx for Lustre only; "
                          f"storage {spec.storage} is not built yet.",
                          hint="set storage: fsx-lustre in the spec")
    inst = find_instance(catalog, choice.instance_type)
    acc = accelerator_of(catalog, inst)
    images: dict[str, Any] = read_yaml("images.yaml")
    layout = _layout(spec, choice, inst, acc, int(choice.detail("checkpoint_storage_bytes") or 0))
    shm = int(images[layout.image_key]["shm_gib_per_device"]) * inst.accelerator_count * GIB
    cpu, memory = pod_size(inst, 1, shm)
    name = short_name(model.id)
    return RenderContext(
        name=name, namespace=options.namespace or name, model_id=model.id, task=spec.task,
        options=options, instance=inst, accelerator=acc,
        capacity_type=spec.constraints.capacity_type, zones=(_zone(spec),),
        gpus_per_pod=inst.accelerator_count, pods_per_node=1, nodes_peak=choice.nodes,
        replicas_min=choice.nodes, replicas_max=choice.nodes, cpu_millicores=cpu,
        memory_bytes=memory, shm_bytes=shm, cache="fsx-lustre",
        cache_bytes=layout.storage_bytes, startup_failures=0, engine_args=(), scale_metric="",
        scale_target=0, images=images, training=layout)


def layout_of(ctx: RenderContext) -> TrainingLayout:
    if ctx.training is None:
        raise RenderError("not a training render.")
    return ctx.training


def _meta(ctx: RenderContext, name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "namespace": ctx.namespace, "labels": dict(ctx.labels), **extra}


def fsx_objects(ctx: RenderContext, claim: str, size_bytes: int) -> list[dict[str, Any]]:
    """A PERSISTENT_2 FSx for Lustre StorageClass and a ReadWriteMany claim on it. Retained:
    deleting the claim must not delete checkpoints or results."""
    o = ctx.options
    sc_name = f"{ctx.name}-data"
    storage_class = {
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": sc_name, "labels": dict(ctx.labels)},
        "provisioner": "fsx.csi.aws.com",
        "parameters": {"subnetId": o.fsx_subnet_id, "securityGroupIds": o.fsx_security_group_ids,
                       "deploymentType": "PERSISTENT_2",
                       "perUnitStorageThroughput": FSX_THROUGHPUT_MB_PER_TIB},
        "reclaimPolicy": "Retain", "volumeBindingMode": "Immediate"}
    pvc = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": _meta(ctx, claim),
           "spec": {"accessModes": ["ReadWriteMany"], "storageClassName": sc_name,
                    "resources": {"requests": {"storage": quantity(_fsx_bytes(size_bytes))}}}}
    return [storage_class, pvc]


def storage_objects(ctx: RenderContext) -> list[dict[str, Any]]:
    """The job's data and checkpoint volume."""
    return fsx_objects(ctx, f"{ctx.name}-train", layout_of(ctx).storage_bytes)


def _env(ctx: RenderContext) -> list[dict[str, Any]]:
    t = layout_of(ctx)
    layout = {"EKSPLAIN_MODEL": ctx.model_id, "EKSPLAIN_TP": str(t.tp),
              "EKSPLAIN_PP": str(t.pp), "EKSPLAIN_DP": str(t.dp), "EKSPLAIN_FSDP": t.fsdp,
              "EKSPLAIN_MICRO_BATCH": str(t.micro_batch), "EKSPLAIN_RECOMPUTE": t.recompute,
              "EKSPLAIN_SEQ_LEN": str(t.seq_len),
              "EKSPLAIN_DATA_DIR": f"{TRAIN_MOUNT}/data",
              "EKSPLAIN_CHECKPOINT_DIR": f"{TRAIN_MOUNT}/checkpoints",
              "EKSPLAIN_CHECKPOINT_INTERVAL_S": str(t.checkpoint_interval_s),
              "HF_TOKEN_PATH": f"{TOKEN_MOUNT}/HF_TOKEN", "HF_HOME": f"{TRAIN_MOUNT}/hf",
              "HOME": f"{WORK_MOUNT}/home", "XDG_CACHE_HOME": WORK_MOUNT}
    if t.efa_per_pod:
        layout.update(ctx.images["efa"]["env"])
        if t.rdma:
            layout["FI_EFA_USE_DEVICE_RDMA"] = "1"
    return [{"name": k, "value": v} for k, v in layout.items()]


def _resources(ctx: RenderContext) -> dict[str, Any]:
    """Requests = limits; the EFA interfaces only when the job spans nodes."""
    t = layout_of(ctx)
    amounts = {"cpu": cpu_quantity(ctx.cpu_millicores), "memory": quantity(ctx.memory_bytes),
               "ephemeral-storage": quantity(TMP_BYTES + WORK_BYTES),
               ctx.device.k8s_resource: str(ctx.gpus_per_pod)}
    if t.efa_per_pod:
        amounts["vpc.amazonaws.com/efa"] = str(t.efa_per_pod)
    return {"requests": dict(amounts), "limits": dict(amounts)}


def _torchrun_args(ctx: RenderContext) -> list[str]:
    """torchrun's arguments. Under a PyTorchJob the operator sets the node rank and the master
    address (PET_* variables); under a JobSet they come from the pod's completion index and
    the first pod's stable DNS name."""
    t = layout_of(ctx)
    row = ctx.images[t.image_key]
    args = ["--nnodes", str(t.nodes), "--nproc-per-node", str(t.procs_per_node)]
    if t.launcher == "jobset":
        args += ["--node-rank", "$(NODE_RANK)",
                 "--master-addr", f"{ctx.name}-{JOBSET_JOB}-0-0.{ctx.name}",
                 "--master-port", str(row["master_port"])]
    return [*args, str(row["entrypoint"])]


def _rank_env(ctx: RenderContext) -> list[dict[str, Any]]:
    if layout_of(ctx).launcher != "jobset":
        return []
    index = "metadata.annotations['batch.kubernetes.io/job-completion-index']"
    return [{"name": "NODE_RANK", "valueFrom": {"fieldRef": {"fieldPath": index}}}]


def _container(ctx: RenderContext) -> dict[str, Any]:
    t = layout_of(ctx)
    row = ctx.images[t.image_key]
    return {
        # The training operator finds the container by this name.
        "name": "pytorch", "image": ctx.image(t.image_key), "imagePullPolicy": "IfNotPresent",
        "command": ["torchrun"], "args": _torchrun_args(ctx),
        # The training operator's defaulting adds a port of this name when none has it.
        "ports": [{"name": "pytorchjob-port" if t.launcher == "pytorchjob" else "rendezvous",
                   "containerPort": int(row["master_port"]), "protocol": "TCP"}],
        "env": _rank_env(ctx) + _env(ctx), "resources": _resources(ctx),
        "securityContext": security(),
        "volumeMounts": [{"name": "train", "mountPath": TRAIN_MOUNT},
                         {"name": "dshm", "mountPath": "/dev/shm"},
                         {"name": "tmp", "mountPath": "/tmp"},
                         {"name": "work", "mountPath": WORK_MOUNT},
                         {"name": "hf-token", "mountPath": TOKEN_MOUNT, "readOnly": True}],
    }


def pod_spec(ctx: RenderContext) -> dict[str, Any]:
    uid = int(ctx.images[layout_of(ctx).image_key]["user_id"])
    key, value = ctx.node_label
    return {
        "serviceAccountName": ctx.name, "automountServiceAccountToken": False,
        "securityContext": {"runAsNonRoot": True, "runAsUser": uid, "runAsGroup": uid,
                            "fsGroup": uid, "seccompProfile": {"type": "RuntimeDefault"}},
        "nodeSelector": {key: value, "node.kubernetes.io/instance-type": ctx.instance.name,
                         "karpenter.sh/capacity-type": ctx.capacity_type,
                         "topology.kubernetes.io/zone": ctx.zones[0]},
        "tolerations": [{"key": ctx.device.k8s_resource, "operator": "Exists",
                         "effect": "NoSchedule"}],
        "containers": [_container(ctx)],
        "volumes": [
            {"name": "train", "persistentVolumeClaim": {"claimName": f"{ctx.name}-train"}},
            {"name": "dshm", "emptyDir": {"medium": "Memory",
                                          "sizeLimit": quantity(ctx.shm_bytes)}},
            {"name": "tmp", "emptyDir": {"sizeLimit": quantity(TMP_BYTES)}},
            {"name": "work", "emptyDir": {"sizeLimit": quantity(WORK_BYTES)}},
            {"name": "hf-token", "secret": {"secretName": ctx.options.hf_token_secret,
                                            "optional": True, "defaultMode": 0o440}},
        ],
    }


def _template(ctx: RenderContext) -> dict[str, Any]:
    # Karpenter does not consolidate, drift or expire a node that runs this pod: a
    # voluntary disruption would cost the work since the last checkpoint. checkov does not
    # read PyTorchJobs or JobSets; its skips are for a scan of the pods.
    skips = {**SCANNER_SKIPS, **probe_skips(
        "torchrun serves no endpoint; a failed pod is restarted and the job resumes from its "
        "last checkpoint")}
    return {"metadata": {"labels": dict(ctx.labels),
                         "annotations": {"karpenter.sh/do-not-disrupt": "true", **skips}},
            "spec": pod_spec(ctx)}


def pytorch_job(ctx: RenderContext) -> dict[str, Any]:
    """Master (node rank 0) and nodes - 1 Workers; the operator restarts failed pods and torchrun
    resumes from the latest checkpoint (the script's job)."""
    t = layout_of(ctx)
    replicas = {"Master": {"replicas": 1, "restartPolicy": "OnFailure",
                           "template": _template(ctx)}}
    if t.nodes > 1:
        replicas["Worker"] = {"replicas": t.nodes - 1, "restartPolicy": "OnFailure",
                              "template": _template(ctx)}
    return {
        "apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob",
        "metadata": _meta(ctx, ctx.name, annotations={"eksplain.io/model": ctx.model_id,
                                                      "eksplain.io/instance-type":
                                                          ctx.instance.name}),
        "spec": {"nprocPerNode": str(t.procs_per_node),
                 "runPolicy": {"cleanPodPolicy": "Running", "backoffLimit": 3 * t.nodes},
                 "pytorchReplicaSpecs": replicas},
    }


def job_set(ctx: RenderContext) -> dict[str, Any]:
    """One indexed Job of ``nodes`` pods (pod i is node rank i); the JobSet's headless Service
    gives pod 0 the stable name torchrun's rendezvous uses. A failed pod restarts the whole
    set (up to 3 times): torchrun's static rendezvous needs every rank back."""
    t = layout_of(ctx)
    template = _template(ctx)
    template["spec"]["restartPolicy"] = "Never"
    job = {"parallelism": t.nodes, "completions": t.nodes, "completionMode": "Indexed",
           "backoffLimit": 0, "template": template}
    return {
        "apiVersion": "jobset.x-k8s.io/v1alpha2", "kind": "JobSet",
        "metadata": _meta(ctx, ctx.name, annotations={"eksplain.io/model": ctx.model_id,
                                                      "eksplain.io/instance-type":
                                                          ctx.instance.name}),
        "spec": {"network": {"enableDNSHostnames": True, "subdomain": ctx.name},
                 "failurePolicy": {"maxRestarts": 3},
                 "replicatedJobs": [{"name": JOBSET_JOB, "replicas": 1,
                                     "template": {"spec": job}}]},
    }


def training_job(ctx: RenderContext) -> dict[str, Any]:
    """The spec's launcher: a PyTorchJob (default) or a JobSet (a RayJob is rayjob.py's)."""
    return job_set(ctx) if layout_of(ctx).launcher == "jobset" else pytorch_job(ctx)


def network_policy(ctx: RenderContext) -> dict[str, Any]:
    """Ingress only from the job's own pods (rendezvous and NCCL's TCP bootstrap); EFA traffic
    does not pass the kernel's network stack. Egress stays open (S3, the Hugging Face hub)."""
    selector = {"matchLabels": dict(ctx.selector)}
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": _meta(ctx, ctx.name),
            "spec": {"podSelector": selector, "policyTypes": ["Ingress"],
                     "ingress": [{"from": [{"podSelector": selector}]}]}}
