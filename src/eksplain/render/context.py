"""What a render needs from a plan, in Kubernetes terms: names, labels, sizes and engine flags.

``serving_context`` refuses what the renderer does not build yet (multi-node replicas, Neuron,
engines other than vLLM) with a ``RenderError`` naming it; training plans have
their own context (``training.training_context``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from eksplain.calibration import load_calibration
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
from eksplain.search import SCALE_METRIC, Candidate, Plan
from eksplain.spec import WorkloadSpec
from eksplain.units import GIB

if TYPE_CHECKING:
    from eksplain.render.training import TrainingLayout

__all__ = ["RenderContext", "RenderOptions", "check_spec", "pod_size", "serving_context",
           "short_name"]

# The Kubernetes version whose OpenAPI schemas ``--check`` validates core kinds against: one in
# EKS standard support when this was written (2026-11).
KUBERNETES_VERSION = "1.33"
# Each pod asks for this share of its slice of the node's allocatable CPU and memory; the rest is
# left to DaemonSets (VPC CNI, kube-proxy, the NVIDIA device plugin, log and metric agents), whose
# requests the catalogue does not know. A policy choice, not a hardware fact.
POD_SHARE_OF_ALLOCATABLE = 0.9
# The startup probe allows this many times the plan's cold start (load + warm-up) before a restart.
STARTUP_MARGIN = 2.0
PROBE_PERIOD_S = 10
CACHES = ("s3", "fsx-lustre", "efs")  # model caches render builds (the plan's CACHE_OPTIONS)
CACHE_HEADROOM = 1.1  # the model cache holds the weights plus tokenizer and config files
ROLE_LABEL = "eksplain.io/role"  # leader or worker, in a replica that spans nodes


@dataclass(frozen=True)
class RenderOptions:
    """Choices that are the cluster's, not the workload's; every one has a default."""

    namespace: str | None = None  # default: the model's short name
    cluster_name: str = "eksplain"  # Karpenter discovery tags and node role
    autoscaler: Literal["hpa", "keda"] = "hpa"
    hf_token_secret: str = "hf-token"  # a Secret the user creates, key HF_TOKEN
    model_bucket: str = "my-model-bucket"  # S3 model cache: s3://<bucket>/<model id>/
    prometheus_url: str = "http://prometheus-operated.monitoring.svc:9090"
    # Shared model caches: where FSx for Lustre is created, and which EFS file system to use.
    fsx_subnet_id: str = "subnet-REPLACE-ME"
    fsx_security_group_ids: str = "sg-REPLACE-ME"
    efs_file_system_id: str = "fs-REPLACE-ME"


@dataclass(frozen=True)
class RenderContext:
    """Everything the object builders read, computed once from the plan."""

    name: str
    namespace: str
    model_id: str
    task: str
    options: RenderOptions
    instance: InstanceType
    accelerator: Accelerator
    capacity_type: str
    zones: tuple[str, ...]
    gpus_per_pod: int
    pods_per_node: int
    nodes_peak: int
    replicas_min: int
    replicas_max: int
    cpu_millicores: int
    memory_bytes: int
    shm_bytes: int
    cache: str  # s3 | fsx-lustre | efs
    cache_bytes: int  # what the model cache holds: the whole model's weights
    startup_failures: int
    engine_args: tuple[str, ...]
    scale_metric: str
    scale_target: int
    images: dict[str, Any]
    training: TrainingLayout | None = None  # set for training plans only
    engine_key: str = "vllm"  # the serving image's row in images.yaml: vllm or vllm_neuron
    group_size: int = 1  # pods (one per node) per replica; above 1, a LeaderWorkerSet
    expose: str = "none"  # none | nlb | alb (spec render.expose)

    @property
    def engine(self) -> dict[str, Any]:
        """The serving image's row: port, health and metrics paths, user id."""
        row: dict[str, Any] = self.images[self.engine_key]
        return row

    @property
    def cache_volume_bytes(self) -> int:
        """The model cache's size: the weights and 10% for tokenizer files, in whole GiB."""
        return max(1, math.ceil(self.cache_bytes * CACHE_HEADROOM / GIB)) * GIB

    @property
    def labels(self) -> dict[str, str]:
        return {"app.kubernetes.io/name": self.name, "app.kubernetes.io/part-of": "eksplain"}

    @property
    def selector(self) -> dict[str, str]:
        return {"app.kubernetes.io/name": self.name}

    @property
    def workload_ref(self) -> tuple[str, str]:
        """(apiVersion, kind) of the serving workload."""
        if self.group_size > 1:
            return "leaderworkerset.x-k8s.io/v1", "LeaderWorkerSet"
        return "apps/v1", "Deployment"

    @property
    def server_selector(self) -> dict[str, str]:
        """The pods that serve requests: every pod, or each group's leader."""
        if self.group_size > 1:
            return {**self.selector, ROLE_LABEL: "leader"}
        return self.selector

    @property
    def node_label(self) -> tuple[str, str]:
        return "eksplain.io/pool", self.name

    def image(self, which: str) -> str:
        row = self.images[which]
        return f"{row['image']}:{row['tag']}"


