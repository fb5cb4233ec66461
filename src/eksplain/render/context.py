"""What a render needs from a plan, in Kubernetes terms: names, labels, sizes and engine flags.

The serving engine is a row of ``data/images.yaml``, chosen from the spec's engine and the
plan's hardware:

    vllm            vLLM on NVIDIA GPUs (engine: vllm)
    vllm_neuron     vLLM with NxD Inference on Inferentia / Trainium (engine: neuron)
    sglang          SGLang on NVIDIA GPUs (engine: sglang)
    triton_trtllm   Triton Inference Server with the TensorRT-LLM backend (engine: trtllm)
    tei_cpu         text-embeddings-inference on a CPU instance (an embedding plan without
                    accelerators; the vLLM CUDA image needs a GPU)

``serving_context`` refuses what the renderer does not build (replicas across part of a node,
plain transformers, text generation on CPU) with a ``RenderError`` naming it;
training plans have their own context (``training.training_context``).
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
    pod_resources,
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
# The startup probe allows this many times the plan's cold start (load + warm-up) before a restart.
STARTUP_MARGIN = 2.0
PROBE_PERIOD_S = 10
SERVING_ENGINES = ("vllm", "neuron", "trtllm", "sglang")  # spec engines render builds servers for
CACHES = ("s3", "fsx-lustre", "efs")  # model caches render builds (the plan's CACHE_OPTIONS)
CACHE_HEADROOM = 1.1  # the model cache holds the weights plus tokenizer and config files
# A TensorRT-LLM build holds the converted checkpoint and the engine beside the weights, each about
# the size of the weights in the plan's format; the checkpoint is deleted after the build.
ENGINE_BUILD_COPIES = 2
ROLE_LABEL = "eksplain.io/role"
CACHE_MOUNT = "/models"
# vLLM, torch.compile, Triton and the HF hub write here; the root file system is read-only.
WORK_MOUNT = "/cache"
TOKEN_MOUNT = "/var/run/secrets/huggingface"  # leader or worker, in a replica that spans nodes


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
class EngineBuild:
    """What an engine that compiles the model ahead of serving (TensorRT-LLM) is built for: the
    plan's parallelism, batch and sequence lengths, and its weight format."""

    tp: int
    pp: int
    max_batch_size: int  # the plan's batch: the concurrency that holds the TPOT SLO
    max_input_len: int  # the spec's p95 prompt (at most the context)
    max_seq_len: int  # the spec's context: prompt + output, as vLLM's --max-model-len
    weight_format: str  # the plan's (bf16, fp8 ...)
    model_type: str  # the architecture's model_type: which converter applies


@dataclass(frozen=True)
class RenderContext:
    """Everything the object builders read, computed once from the plan."""

    name: str
    namespace: str
    model_id: str
    task: str
    options: RenderOptions
    instance: InstanceType
    accelerator: Accelerator | None  # None: a CPU instance
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
    engine_key: str = "vllm"  # the serving image's row in images.yaml (module docstring)
    group_size: int = 1  # pods (one per node) per replica; above 1, a LeaderWorkerSet
    expose: str = "none"  # none | nlb | alb (spec render.expose)
    engine_build: EngineBuild | None = None  # set for engines that compile the model first

    @property
    def device_resource(self) -> str | None:
        """The pods' accelerator resource (nvidia.com/gpu, aws.amazon.com/neuron); None on CPU."""
        return self.accelerator.k8s_resource if self.accelerator is not None else None

    @property
    def device(self) -> Accelerator:
        """The accelerator of a context that has one (training, GPU and Neuron serving)."""
        if self.accelerator is None:
            raise RenderError(f"{self.instance.name} has no accelerator.")
        return self.accelerator

    @property
    def engine(self) -> dict[str, Any]:
        """The serving image's row: port, health and metrics paths, user id."""
        row: dict[str, Any] = self.images[self.engine_key]
        return row

    @property
    def cache_volume_bytes(self) -> int:
        """The model cache's size: the weights and 10% for tokenizer files, in whole GiB; with
        an engine compiled into the cache, room for two more copies of the weights (the
        converted checkpoint and the engine, which exist together while it is built)."""
        copies = 1 + (ENGINE_BUILD_COPIES if self.engine_build is not None else 0)
        return max(1, math.ceil(self.cache_bytes * copies * CACHE_HEADROOM / GIB)) * GIB

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
    if spec.engine not in SERVING_ENGINES:
        raise RenderError(f"render builds vLLM (CUDA or Neuron), SGLang and Triton with "
                          f"TensorRT-LLM servers; engine {spec.engine} is not supported yet.",
                          hint="set engine: vllm or sglang (NVIDIA), engine: trtllm (NVIDIA, "
                               "Triton) or engine: neuron (Inferentia, Trainium) in the spec")


