"""Rendered objects as files: deterministic YAML, a kustomization.yaml and a README.md.

The same manifests always give the same bytes: keys keep the builders' order, lists keep theirs
(they are built sorted where order does not matter), no timestamps, no YAML anchors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from eksplain.errors import RenderError
from eksplain.render import Manifests, triton
from eksplain.render.context import KUBERNETES_VERSION, RenderContext
from eksplain.render.training import TrainingLayout
from eksplain.render.workload import adapter_metric, quantity
from eksplain.units import GIB

__all__ = ["dump", "file_texts", "stream", "write_files"]


class _Dumper(yaml.SafeDumper):
    """Block style, and never an anchor or alias (``&id001``) for a repeated value."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def dump(objects: tuple[dict[str, Any], ...]) -> str:
    return yaml.dump_all(list(objects), Dumper=_Dumper, sort_keys=False,
                         default_flow_style=False, width=100, allow_unicode=True)


def stream(manifests: Manifests) -> str:
    """Every object as one multi-document YAML stream, in apply order."""
    return dump(manifests.objects)


def _kustomization(manifests: Manifests) -> str:
    doc = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
           "resources": [name for name, _ in manifests.files]}
    return dump((doc,))


_WHAT = {
    "Namespace": "the namespace, enforcing the restricted Pod Security Standard",
    "ResourceQuota": "caps the namespace's accelerators at the autoscaler's maximum",
    "EC2NodeClass": "how Karpenter launches the nodes: AMI, IAM role, subnets, disks",
    "NodePool": "exactly the plan's instance type and capacity type, tainted for these pods",
    "StorageClass": "the shared file system that caches the model",
    "PersistentVolumeClaim": "the model cache volume the pods mount",
    "ServiceAccount": "the pods' identity (associate it with an IAM role for S3 access)",
    "Deployment": "the vLLM server with the plan's parallelism, limits and probes",
    "LeaderWorkerSet": "the vLLM server across nodes: per replica, a leader (the server, Ray's "
                       "head) and workers that hold the other nodes' GPUs",
    "Service": "the server's stable address inside the cluster",
    "Ingress": "an internal ALB in front of the Service, health-checked on the engine's "
               "health path",
    "NetworkPolicy": "admits traffic to the server's port only",
    "HorizontalPodAutoscaler": "scales replicas on the requests each pod holds (running + "
                               "waiting)",
    "ScaledObject": "KEDA scales replicas on the requests each pod holds (running + waiting) "
                    "from Prometheus",
    "PodDisruptionBudget": "at most one replica down during node drains",
    "ServiceMonitor": "Prometheus scrapes the engine's /metrics",
}


# What the objects of a training render are for, where it differs from serving.
_WHAT_TRAINING = {
    **_WHAT,
    "ResourceQuota": "caps the namespace's accelerators at the job's nodes",
    "NodePool": "exactly the plan's instance type and capacity type in one zone, tainted for "
                "the job, never expired while the job runs",
    "StorageClass": "FSx for Lustre PERSISTENT_2 (125 MB/s per TiB), retained when the claim "
                    "is deleted",
    "PersistentVolumeClaim": "data and checkpoints, shared by every node of the job",
    "ServiceAccount": "the job's identity (associate it with an IAM role for S3 access)",
    "PyTorchJob": "torchrun on every node with the plan's layout (Kubeflow training operator)",
    "JobSet": "torchrun on every node with the plan's layout, one indexed pod per node rank",
    "RayJob": "a Ray cluster of the plan's nodes for one Ray Train job, deleted when it ends "
              "(KubeRay)",
    "NetworkPolicy": "admits traffic from the job's own pods only",
}
_WHAT_RAY = {**_WHAT_TRAINING, "NetworkPolicy": "admits traffic from the job's own pods, and "
             "the KubeRay operator to the head's dashboard"}


_LAUNCHERS = {"pytorchjob": "Kubeflow training operator (PyTorchJob v1)",
              "jobset": "JobSet controller (jobset.x-k8s.io/v1alpha2)",
              "rayjob": "KubeRay operator (RayJob ray.io/v1)"}