def short_name(model_id: str) -> str:
    """A DNS-1123 label from a model id: ``meta-llama/Llama-3.1-8B`` -> ``llama-3-1-8b``."""
    base = model_id.rsplit("/", 1)[-1].lower()
    return re.sub(r"[^a-z0-9]+", "-", base).strip("-")[:40].strip("-") or "model"


def check_spec(spec: WorkloadSpec) -> None:
    """Refuse, before any planning, a spec whose workload render does not build yet."""
    if not spec.serving:
        return  # training: the engine field does not apply
    if spec.engine not in ("vllm", "neuron"):
        raise RenderError(f"render builds vLLM servers only (CUDA, or Neuron with engine: "
                          f"neuron); engine {spec.engine} is not supported yet.",
                          hint="set engine: vllm (NVIDIA) or engine: neuron (Inferentia, "
                               "Trainium) in the spec")


def _check_hardware(spec: WorkloadSpec, choice: Candidate, acc: Accelerator,
                    inst: InstanceType) -> None:
    if acc.is_neuron and spec.engine != "neuron":
        raise RenderError(f"the plan chose {inst.name} ({acc.name}), where the vLLM CUDA "
                          "image cannot run.",
                          hint="set engine: neuron to serve with vLLM on Neuron (NxD "
                               "Inference), or restrict constraints.families to NVIDIA GPU "
                               "families (g6e, p5 ...)")
    if not acc.is_neuron and spec.engine == "neuron":
        raise RenderError(f"engine: neuron needs Inferentia or Trainium, but the plan chose "
                          f"{inst.name} ({acc.name}).",
                          hint="set engine: vllm, or restrict constraints.families to inf2, "
                               "trn1 ...")
    gpus = choice.tp * choice.pp
    if gpus > inst.accelerator_count and (gpus % inst.accelerator_count or acc.is_neuron):
        raise RenderError(f"one replica spans nodes (TP={choice.tp} x PP={choice.pp} on "
                          f"{inst.name}) but not whole nodes, or on Neuron: only whole NVIDIA "
                          "nodes per replica (a LeaderWorkerSet) are built.",
                          hint="allow a larger instance family or quantize so that one node "
                               "holds a replica")


def _neuron_args(spec: WorkloadSpec, model: Model, choice: Candidate, acc: Accelerator,
                 row: dict[str, Any]) -> tuple[str, ...]:
    """vLLM's flags on Neuron: TP counts NeuronCores (the plan counts devices); the batch and
    context are compiled in, so they are the plan's."""
    engine = load_calibration().engine("vllm")
    batch = choice.concurrency(engine.max_num_seqs)
    return ("--port", str(row["port"]), "--served-model-name", model.id,
            "--tensor-parallel-size", str(choice.tp * acc.cores_per_device),
            "--max-model-len", str(spec.tokens.context), "--max-num-seqs", str(batch))


def _engine_args(spec: WorkloadSpec, model: Model, choice: Candidate, vllm: dict[str, Any],
                 ) -> tuple[str, ...]:
    """vLLM's flags from the plan (docs.vllm.ai .../cli/serve.html for the pinned version)."""
    engine = load_calibration().engine("vllm")
    args = ["--port", str(vllm["port"]), "--served-model-name", model.id,
            "--tensor-parallel-size", str(choice.tp),
            "--pipeline-parallel-size", str(choice.pp),
            "--max-model-len", str(spec.tokens.context),
            "--gpu-memory-utilization", f"{engine.gpu_memory_utilization:g}",
            "--max-num-batched-tokens", str(engine.max_num_batched_tokens),
            "--kv-cache-dtype", "auto"]
    if spec.task == "embedding":
        args += ["--runner", "pooling"]
    else:
        # the plan's batch: the concurrency whose TPOT holds the SLO (and the autoscaling
        # target); the engine's own limit would let a replica take more and miss the SLO
        batch = choice.concurrency(engine.max_num_seqs)
        args += ["--max-num-seqs", str(batch)]
    flag = vllm["quantization_flags"].get(choice.weight_format)
    if flag is not None and model.quantization is None:
        args += ["--quantization", flag]
    return tuple(args)


