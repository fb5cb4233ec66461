"""The plan use case: from a workload spec to the cheapest configuration that meets it.

    enumerate -> estimate -> check -> select, as in SkyPilot's optimizer: the serving search
    (``search.serving``) and the training search (``search.training``) return accepted
    candidates and rejections; ``plan`` ranks them, builds the Pareto front, the autoscaling and
    storage decisions, and the explanation of each decision with its glossary terms. Embedding
    specs also get CPU-only candidates (``search.cpu``), ranked with the accelerated ones and
    compared in dollars per million requests; training on spot counts its expected
    interruptions (``search.interruptions``).

Objective: minimise monthly dollars with autoscaling over the spec's traffic (serving), dollars
for the whole run within the deadline (training and batch). Candidates on the Pareto front within
2% of the cheapest count as a tie, won by the fewest nodes; then lower latency (or time), then the
name, so the same spec always gives the same plan.
"""

from __future__ import annotations

from collections import defaultdict

from eksplain.catalog import Model, resolve_model
from eksplain.checkpoint import (
    cold_start_seconds,
    load_storage,
    node_provisioning_seconds,
    read_seconds,
    storage_usd_per_month,
)
from eksplain.datafiles import read_yaml
from eksplain.errors import InfeasibleError
from eksplain.hardware import HardwareCatalog, find_instance
from eksplain.search.cpu import CPU, cpu_vs_accelerator, search_cpu
from eksplain.search.plan import Candidate, Decision, Plan, Rejection, pareto_front
from eksplain.search.serving import search_serving
from eksplain.search.training import data_tokens, search_training
from eksplain.spec import WorkloadSpec
from eksplain.units import GIB

__all__ = ["DECISION_TERMS", "SCALE_METRIC", "Candidate", "Decision", "Plan", "Rejection", "plan",
           "rejection_counts"]

# Every glossary key a plan's decisions may carry (a test checks each is in the glossary).
DECISION_TERMS = frozenset({
    "accelerator", "gpu", "inferentia", "attention", "batch-size", "throughput",
    "model-parallelism", "multi-gpu", "quantization", "auto-scaling", "hpa", "replica",
    "storage-class", "fsx-lustre", "volume", "container-registry", "distributed-training",
    "data-parallelism", "pipeline-parallelism", "efa", "checkpoint", "embedding", "bert",
})

COLD_LOAD_LIMIT_S = 120.0  # the model cache must load a replica's weights within two minutes
# Where a new node reads the weights from; instance NVMe starts empty on a new node, so it can
# only cache what one of these delivered (the init container of the render copies from S3).
CACHE_OPTIONS = ("s3", "fsx-lustre", "efs")
# What a replica holds, in service or queued: vLLM's Prometheus gauges, summed. Running alone
# cannot pass the target when --max-num-seqs is the target, so a queue would never scale out.
SCALE_METRIC = "vllm:num_requests_running + vllm:num_requests_waiting"


NEAR_TIE = 0.02  # candidates within 2% of the cheapest count as equally cheap


def _rank(cands: list[Candidate]) -> tuple[Candidate, ...]:
    """Cheapest first; among the Pareto front's candidates within NEAR_TIE of the cheapest,
    fewest nodes first (a smaller fleet is simpler to run and fails less often for the same
    dollars). Only the front's: a candidate that another beats on both cost and latency (or
    time) is never chosen, however few its nodes."""
    ordered = sorted(cands, key=lambda c: (c.objective, c.latency_s, c.label))
    if not ordered:
        return ()
    limit = ordered[0].objective * (1 + NEAR_TIE)
    front = pareto_front(tuple(ordered))
    near = sorted((c for c in front if c.objective <= limit),
                  key=lambda c: (c.nodes, c.objective, c.latency_s, c.label))
    return (*near, *(c for c in ordered if c not in near))