_WHAT_BATCH = {
    **_WHAT,
    "ResourceQuota": "caps the namespace's accelerators at the Job's pods",
    "StorageClass": "a file system: the model cache, or the request shards and their results",
    "PersistentVolumeClaim": "the model cache, or the request shards and their results",
    "Job": "vLLM's batch runner, one indexed pod per shard, all at once, stopped at the deadline",
    "NetworkPolicy": "admits no traffic to the pods (the runner serves nothing)",
}


def _objects(manifests: Manifests, what: dict[str, str]) -> list[str]:
    lines = ["## Apply order", "",
             "`kubectl apply -k .` applies everything; by hand, apply the files in this order:", ""]
    for name, objs in manifests.files:
        lines.append(f"- `{name}`")
        for obj in objs:
            lines.append(f"  - {obj['kind']} `{obj['metadata']['name']}`: {what[obj['kind']]}")
    return lines


def _launch_lines(ctx: RenderContext, t: TrainingLayout) -> list[str]:
    """How the job starts the user's script: torchrun, or Ray Train under a RayJob."""
    row = ctx.images[t.image_key]
    build = (f"eksplain writes no training code: build an image FROM that one with your "
             f"script at `{row['entrypoint']}` and set it in `30-training-job.yaml`.")
    if t.launcher != "rayjob":
        return [f"The job runs `torchrun --nnodes {t.nodes} --nproc-per-node "
                f"{t.procs_per_node} {row['entrypoint']}` in `{ctx.image(t.image_key)}`. "
                f"{build} The script reads the plan's layout from the environment:"]
    return [f"The job runs `python {row['entrypoint']}` in `{ctx.image(t.image_key)}` (Ray on "
            "CUDA, without PyTorch: add it to your image) on the Ray head, through Ray Train, "
            "not torchrun: "
            "the script is the driver and starts its training function with `TorchTrainer`, "
            f"`ScalingConfig(num_workers={t.nodes * t.procs_per_node}, use_gpu=True)` (one "
            f"worker per GPU, {t.procs_per_node} on each of the {t.nodes} worker pods; Ray "
            "Train sets up the process group). "
            f"{build}"
            + (" The image ships no EFA libraries (libfabric, aws-ofi-nccl): add them, or "
               "NCCL falls back to TCP." if t.efa_per_pod else "")
            + " The head is a small CPU pod on one of the GPU nodes (the "
            "workers are sized to leave it room); the cluster is deleted "
            f"{row['ttl_after_finished_s']} s after the job ends. The NetworkPolicy admits "
            "pods labelled `app.kubernetes.io/name: kuberay-operator` (any namespace) to the "
            f"dashboard port {row['dashboard_port']}, where the operator follows the job: "
            "change the label if your operator's differs. The script reads the plan's "
            "layout from the environment:"]


def _training_readme(manifests: Manifests, t: TrainingLayout) -> str:
    ctx = manifests.context
    nodes = f"{t.nodes} x {ctx.instance.name}"
    lines = [f"# {ctx.task} of {ctx.model_id} on {nodes}", "",
             "Rendered by `eksplain render`. `eksplain render --check` validates the objects "
             f"against the Kubernetes {KUBERNETES_VERSION} schemas, the CRDs of Karpenter v1 and "
             f"the {_LAUNCHERS[t.launcher]}, and each other.", "",
             *_objects(manifests, _WHAT_RAY if t.launcher == "rayjob" else _WHAT_TRAINING),
             "",
             "## What the container must run", "",
             *_launch_lines(ctx, t), "",
             f"- `EKSPLAIN_TP`={t.tp}, `EKSPLAIN_PP`={t.pp}, `EKSPLAIN_DP`={t.dp}: tensor, "
             "pipeline and data parallel sizes (TP x PP x DP = world size"
             + (", counted in Neuron devices; torchrun starts one process per NeuronCore)"
                if ctx.device.is_neuron else ")"),
             f"- `EKSPLAIN_FSDP`={t.fsdp}: shard parameters, gradients and optimizer states "
             "(full) or not (none)",
             f"- `EKSPLAIN_MICRO_BATCH`={t.micro_batch} sequences of `EKSPLAIN_SEQ_LEN`="
             f"{t.seq_len} tokens per device, `EKSPLAIN_RECOMPUTE`={t.recompute} "
             "(activation recomputation: none, selective or full)",
             "- `EKSPLAIN_DATA_DIR` (read the dataset from here), `EKSPLAIN_CHECKPOINT_DIR` "
             "(write checkpoints here, resume from the latest on start), "
             f"`EKSPLAIN_CHECKPOINT_INTERVAL_S`={t.checkpoint_interval_s} (the plan's interval)",
             "", "## Before you apply", "",
             f"- the cluster runs Karpenter v1, the {_LAUNCHERS[t.launcher]}, "
             f"the {_plugin(ctx)} device plugin"
             + (" and the EFA device plugin (`vpc.amazonaws.com/efa`)" if t.efa_per_pod else ""),
             f"- the FSx for Lustre CSI driver; in `20-storage.yaml` a subnet in zone "
             f"`{ctx.zones[0]}` (the NodePool's zone: change both together) and a security group "
             "that admits Lustre (TCP 988, 1018-1023) from the nodes",
             f"- the dataset copied to `data/` on the file system ({quantity(t.storage_bytes)}, "
             "sized for two checkpoints: grow the claim for a large dataset)",
             *_cluster_prerequisites(ctx, "gated base models")]
    if t.efa_per_pod:
        lines.append("- a security group that allows all traffic between the nodes (EFA "
                     "requires it) and a capacity reservation or placement in one zone")
        lines.append("- containerd's locked-memory limit unlimited (the EKS AMIs set it): EFA "
                     "pins memory, and the pods run without extra capabilities")
    return "\n".join(lines) + "\n"