def pod_size(inst: InstanceType, pods_per_node: int, shm_bytes: int) -> tuple[int, int]:
    """CPU (millicores) and memory (bytes, with /dev/shm, which counts against the limit) per
    pod: its share of the node's allocatable, rounded down to whole 100 m and GiB."""
    alloc = inst.allocatable
    cpu = int(alloc.cpu_millicores * POD_SHARE_OF_ALLOCATABLE / pods_per_node) // 100 * 100
    memory = int(alloc.memory_bytes * POD_SHARE_OF_ALLOCATABLE / pods_per_node) // GIB * GIB
    if memory <= shm_bytes:
        raise RenderError(f"{inst.name} leaves {memory / GIB:.1f} GiB of memory per pod, not "
                          f"enough for a {shm_bytes / GIB:.0f} GiB /dev/shm.")
    return cpu, memory


def _mapping(value: object) -> dict[str, Any]:
    return dict(value) if isinstance(value, dict) else {}


def serving_context(spec: WorkloadSpec, plan: Plan, model: Model, catalog: HardwareCatalog,
                    options: RenderOptions) -> RenderContext:
    """The render's view of a serving plan; ``RenderError`` for what it cannot build yet."""
    choice = plan.choice
    if choice is None:
        raise RenderError("the plan has no chosen configuration to render.")
    inst = find_instance(catalog, choice.instance_type)
    if inst.accelerator_id is None:  # a CPU embedding plan: no CPU Deployment is built yet
        raise RenderError(f"the plan chose {inst.name}, a CPU-only node; render builds "
                          "accelerator (vLLM) servers only.", hint="constrain the spec's "
                          "families to an accelerated one (e.g. g6) to render it")
    acc = accelerator_of(catalog, inst)
    check_spec(spec)
    _check_hardware(spec, choice, acc, inst)
    images: dict[str, Any] = read_yaml("images.yaml")
    engine_key = "vllm_neuron" if acc.is_neuron else "vllm"
    vllm = images[engine_key]
    extras = dict(plan.extras)
    scaling, cold = _mapping(extras.get("autoscaling")), _mapping(extras.get("cold_start"))
    cache = str(extras.get("model_cache") or "s3")
    if cache not in CACHES:
        raise RenderError(f"the plan's model cache {cache!r} cannot be rendered.",
                          hint="one of " + ", ".join(CACHES))
    gpus = choice.tp * choice.pp
    group = max(1, gpus // inst.accelerator_count)  # nodes per replica (whole nodes)
    gpus = min(gpus, inst.accelerator_count)  # per pod: one pod per node in a group
    per_node = inst.accelerator_count // gpus
    shm = int(vllm["shm_gib_per_tp_rank"]) * min(choice.tp, gpus) * GIB
    cpu, memory = pod_size(inst, per_node, shm)
    startup_s = STARTUP_MARGIN * (float(cold.get("weight_load_s") or 0)
                                  + float(cold.get("engine_warmup_s") or 0))
    name = short_name(model.id)
    return RenderContext(
        name=name, namespace=options.namespace or name, model_id=model.id, task=spec.task,
        options=options, instance=inst, accelerator=acc,
        capacity_type=spec.constraints.capacity_type,
        zones=tuple(sorted(spec.constraints.availability_zones)), gpus_per_pod=gpus,
        pods_per_node=per_node,
        nodes_peak=(group * int(scaling.get("max_replicas") or 1) if group > 1
                    else choice.nodes),
        replicas_min=int(scaling.get("min_replicas") or 1),
        replicas_max=int(scaling.get("max_replicas") or 1), cpu_millicores=cpu,
        memory_bytes=memory, shm_bytes=shm, cache=cache,
        cache_bytes=int(choice.detail("weights_bytes") or 0) * choice.tp * choice.pp,
        startup_failures=max(3, math.ceil(startup_s / PROBE_PERIOD_S)),
        engine_args=(_neuron_args(spec, model, choice, acc, vllm) if acc.is_neuron
                     else _engine_args(spec, model, choice, vllm)),
        scale_metric=str(scaling.get("metric") or SCALE_METRIC),
        scale_target=int(scaling.get("target_per_replica") or 1), images=images,
        engine_key=engine_key, group_size=group, expose=spec.render.expose,
    )