def _limit_advice(spec: WorkloadSpec, r: Rejection) -> str | None:
    """What would let the closest rejected candidate of one kind pass."""
    gap = r.gap or 1.0
    if r.code == "memory":
        options = [f for f in ("fp8", "awq") if f not in spec.precision]
        return (f"the closest fit ({r.label}) needs {gap - 1:.1%} more memory than it has: "
                "allow a larger instance family" + (
                    f", or quantize to {' or '.join(options)}" if options else ""))
    if r.code in ("ttft", "tpot", "e2e"):
        return f"relax the {r.code.upper()} SLO by {gap - 1:.0%} ({r.label}: {r.reason})"
    if r.code == "budget":
        return f"raise the budget by {gap - 1:.0%} ({r.label}: {r.reason})"
    if r.code == "deadline":
        return f"extend the deadline by {gap - 1:.0%} or allow more nodes ({r.label})"
    if r.code == "nodes":
        return f"allow {gap - 1:.0%} more than max_nodes ({r.label})"
    return None


def _advice(spec: WorkloadSpec, rejections: list[Rejection]) -> tuple[str, ...]:
    """What would have to change, from the closest rejected candidates of each kind."""
    closest: dict[str, Rejection] = {}
    for r in rejections:
        if r.gap is not None and (r.code not in closest or r.gap < (closest[r.code].gap or 0)):
            closest[r.code] = r
    advice = []
    unpriced = sum(r.code == "price" for r in rejections)
    if unpriced:
        c = spec.constraints
        advice.append(f"{unpriced} candidates have no {c.capacity_type} price in {c.region}"
                      + (" (spot prices move hourly and are not bundled)"
                         if c.capacity_type == "spot" else "")
                      + ": pass prices with --price-file")
    for _, r in sorted(closest.items()):
        text = _limit_advice(spec, r)
        if text is not None:
            advice.append(text)
    if any(r.code == "family" for r in rejections) and spec.constraints.families:
        advice.append("allow more instance families than " + ", ".join(spec.constraints.families))
    return tuple(advice)


def _model_cache(spec: WorkloadSpec, choice: Candidate, catalog: HardwareCatalog,
                 ) -> tuple[Decision, tuple[tuple[str, object], ...]]:
    """The cheapest model cache that loads a replica's weights within COLD_LOAD_LIMIT_S."""
    inst = find_instance(catalog, choice.instance_type)
    weights = int(choice.detail("weights_bytes") or 0) * choice.tp * choice.pp
    options = {o.id: o for o in load_storage()}
    rows = []
    for name in CACHE_OPTIONS:
        seconds = read_seconds(options[name], weights, inst)
        monthly = storage_usd_per_month(options[name], weights) or 0.0
        rows.append((name, round(seconds, 1), round(monthly, 2)))
    fast = [r for r in rows if r[1] <= COLD_LOAD_LIMIT_S] or [min(rows, key=lambda r: r[1])]
    name, seconds, monthly = min(fast, key=lambda r: (r[2], r[1], r[0]))
    pull, warmup = cold_start_seconds()
    node = node_provisioning_seconds()
    text = (f"model cache on {name}: a replica loads its {weights / GIB:.1f} GiB of weights in "
            f"{seconds:.0f} s (capped by the {inst.network_gbps:g} Gbps network of {inst.name} "
            f"and the storage's own throughput; ${monthly:.2f} a month), the cheapest option "
            f"within {COLD_LOAD_LIMIT_S:.0f} s; a "
            f"cold start on a node that has the image takes {seconds + warmup:.0f} s (load + "
            f"{warmup:.0f} s of engine warm-up), {pull:.0f} s more when the node must pull it, "
            f"and {node:.0f} s more when Karpenter must launch the node: "
            f"{node + pull + seconds + warmup:.0f} s in all")
    terms = ("storage-class", "fsx-lustre" if name == "fsx-lustre" else "volume",
             "container-registry")
    cold = {"weight_load_s": seconds, "engine_warmup_s": warmup, "image_pull_s": pull,
            "node_provisioning_s": node, "total_known_s": round(node + seconds + warmup + pull, 1)}
    return Decision(terms, text), (("model_cache", name), ("weight_load_s", seconds),
                                   ("cold_start", cold), ("model_cache_options", tuple(rows)))