def _batch_readme(manifests: Manifests) -> str:
    ctx = manifests.context
    job = next(o for o in manifests.objects if o["kind"] == "Job")["spec"]
    shards = job["completions"]
    lines = [f"# batch inference of {ctx.model_id} on {shards} x {ctx.instance.name}", "",
             "Rendered by `eksplain render`. `eksplain render --check` validates the objects "
             f"against the Kubernetes {KUBERNETES_VERSION} schemas, the CRDs of Karpenter v1, "
             "and each other.", "", *_objects(manifests, _WHAT_BATCH), "",
             "## What the container runs", "",
             f"Each of the {shards} pods runs `vllm run-batch` (vLLM's offline runner for the "
             f"OpenAI batch file format) in `{ctx.image(ctx.engine_key)}` with the plan's "
             "engine flags: it reads `/data/input/shard-<i>.jsonl` and writes "
             "`/data/output/shard-<i>.jsonl`, "
             f"where i = 0 ... {shards - 1} is the pod's completion index. Split your requests "
             f"into {shards} such files before you apply; each request's `model` is "
             f"`{ctx.model_id}` (the `--served-model-name`). The Job is stopped after "
             f"{job['activeDeadlineSeconds']:,} s (the spec's deadline), done or not; a shard "
             f"is retried {job['backoffLimitPerIndex']} times on its own.", "",
             "## Before you apply", "",
             f"- the cluster runs Karpenter v1 and the {_plugin(ctx)} device plugin",
             "- the FSx for Lustre CSI driver, and the placeholders (`REPLACE-ME`) in "
             "`20-storage.yaml` set to your subnet and security group; grow the claim "
             "beyond its smallest size for large batches",
             *_cluster_prerequisites(ctx, "gated models")]
    if ctx.cache == "s3":
        lines.append(_s3_prerequisite(ctx))
    return "\n".join(lines) + "\n"


def _cluster_prerequisites(ctx: RenderContext, secret_for: str) -> list[str]:
    """What every render's README asks of the cluster: the token Secret and Karpenter's tags."""
    o = ctx.options
    return [f"- create the Secret `{o.hf_token_secret}` (key `HF_TOKEN`) in namespace "
            f"`{ctx.namespace}` for {secret_for}; it is never written here",
            f"- the node role `KarpenterNodeRole-{o.cluster_name}` and subnets and "
            f"security groups tagged `karpenter.sh/discovery: {o.cluster_name}`"]


def _s3_prerequisite(ctx: RenderContext) -> str:
    return (f"- the weights under `s3://{ctx.options.model_bucket}/{ctx.model_id}/`, "
            f"readable by ServiceAccount `{ctx.name}` (EKS Pod Identity or IRSA)")


