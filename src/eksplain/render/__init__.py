"""The render use case: from a plan to Kubernetes objects, grouped one file per concern.

    serving_context   a serving plan in Kubernetes terms: vLLM (CUDA, Neuron), Triton with
                      TensorRT-LLM, or text-embeddings-inference on CPU (refuses what is not
                      built yet)
    training_context  a training plan in Kubernetes terms (training module)
    build             objects per file, as plain dicts (workload, cache, karpenter, training)
    output            deterministic YAML, kustomization.yaml, README.md, writing a directory
    check             schema validation (core kinds and CRDs) and cross-object checks

Apply order is the file order: namespace and quota, nodes, storage, workload, network,
autoscaling, monitoring.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eksplain.catalog import Model
from eksplain.errors import RenderError
from eksplain.hardware import HardwareCatalog
from eksplain.render import batch, rayjob
from eksplain.render import training as t
from eksplain.render import workload as w
from eksplain.render.cache import cache_objects, cache_volume
from eksplain.render.context import RenderContext, RenderOptions, serving_context
from eksplain.render.exposure import ingress
from eksplain.render.karpenter import ec2_node_class, node_pool
from eksplain.render.training import TRAINING_TASKS, training_context
from eksplain.search import Plan
from eksplain.search.serving import BATCH_DEFAULT_DEADLINE_S
from eksplain.spec import WorkloadSpec

__all__ = ["Manifests", "RenderOptions", "build", "render_plan"]

BATCH_ENGINES = ("vllm", "vllm_neuron")  # images.yaml rows with an offline batch runner



@dataclass(frozen=True)
class Manifests:
    """The rendered objects, one file name per concern, in apply order."""

    files: tuple[tuple[str, tuple[dict[str, Any], ...]], ...]
    context: RenderContext

    @property
    def objects(self) -> tuple[dict[str, Any], ...]:
        return tuple(obj for _, objs in self.files for obj in objs)


def build(ctx: RenderContext, deadline_s: float | None = None) -> Manifests:
    """The objects of a context: training, a batch Job (``deadline_s`` given) or serving."""
    if ctx.training is not None:
        return _build_training(ctx)
    if deadline_s is not None:
        return _build_batch(ctx, deadline_s)
    autoscaler = w.scaled_object(ctx) if ctx.options.autoscaler == "keda" else w.hpa(ctx)
    server = (w.leader_worker_set(ctx, cache_volume(ctx)) if ctx.group_size > 1
              else w.deployment(ctx, cache_volume(ctx)))
    files: list[tuple[str, list[dict[str, Any]]]] = [
        ("00-namespace.yaml", [w.namespace(ctx), w.resource_quota(ctx)]),
        ("10-nodes.yaml", [ec2_node_class(ctx), node_pool(ctx)]),
        ("20-model-cache.yaml", cache_objects(ctx)),
        ("30-deployment.yaml", [w.service_account(ctx), server]),
        ("40-service.yaml", [w.service(ctx), *([ingress(ctx)] if ctx.expose == "alb" else []),
                             w.network_policy(ctx)]),
        ("50-autoscaling.yaml", [autoscaler, w.disruption_budget(ctx)]),
        ("60-monitoring.yaml", [w.service_monitor(ctx)]),
    ]
    return Manifests(tuple((name, tuple(objs)) for name, objs in files if objs), ctx)


def _build_training(ctx: RenderContext) -> Manifests:
    files: list[tuple[str, list[dict[str, Any]]]] = [
        ("00-namespace.yaml", [w.namespace(ctx), w.resource_quota(ctx)]),
        ("10-nodes.yaml", [ec2_node_class(ctx), node_pool(ctx)]),
        ("20-storage.yaml", t.storage_objects(ctx)),
        ("30-training-job.yaml", [w.service_account(ctx), _training_job(ctx)]),
        ("40-network.yaml", [_training_network_policy(ctx)]),
    ]
    return Manifests(tuple((name, tuple(objs)) for name, objs in files), ctx)


def _training_network_policy(ctx: RenderContext) -> dict[str, Any]:
    ray = t.layout_of(ctx).launcher == "rayjob"
    return rayjob.ray_network_policy(ctx) if ray else t.network_policy(ctx)


def _training_job(ctx: RenderContext) -> dict[str, Any]:
    launcher = t.layout_of(ctx).launcher
    return rayjob.ray_job(ctx) if launcher == "rayjob" else t.training_job(ctx)


def _build_batch(ctx: RenderContext, deadline_s: float) -> Manifests:
    if ctx.engine_key not in BATCH_ENGINES:
        raise RenderError(f"batch inference runs vLLM's batch runner; the plan's engine "
                          f"({ctx.engine_key}) has none that render builds.",
                          hint="set engine: vllm (or neuron) for batch-inference")
    files: list[tuple[str, list[dict[str, Any]]]] = [
        ("00-namespace.yaml", [w.namespace(ctx), w.resource_quota(ctx)]),
        ("10-nodes.yaml", [ec2_node_class(ctx), node_pool(ctx)]),
        ("20-storage.yaml", [*cache_objects(ctx), *batch.data_objects(ctx)]),
        ("30-batch-job.yaml", [w.service_account(ctx),
                               batch.batch_job(ctx, cache_volume(ctx), deadline_s)]),
        ("40-network.yaml", [batch.network_policy(ctx)]),
    ]
    return Manifests(tuple((name, tuple(objs)) for name, objs in files), ctx)


def render_plan(spec: WorkloadSpec, plan: Plan, model: Model, catalog: HardwareCatalog,
                options: RenderOptions) -> Manifests:
    """The manifests of a plan; ``RenderError`` for what render does not build yet."""
    if spec.task in TRAINING_TASKS:
        return build(training_context(spec, plan, model, catalog, options))
    ctx = serving_context(spec, plan, model, catalog, options)
    if spec.task == "batch-inference":
        return build(ctx, _deadline_s(spec, plan))
    return build(ctx)


def _deadline_s(spec: WorkloadSpec, plan: Plan) -> float:
    """The spec's deadline, else the one the plan assumed."""
    choice = plan.choice
    assumed = choice.detail("deadline_s") if choice is not None else None
    return float(spec.slo.deadline or assumed or 0) or BATCH_DEFAULT_DEADLINE_S