def _batch_decision(spec: WorkloadSpec, c: Candidate, kv: int, batch: int) -> Decision:
    rps = float(c.detail("requests_per_s_per_replica") or 0)
    if spec.task == "embedding":
        return Decision(("batch-size", "throughput"),
                        f"each replica embeds {batch} request{'s' if batch != 1 else ''} per "
                        f"forward pass: {rps:,.0f} "
                        f"requests/s of {spec.tokens.input_mean} tokens")
    context = spec.tokens.context
    slo = f", and TPOT stays within {spec.slo.tpot_p95 * 1000:.0f} ms" if spec.slo.tpot_p95 else ""
    cap = ""
    if c.detail("max_num_seqs_engine") not in (None, spec.engine):
        cap = (f" ({spec.engine} has no calibration entry: vLLM's limit of "
               f"{c.detail('max_num_seqs')} sequences at once stands in for its own)")
    return Decision(("attention", "batch-size"),
                    f"each replica runs {batch} requests at once{cap}: their KV cache at the p95 "
                    f"context of {context:,} tokens is {batch * context * kv / GIB:.1f} GiB per "
                    f"device ({kv / 1024:.0f} KiB per token){slo}; {rps:.2f} requests/s per "
                    "replica")


# The server that runs each engine (data/images.yaml rows), for its queue metric.
_SERVER_OF_ENGINE = {"trtllm": "triton_trtllm", "sglang": "sglang"}


def _scale_metric(spec: WorkloadSpec, c: Candidate) -> str:
    """The deployed server's running + waiting requests metric (data/images.yaml
    ``scale_metric``): text-embeddings-inference on a CPU, the engine's server otherwise;
    vLLM's (``SCALE_METRIC``) where the row names none."""
    key = "tei_cpu" if c.accelerator == "cpu" else _SERVER_OF_ENGINE.get(spec.engine, "vllm")
    row = read_yaml("images.yaml").get(key) or {}
    return str(row.get("scale_metric") or SCALE_METRIC)


def _scaling_decision(spec: WorkloadSpec, c: Candidate, batch: int,
                      ) -> tuple[Decision, dict[str, object]]:
    """Serving: autoscale over the traffic. A batch job: a fixed set of replicas for the job."""
    rmin, rpeak = c.detail("replicas_min"), c.detail("replicas_peak")
    scaling: dict[str, object] = {"min_replicas": rmin, "max_replicas": rpeak,
                                  "metric": _scale_metric(spec, c),
                                  "target_per_replica": batch}
    if spec.task == "batch-inference":
        rps = float(c.detail("requests_per_s_per_replica") or 0)
        deadline = float(c.detail("deadline_s") or 0)
        return Decision(("replica", "throughput"),
                        f"run {rpeak} replicas for the whole job, not autoscaled: "
                        f"{int(c.detail('requests') or 0):,} requests at {rps:.2f} requests/s per "
                        f"replica take {c.latency_s / 3600:.2f} h of the {deadline / 3600:g} h "
                        "deadline; scale to zero when it is done"), scaling
    return Decision(
        ("auto-scaling", "hpa", "replica"),
        f"autoscale between {rmin} and {rpeak} replicas on the requests each replica holds, "
        f"running and waiting (target {batch} per replica, the concurrency that holds the SLO "
        "and the engine's --max-num-seqs, so a queue scales it out), not on CPU; "
        f"{spec.traffic.rps:g} requests/s on average, "
        f"{spec.traffic.rps * spec.traffic.peak_to_mean:g} at the peak"), scaling