_SERVERS = {
    "vllm": "the vLLM server with the plan's parallelism, limits and probes",
    "vllm_neuron": "the vLLM server on Neuron (NxD Inference) with the plan's parallelism, "
                   "limits and probes",
    "sglang": "the SGLang server with the plan's parallelism, limits and probes",
    "triton_trtllm": "Triton with the TensorRT-LLM backend: an init container builds the "
                     "engine for the plan's layout, then the server runs with its limits and "
                     "probes",
    "tei_cpu": "text-embeddings-inference on CPU, sized from the node's allocatable CPU and "
               "memory, with its probes",
}


def _what(ctx: RenderContext) -> dict[str, str]:
    """What each serving object is for, for this engine and hardware."""
    what = {**_WHAT, "Deployment": _SERVERS[ctx.engine_key]}
    if ctx.expose == "nlb":
        what["Service"] = ("the server's address: an internal NLB, health-checked on the "
                           "engine's health path")
    if ctx.accelerator is None:
        what["ResourceQuota"] = ("caps the namespace's CPU and memory at the autoscaler's "
                                 "maximum")
        what["NodePool"] = ("exactly the plan's CPU instance type and capacity type, tainted "
                            "for these pods")
    return what


def _prerequisites(ctx: RenderContext) -> list[str]:
    devices = f", the {_plugin(ctx)} device plugin" if ctx.accelerator is not None else ""
    lines = [f"- the cluster runs Karpenter v1{devices} and the Prometheus operator"
             + (", and KEDA" if ctx.options.autoscaler == "keda" else
                ", and the Prometheus adapter with a rule that serves "
                f"`{ctx.scale_metric}` per pod as `{adapter_metric(ctx)}`"),
             *_cluster_prerequisites(ctx, "gated models")]
    if ctx.cache == "s3":
        lines.append(_s3_prerequisite(ctx))
    else:
        lines.append(f"- the {ctx.cache} CSI driver, and the placeholders (`REPLACE-ME`) in "
                     "`20-model-cache.yaml` set to your subnet, security group or file system")
        lines.append("- the cache seeded with the model before the first rollout: the startup "
                     "probe allows the plan's cold start from the cache, not a download from "
                     "the Hugging Face hub")
    if ctx.group_size > 1:
        lines.append("- the LeaderWorkerSet controller (leaderworkerset.x-k8s.io/v1); Ray runs "
                     "inside the pods (the vLLM image ships it), no KubeRay operator is needed")
    if ctx.expose != "none":
        lines.append("- the AWS Load Balancer Controller (v2.5 or later), and private subnets "
                     "tagged `kubernetes.io/role/internal-elb: 1`")
    if ctx.accelerator is not None and ctx.accelerator.is_neuron:
        lines.append("- the model compiled for Neuron ahead of the first rollout (NxD Inference "
                     "compiles for the `--max-model-len` and `--max-num-seqs` in "
                     "`30-deployment.yaml`): a first compile can outlast the startup probe, "
                     "which allows only the plan's load and warm-up")
    return lines


def _triton_lines(ctx: RenderContext) -> list[str]:
    """What the Triton render runs, and what the user must supply for it to work."""
    row, b = ctx.engine, triton.build_of(ctx)
    src = row["source_dir"]
    ranks = b.tp * b.pp
    return [
        "", "## What the containers run", "",
        f"The init container `build-engine` (in `{ctx.image(ctx.engine_key)}`, TensorRT-LLM "
        f"{row['trtllm_version']}) converts the checkpoint for TP={b.tp} x PP={b.pp} "
        f"({b.weight_format} weights) and runs `trtllm-build --max_batch_size "
        f"{b.max_batch_size} --max_input_len {b.max_input_len} --max_seq_len {b.max_seq_len}` "
        f"into `{triton.engine_dir(ctx)}` on the model cache, unless an engine is already there; "
        f"then it fills the backend's model repository at `{triton.repository_dir()}`. The "
        "server container runs `tritonserver` on it"
        + (f", one process per rank ({ranks}) under `mpirun`" if ranks > 1 else "")
        + f": HTTP on {row['port']}, gRPC on {row['grpc_port']}, metrics on "
        f"{row['metrics_port']}; requests go to the `ensemble` model "
        "(`/v2/models/ensemble/generate`), not an OpenAI API.", "",
        "## What you must supply (this render does not work without it)", "",
        f"- an image built FROM `{ctx.image(ctx.engine_key)}` that adds a TensorRT-LLM "
        f"{row['trtllm_version']} checkout at `{src}` (`examples/` for the converters, "
        "`triton_backend/all_models/inflight_batcher_llm` and "
        "`triton_backend/tools/fill_template.py` for the model repository; older releases keep "
        "those two in the tensorrtllm_backend repository), set as the image of both containers "
        "in `30-deployment.yaml`",
        "- a GPU of the NodePool's type for the build: engines run only on the GPU type they "
        "were built on. The first pod spends the build (minutes to an hour for large models) "
        "before the startup probe starts; the S3 cache keeps the engine on the node's disk "
        "only, so every new pod builds again (a shared cache builds once)",
        "- for fp8 and AWQ weights, network access from the build to the calibration dataset "
        "that `quantize.py` downloads",
        "- the fill_template.py keys and converter paths checked against your checkout: they "
        "follow the backend's documentation and change between releases; this render was not "
        "run against a GPU",
    ]