def _check_hardware(spec: WorkloadSpec, choice: Candidate, acc: Accelerator,
                    inst: InstanceType) -> None:
    if acc.is_neuron and spec.engine != "neuron":
        engine = {"trtllm": "Triton TensorRT-LLM", "sglang": "SGLang"}.get(spec.engine,
                                                                          "vLLM CUDA")
        raise RenderError(f"the plan chose {inst.name} ({acc.name}), where the {engine} "
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
            "--max-num-batched-tokens", str(load_calibration().token_budget(choice.accelerator)),
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


def _sglang_args(spec: WorkloadSpec, model: Model, choice: Candidate, row: dict[str, Any],
                 ) -> tuple[str, ...]:
    """SGLang's flags from the plan (its server-arguments page): the same parallelism, context
    and batch as vLLM's; the memory fraction is SGLang's own default."""
    # SGLang listens on 127.0.0.1 unless told otherwise; the pod's address is every interface
    args = ["--host", "0.0.0.0", "--port", str(row["port"]),
            "--served-model-name", model.id, "--tp-size", str(choice.tp),
            "--pp-size", str(choice.pp), "--context-length", str(spec.tokens.context),
            "--enable-metrics"]
    if spec.task == "embedding":
        args += ["--is-embedding"]
    else:
        batch = choice.concurrency(load_calibration().engine("vllm").max_num_seqs)
        args += ["--max-running-requests", str(batch)]
    if model.quantization is None and choice.weight_format not in ("bf16", "fp16"):
        flag = row["quantization_flags"].get(choice.weight_format)
        if flag is None:
            raise RenderError(f"render has no SGLang --quantization for "
                              f"{choice.weight_format} weights.",
                              hint="use engine: vllm, or a pre-quantized checkpoint")
        args += ["--quantization", flag]
    return tuple(args)


def pod_size(inst: InstanceType, pods_per_node: int, shm_bytes: int) -> tuple[int, int]:
    """CPU (millicores) and memory (bytes, with /dev/shm, which counts against the limit) per
    pod: its share of the node's allocatable, rounded down to whole 100 m and GiB."""
    cpu, memory = pod_resources(inst.allocatable, pods_per_node)
    if memory <= shm_bytes:
        raise RenderError(f"{inst.name} leaves {memory / GIB:.1f} GiB of memory per pod, not "
                          f"enough for a {shm_bytes / GIB:.0f} GiB /dev/shm.")
    return cpu, memory


def _mapping(value: object) -> dict[str, Any]:
    return dict(value) if isinstance(value, dict) else {}


def _engine_key(spec: WorkloadSpec, choice: Candidate, catalog: HardwareCatalog,
                inst: InstanceType) -> tuple[str, Accelerator | None]:
    """The images.yaml row that serves the plan, and the instance's accelerator (None: CPU)."""
    if inst.accelerator_id is None:
        if spec.task != "embedding" or spec.engine not in ("vllm", "hf"):
            raise RenderError(f"the plan chose {inst.name}, a CPU instance: render builds CPU "
                              f"servers for embeddings only (text-embeddings-inference), not "
                              f"task {spec.task} with engine {spec.engine}.",
                              hint="restrict constraints.families to GPU families (g6e, p5 "
                                   "...) for text generation")
        return "tei_cpu", None
    acc = accelerator_of(catalog, inst)
    _check_hardware(spec, choice, acc, inst)
    if acc.is_neuron:
        return "vllm_neuron", acc
    return {"trtllm": "triton_trtllm", "sglang": "sglang"}.get(spec.engine, "vllm"), acc


def _tei_args(model: Model, choice: Candidate, row: dict[str, Any]) -> tuple[str, ...]:
    """text-embeddings-router's flags: the plan's batch as the requests in one batch."""
    batch = choice.concurrency(load_calibration().engine("vllm").embedding_batch)
    return ("--port", str(row["port"]), "--prometheus-port", str(row["metrics_port"]),
            "--served-model-name", model.id, "--max-batch-requests", str(batch))


def _server_args(spec: WorkloadSpec, model: Model, choice: Candidate, key: str,
                 acc: Accelerator | None, row: dict[str, Any]) -> tuple[str, ...]:
    if key == "tei_cpu":
        return _tei_args(model, choice, row)
    if key == "triton_trtllm":
        return ()  # the Triton builder writes its command from ``engine_build``
    if key == "sglang":
        return _sglang_args(spec, model, choice, row)
    if acc is not None and acc.is_neuron:
        return _neuron_args(spec, model, choice, acc, row)
    return _engine_args(spec, model, choice, row)


def _engine_build(spec: WorkloadSpec, model: Model, choice: Candidate, key: str,
                  ) -> EngineBuild | None:
    if key != "triton_trtllm":
        return None
    batch = choice.concurrency(load_calibration().engine("vllm").max_num_seqs)
    context = spec.tokens.context
    return EngineBuild(tp=choice.tp, pp=choice.pp, max_batch_size=batch,
                       max_input_len=min(spec.tokens.input_high, context), max_seq_len=context,
                       weight_format=choice.weight_format,
                       model_type=model.architecture.model_type)


def _sizes(inst: InstanceType, choice: Candidate, row: dict[str, Any],
           ) -> tuple[int, int, int, int]:
    """(devices per pod, pods per node, nodes per replica, /dev/shm bytes). A CPU instance
    holds one pod, which takes the node."""
    if inst.accelerator_id is None:
        return 0, 1, 1, int(row["shm_gib_per_tp_rank"]) * GIB
    gpus = choice.tp * choice.pp
    group = max(1, gpus // inst.accelerator_count)  # nodes per replica (whole nodes)
    gpus = min(gpus, inst.accelerator_count)  # per pod: one pod per node in a group
    shm = int(row["shm_gib_per_tp_rank"]) * min(choice.tp, gpus) * GIB
    return gpus, inst.accelerator_count // gpus, group, shm


def _check_engine_fits(key: str, row: dict[str, Any], inst: InstanceType, group: int) -> None:
    """The image runs on the node's CPU architecture, and a replica across nodes is vLLM's."""
    arch = "arm64" if inst.cpu_architecture == "arm64" else "amd64"
    if arch not in row.get("architectures", [arch]):
        raise RenderError(f"the plan chose {inst.name} ({arch}), but the pinned "
                          f"{row['image']} image is built for {', '.join(row['architectures'])} "
                          "only.",
                          hint=f"exclude the {inst.family} family (constraints."
                               "exclude_families) so that the plan picks an x86-64 instance")
    if group > 1 and key != "vllm":
        raise RenderError(f"one replica spans {group} nodes, which render builds for vLLM only "
                          "(a LeaderWorkerSet with Ray); Triton runs within one node.",
                          hint="set engine: vllm, or allow a larger instance family or "
                               "quantize so that one node holds a replica")


def serving_context(spec: WorkloadSpec, plan: Plan, model: Model, catalog: HardwareCatalog,
                    options: RenderOptions) -> RenderContext:
    """The render's view of a serving plan; ``RenderError`` for what it cannot build yet."""
    choice = plan.choice
    if choice is None:
        raise RenderError("the plan has no chosen configuration to render.")
    inst = find_instance(catalog, choice.instance_type)
    check_spec(spec)
    engine_key, acc = _engine_key(spec, choice, catalog, inst)
    images: dict[str, Any] = read_yaml("images.yaml")
    row = images[engine_key]
    extras = dict(plan.extras)
    scaling, cold = _mapping(extras.get("autoscaling")), _mapping(extras.get("cold_start"))
    cache = str(extras.get("model_cache") or "s3")
    if cache not in CACHES:
        raise RenderError(f"the plan's model cache {cache!r} cannot be rendered.",
                          hint="one of " + ", ".join(CACHES))
    gpus, per_node, group, shm = _sizes(inst, choice, row)
    _check_engine_fits(engine_key, row, inst, group)
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
        engine_args=_server_args(spec, model, choice, engine_key, acc, row),
        # the metric is the engine's: the plan names vLLM's, which other engines do not export
        scale_metric=str(row.get("scale_metric") or scaling.get("metric") or SCALE_METRIC),
        scale_target=int(scaling.get("target_per_replica") or 1), images=images,
        engine_key=engine_key, group_size=group, expose=spec.render.expose,
        engine_build=_engine_build(spec, model, choice, engine_key),
    )