def _hardware_decision(spec: WorkloadSpec, model: Model, c: Candidate) -> Decision:
    if c.accelerator == CPU:
        return Decision(("embedding", "bert"), f"{c.instance_type} ({c.detail('cpu_model')}, no "
                        f"accelerator) is the cheapest hardware that fits {model.id} and meets "
                        f"the SLOs: ${c.usd_per_month or 0:,.0f} a month; each replica uses "
                        f"{c.detail('cpu_cores_per_replica')} cores of the node's matrix engine "
                        f"({c.detail('cpu_peak_tops')} TOP/s peak in {c.weight_format})")
    terms = ("accelerator", "gpu" if c.accelerator.startswith("nvidia") else "inferentia")
    head = f"{c.instance_type} ({c.accelerator}) is the cheapest hardware that fits {model.id}"
    if spec.task == "batch-inference":
        return Decision(terms, f"{head} and finishes the job within the deadline: "
                        f"${c.usd_total or 0:,.0f} for the job ({c.nodes} node"
                        f"{'s' if c.nodes > 1 else ''} for {c.latency_s / 3600:.2f} h)")
    return Decision(terms, f"{head} and meets the SLOs: ${c.usd_per_month or 0:,.0f} a month")


def _serving_decisions(spec: WorkloadSpec, model: Model, ranked: tuple[Candidate, ...],
                       rejected: list[Rejection], catalog: HardwareCatalog,
                       ) -> tuple[list[Decision], tuple[tuple[str, object], ...]]:
    c = ranked[0]
    kv = int(c.detail("kv_bytes_per_token") or 0)
    batch = int(c.detail("batch") or 1)
    decisions = [_hardware_decision(spec, model, c), _batch_decision(spec, c, kv, batch)]
    compared = cpu_vs_accelerator(spec, ranked, rejected) if spec.task == "embedding" else None
    if compared is not None:
        decisions.append(compared[0])
    if c.tp > 1 or c.pp > 1:
        decisions.append(Decision(
            ("model-parallelism", "multi-gpu"),
            f"TP={c.tp}" + (f" x PP={c.pp}" if c.pp > 1 else "") + " splits each replica's "
            f"{int(c.detail('weights_bytes') or 0) * c.tp * c.pp / GIB:.0f} GiB of weights "
            "over the devices of one node" + (" and across nodes" if c.pp > 1 else "")))
    if c.weight_format != "bf16":
        decisions.append(Decision(("quantization",), f"weights in {c.weight_format} halve the "
                                  "bytes each decode step reads and leave room for KV cache"))
    scaling, autoscaling = _scaling_decision(spec, c, batch)
    decisions.append(scaling)
    cache, extras = _model_cache(spec, c, catalog)
    decisions.append(cache)
    return decisions, (("autoscaling", autoscaling), *extras,
                       *(compared[1] if compared is not None else ()))


def _data_parallel(c: Candidate) -> str:
    if c.dp == 1:
        return "one data-parallel rank: "
    if c.detail("fsdp") == "none":
        return f"and DP={c.dp} data-parallel ranks, each with the whole model: "
    return f"and FSDP over DP={c.dp}: "


def _training_decisions(spec: WorkloadSpec, c: Candidate,
                        ) -> tuple[list[Decision], tuple[tuple[str, object], ...]]:
    tokens = data_tokens(spec)
    decisions = [
        Decision(("accelerator", "distributed-training"),
                 f"{c.nodes} x {c.instance_type} ({c.devices} {c.accelerator}) is the cheapest "
                 "run" + (f" that meets the {spec.slo.deadline / 3600:,.0f} h deadline"
                          if spec.slo.deadline else "") + (
                     f": ${c.usd_total:,.0f} for {tokens:,} tokens"
                     if c.usd_total is not None and tokens else "")),
        Decision(("data-parallelism", "model-parallelism", "pipeline-parallelism"),
                 f"TP={c.tp} inside each node, PP={c.pp}, " + _data_parallel(c)
                 + f"{c.memory_bytes / GIB:.1f} GiB per device of "
                 f"{c.capacity_bytes / GIB:.1f} GiB, with recompute "
                 f"{c.detail('recompute')} at micro-batch {c.detail('micro_batch')}"),
    ]
    if c.nodes > 1:
        decisions.append(Decision(("efa", "distributed-training"),
                                  f"{c.nodes} nodes exchange gradients over EFA "
                                  f"({c.detail('efa_interfaces')} interfaces per node), kept in "
                                  "one availability zone"))
    interval = float(c.detail("checkpoint_interval_s") or 0) / 3600
    write = float(c.detail("checkpoint_write_s") or 0)
    spot = c.detail("spot_band") is not None
    decisions.append(Decision(
        ("checkpoint", "fsx-lustre" if spec.storage == "fsx-lustre" else "storage-class"),
        f"checkpoint to {spec.storage} every {interval:.1f} h (write {write:.0f} s; Young/Daly "
        "with the failure rate of Llama 3's run" + (" plus spot interruptions" if spot else "")
        + f"), losing {float(c.detail('checkpoint_overhead') or 0):.1%} of the time, included "
        "in the time and cost of the run"))
    if spot:
        decisions.append(_spot_decision(c))
    return decisions, ()