def _tei_lines(ctx: RenderContext) -> list[str]:
    return [
        "", "## What the container runs", "",
        f"`text-embeddings-router` (`{ctx.image(ctx.engine_key)}`) on {ctx.instance.name}, "
        "a CPU instance: the plan chose no accelerator, and the vLLM CUDA image needs one. It "
        f"serves the model on port {ctx.engine['port']} (`/embed`, and `/v1/embeddings` "
        f"OpenAI-style) and Prometheus metrics on {ctx.engine['metrics_port']}; the "
        f"autoscaler reads `{ctx.scale_metric}`. The container's requests are "
        f"{ctx.cpu_millicores / 1000:g} CPU and {ctx.memory_bytes / GIB:.0f} GiB, the node's "
        "allocatable less a share for DaemonSets. TEI reads a Hugging Face token from the "
        "environment, not from the mounted file: seed the cache for gated models.",
    ]


def _readme(manifests: Manifests) -> str:
    ctx = manifests.context
    if ctx.training is not None:
        return _training_readme(manifests, ctx.training)
    if ctx.task == "batch-inference":
        return _batch_readme(manifests)
    lines = [f"# {ctx.model_id} on {ctx.instance.name}", "",
             "Rendered by `eksplain render`. `eksplain render --check` validates the objects "
             f"against the Kubernetes {KUBERNETES_VERSION} schemas, the CRDs of Karpenter v1, "
             + ("LeaderWorkerSet v1, " if ctx.group_size > 1 else "")
             + "KEDA v2 and the Prometheus operator, and each other.", "",
             *_objects(manifests, _what(ctx))]
    if ctx.engine_key == "triton_trtllm":
        lines += _triton_lines(ctx)
    elif ctx.engine_key == "tei_cpu":
        lines += _tei_lines(ctx)
    lines += ["", "## Before you apply", "", *_prerequisites(ctx)]
    return "\n".join(lines) + "\n"


def _plugin(ctx: RenderContext) -> str:
    return "Neuron" if ctx.device.is_neuron else "NVIDIA"


def file_texts(manifests: Manifests) -> tuple[tuple[str, str], ...]:
    """(file name, text) of every file the render writes, in apply order."""
    texts = [(name, dump(objs)) for name, objs in manifests.files]
    return (*texts, ("kustomization.yaml", _kustomization(manifests)),
            ("README.md", _readme(manifests)))


def write_files(files: tuple[tuple[str, str], ...], out_dir: Path, force: bool) -> tuple[Path, ...]:
    """Write the files into ``out_dir``. An existing directory is refused unless ``force``; even
    then only the render's own files are overwritten, and nothing else is deleted."""
    if out_dir.exists() and not force:
        raise RenderError(f"{out_dir} already exists.",
                          hint="choose a new directory, or pass --force to overwrite the "
                               "rendered files in it (other files are left alone)")
    if out_dir.exists() and not out_dir.is_dir():
        raise RenderError(f"{out_dir} exists and is not a directory.")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        paths = []
        for name, text in files:
            path = out_dir / name
            path.write_text(text, encoding="utf-8")
            paths.append(path)
    except OSError as exc:
        raise RenderError(f"Cannot write to {out_dir}: {exc.strerror}.") from exc
    return tuple(paths)