def _spot_decision(c: Candidate) -> Decision:
    """Spot training: how many interruptions to expect, and what they cost in time and money."""
    provisioning = c.detail("spot_node_provisioning_s")
    restart = float(c.detail("spot_restart_s") or 0)
    before = float(c.detail("checkpoint_interval_on_demand_s") or 0) / 3600
    return Decision(
        ("checkpoint", "distributed-training"),
        f"on spot, {c.nodes} x {c.instance_type} expect "
        f"{float(c.detail('spot_interruptions_expected') or 0):.1f} interruptions over the run "
        f"({float(c.detail('spot_interruptions_per_node_hour') or 0):.5f} per node-hour: Spot "
        f"Instance Advisor band {c.detail('spot_band')}), each losing about half an interval of "
        f"work plus a {restart / 60:.0f} min restart (image pull and checkpoint read"
        + (", node provisioning not included: no sourced figure"
           if isinstance(provisioning, str) else " and node provisioning") + "): "
        f"{float(c.detail('spot_interruption_s') or 0) / 3600:.1f} h and "
        f"${float(c.detail('spot_interruption_usd') or 0):,.0f} of the run; the checkpoint "
        f"interval shrinks from {before:.1f} h on demand to "
        f"{float(c.detail('checkpoint_interval_s') or 0) / 3600:.1f} h")


def plan(spec: WorkloadSpec, catalog: HardwareCatalog) -> Plan:
    """The cheapest plan that meets the spec, with alternatives, rejections and reasons.

    Raises ``InfeasibleError`` naming the closest candidates and what would have to change when
    nothing passes.
    """
    model = resolve_model(spec.model)
    search = search_serving if spec.serving else search_training
    accepted, rejected, evaluated = search(spec, model, catalog)
    if spec.task == "embedding":  # embeddings may not need an accelerator at all
        on_cpu, cpu_rejected, cpu_evaluated = search_cpu(spec, model, catalog)
        accepted, rejected = accepted + on_cpu, rejected + cpu_rejected
        evaluated += cpu_evaluated
    ranked = _rank(accepted)
    if not ranked:
        advice = _advice(spec, rejected)
        raise InfeasibleError(
            f"No configuration of {model.id} meets the spec ({evaluated} evaluated, "
            f"{len(rejected)} rejected).",
            hint="; ".join(advice) or "relax the constraints",
        )
    choice = ranked[0]
    if spec.serving:
        decisions, extras = _serving_decisions(spec, model, ranked, rejected, catalog)
    else:
        decisions, extras = _training_decisions(spec, choice)
    return Plan(
        task=spec.task, model_id=model.id, choice=choice, alternatives=ranked[1:],
        pareto=pareto_front(ranked), rejections=tuple(sorted(
            rejected, key=lambda r: (r.code, r.gap or 0.0, r.label))),
        decisions=tuple(decisions), evaluated=evaluated, advice=(), extras=extras,
    )


def rejection_counts(p: Plan) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for r in p.rejections:
        counts[r.code] += 1
    return dict(sorted(counts.items()))
