"""JSON forms of results: the stable contract of ``--json`` and the HTTP API (docs/json.md)."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from eksplain.api import HardwareRow
    from eksplain.catalog import ModelEntry
    from eksplain.compute import ServingSpeed, TrainingSpeed
    from eksplain.estimate import Estimate
    from eksplain.explain import Explanation
    from eksplain.explain.glossary import GlossaryEntry
    from eksplain.search.plan import Candidate, Plan
    from eksplain.sim.fleet import FleetResult
    from eksplain.sim.metrics import LatencySummary
    from eksplain.sim.scenario import Simulation
    from eksplain.sim.sweep import SweepResult
    from eksplain.sim.verify import Verification
    from eksplain.spec import WorkloadSpec

# Version of the plan JSON that `eksplain render PLAN.json` reads; raise it when keys change.
PLAN_FORMAT = 1

__all__ = [
    "PLAN_FORMAT",
    "estimate_dict",
    "explanation_dict",
    "glossary_entry_dict",
    "hardware_row_dict",
    "model_entry_dict",
    "plan_dict",
    "simulation_dict",
    "sweep_dict",
    "verification_dict",
]


def _round(value: float | None, digits: int = 6) -> float | None:
    return None if value is None else round(value, digits)


def _serving_speed(s: ServingSpeed, best: int | None) -> dict[str, Any]:
    return {
        "batch": s.batch,
        "ttft_s": _round(s.ttft_s),
        "tpot_s": _round(s.tpot_s),
        "decode_tokens_per_s": _round(s.decode_tokens_per_s, 2),
        "prefill_tokens_per_s": _round(s.prefill_tokens_per_s, 2),
        "requests_per_s": _round(s.requests_per_s, 4),
        "output_tokens_per_s": _round(s.output_tokens_per_s, 2),
        "decode_bound": s.decode_bound,
        "critical_batch": s.critical_batch,
        "max_batch_for_tpot_target": best,
        "curve": [{"batch": b, "decode_tokens_per_s": _round(t, 2), "tpot_s": _round(lat)}
                  for b, t, lat in s.curve],
    }


def _training_speed(s: TrainingSpeed, seconds: float | None, devices: int) -> dict[str, Any]:
    return {
        "step_time_s": _round(s.step_time_s),
        "tokens_per_step": s.tokens_per_step,
        "tokens_per_s_per_device": _round(s.tokens_per_s_per_device, 2),
        "tflops_per_device": _round(s.tflops_per_device, 2),
        "mfu": _round(s.mfu, 4),
        "compute_s": _round(s.compute_s),
        "communication_s": _round(s.communication_s),
        "bubble_fraction": _round(s.bubble_fraction, 4),
        "time_to_train_s": _round(seconds, 1),
        "gpu_hours": _round(seconds * devices / 3600, 1) if seconds else None,
    }


def _cost(est: Estimate) -> dict[str, Any]:
    c = est.cost
    return {
        "price_known": c.price_known,
        "instance_type": c.instance_type,
        "nodes": c.nodes,
        "region": c.region,
        "capacity_type": c.capacity_type,
        "price_date": c.price_date or None,
        "utilization": est.request.utilization,
        "usd_per_hour": _round(c.usd_per_hour, 4),
        "usd_per_month": _round(c.usd_per_month, 2),
        "usd_per_million_output_tokens": _round(c.usd_per_million_output_tokens, 4),
        "usd_per_million_input_tokens": _round(c.usd_per_million_input_tokens, 4),
        "usd_total": _round(c.usd_total, 2),
        "eks_control_plane_usd_per_hour": c.eks_control_plane_usd_per_hour,
        "note": c.note or None,
    }


def estimate_dict(est: Estimate) -> dict[str, Any]:
    m, acc, par = est.memory, est.choice.accelerator, est.parallel
    out: dict[str, Any] = {
        "model": {"id": est.model.id, "params_total": est.model.params.total,
                  "params_active": est.model.params.active},
        "hardware": {"id": acc.id,
                     "instance_type": est.choice.instance.name if est.choice.instance else None,
                     "devices": est.choice.devices, "capacity_bytes_per_device": m.capacity_bytes},
        "task": est.request.task,
        "parallelism": {"tp": par.tp, "pp": par.pp, "dp": par.dp, "cp": par.cp, "ep": par.ep},
        "weight_format": est.weight_format,
        "memory_per_device": {
            "weights_bytes": m.weights_bytes, "kv_cache_bytes": m.kv_cache_bytes,
            "activations_bytes": m.activations_bytes, "gradients_bytes": m.gradients_bytes,
            "optimizer_states_bytes": m.optimizer_states_bytes,
            "overhead_bytes": m.overhead_bytes, "total_bytes": m.total_bytes,
            "capacity_bytes": m.capacity_bytes, "headroom_bytes": m.headroom_bytes,
        },
        "fits": est.fits,
        "seq_len": est.seq_len,
        "max_batch": est.max_batch,
        "max_seq_len": est.max_seq_len,
    }
    if est.kv is not None:
        out["kv_cache"] = {
            "bytes_per_token": est.kv.bytes_per_token, "pool_bytes": est.kv.pool_bytes,
            "block_size": est.kv.block_size, "blocks": est.kv.blocks,
            "capacity_tokens": est.kv.capacity_tokens,
            "max_concurrency": round(est.kv.max_concurrency, 4),
        }
    sp = est.speed
    if sp.serving is not None:
        out["speed"] = _serving_speed(sp.serving, sp.max_batch_for_tpot)
    if sp.training is not None:
        out["speed"] = _training_speed(sp.training, sp.time_to_train_s, par.devices)
    out["cost"] = _cost(est)
    out["storage"] = {"storage": est.storage.storage, "stored_bytes": est.storage.stored_bytes,
                      "usd_per_month": _round(est.storage.usd_per_month, 2)}
    if est.checkpoint is not None:
        out["checkpoint"] = {k: (_round(v, 3) if isinstance(v, float) else v)
                             for k, v in asdict(est.checkpoint).items()}
    out["notes"] = list(est.notes)
    return out


def hardware_row_dict(row: HardwareRow) -> dict[str, Any]:
    inst, off = row.instance, row.offering
    alloc = inst.allocatable
    return {
        "instance_type": inst.name,
        "family": inst.family,
        "accelerator_id": inst.accelerator_id,
        "accelerator_count": inst.accelerator_count,
        "accelerator_memory_bytes": row.accelerator_memory_bytes,
        "vcpus": inst.vcpus,
        "memory_bytes": inst.memory_bytes,
        "cpu_architecture": inst.cpu_architecture,
        "efa_interfaces": inst.efa_interfaces,
        "network_gbps": inst.network_gbps,
        "capacity": {"cpu_millicores": inst.capacity.cpu_millicores,
                     "memory_bytes": inst.capacity.memory_bytes,
                     "extended_resources": dict(inst.capacity.extended)},
        "allocatable": {"cpu_millicores": alloc.cpu_millicores,
                        "memory_bytes": alloc.memory_bytes,
                        "extended_resources": dict(alloc.extended)},
        "offering": None if off is None else {
            "region": off.region, "capacity_type": off.capacity_type,
            "price_usd_per_hour": off.price_usd_per_hour, "price_date": off.price_date,
        },
    }


def model_entry_dict(entry: ModelEntry) -> dict[str, Any]:
    m, a = entry.model, entry.model.architecture
    return {
        "id": m.id,
        "aliases": list(entry.aliases),
        "model_type": a.model_type,
        "params_total": m.params.total,
        "params_active": m.params.active,
        "published_params_total": entry.published_total,
        "params_source": entry.params_source,
        "num_layers": a.num_layers,
        "hidden_size": a.hidden_size,
        "num_heads": a.attention.num_heads,
        "num_kv_heads": a.attention.num_kv_heads,
        "max_context": a.max_context,
        "source": m.source,
    }


def _candidate_dict(c: Candidate) -> dict[str, Any]:
    return {
        "label": c.label, "instance_type": c.instance_type, "accelerator": c.accelerator,
        "nodes": c.nodes, "devices": c.devices, "tp": c.tp, "pp": c.pp, "dp": c.dp,
        "weight_format": c.weight_format, "usd_per_hour": _round(c.usd_per_hour, 4),
        "usd_per_month": _round(c.usd_per_month, 2), "usd_total": _round(c.usd_total, 2),
        "latency_s": _round(c.latency_s), "ttft_s": _round(c.ttft_s),
        "memory_bytes_per_device": c.memory_bytes, "capacity_bytes_per_device": c.capacity_bytes,
        "details": {k: v for k, v in c.details},
    }


def _extra(value: object) -> object:
    if isinstance(value, tuple):
        return [_extra(v) for v in value]
    return value


def plan_dict(p: Plan, top: int | None = None, spec: WorkloadSpec | None = None,
              verification: Verification | None = None) -> dict[str, Any]:
    """A plan's JSON; with ``spec``, also the spec it answers and the eksplain version, so that
    ``eksplain render PLAN.json`` can rebuild and check it; with ``verification`` (``plan
    --verify``), its ``verification`` section."""
    alternatives = p.alternatives[:top] if top is not None else p.alternatives
    head: dict[str, Any] = {}
    if spec is not None:
        head = {"plan_format": PLAN_FORMAT, "spec": spec.model_dump(mode="json")}
    return {
        **head,
        "task": p.task,
        "model": p.model_id,
        "choice": _candidate_dict(p.choice) if p.choice else None,
        "decisions": [{"terms": list(d.terms), "text": d.text} for d in p.decisions],
        "alternatives": [_candidate_dict(c) for c in alternatives],
        "pareto": [c.label for c in p.pareto],
        "rejections": [{"label": r.label, "code": r.code, "reason": r.reason,
                        "gap": _round(r.gap, 4)} for r in p.rejections],
        "evaluated": p.evaluated,
        **{key: _extra(value) for key, value in p.extras},
        **({"verification": verification_dict(verification)} if verification else {}),
    }


def verification_dict(v: Verification) -> dict[str, Any]:
    """``plan --verify``: the verdict, the simulated scenario, and each candidate tried."""
    return {
        "status": v.status,
        "reason": v.reason,
        "verified": v.verified,
        "duration_s": _round(v.duration_s, 3),
        "seed": v.seed,
        "traffic": v.traffic or None,
        "attainment_required": v.attainment_required,
        "candidates": [{
            "label": c.label, "rank": c.rank, "replicas": c.replicas, "passed": c.passed,
            "requests": {"arrived": c.arrived, "completed": c.completed,
                         "in_flight": c.in_flight},
            "stopped": c.stopped or None,
            "slos": [{"metric": s.metric, "target_p95_s": _round(s.target_s),
                      "attainment": _round(s.attainment, 4), "held": s.held,
                      "latency": _latency(s.latency)} for s in c.slos],
        } for c in v.checks],
    }


def _percentiles(values: tuple[float, float, float]) -> dict[str, float | None]:
    return {"p50_s": _round(values[0]), "p90_s": _round(values[1]), "p99_s": _round(values[2])}


def sweep_dict(result: SweepResult) -> dict[str, Any]:
    """``simulate --sweep``: one row per scenario, in the sweep's order (the same bytes
    however many processes ran it)."""
    return {
        "sweep": result.path,
        "duration_s": _round(result.duration_s, 3),
        "routing": result.routing,
        "scenarios": len(result.rows),
        "rows": [{
            "spec": r.spec, "plan": r.plan, "rank": r.rank, "replicas": r.replicas,
            "rps": r.rps, "seed": r.seed, "simulated_s": _round(r.simulated_s, 3),
            "requests": {"arrived": r.arrived, "completed": r.completed, "failed": r.failed,
                         "in_flight": r.in_flight},
            "throughput": {"requests_per_s": _round(r.requests_per_s, 4),
                           "output_tokens_per_s": _round(r.output_tokens_per_s, 2)},
            "ttft": _percentiles(r.ttft), "tpot": _percentiles(r.tpot),
            "e2e": _percentiles(r.e2e),
            "slo_targets_p95_s": {m: _round(t) for m, t in r.targets},
            "slo_attainment": {m: _round(v, 4) for m, v in r.attainment},
            "usd_per_hour": _round(r.usd_per_hour, 4),
            "usd_per_million_output_tokens": _round(r.usd_per_million_output_tokens, 4),
            "stopped": r.stopped or None,
        } for r in result.rows],
    }


def glossary_entry_dict(entry: GlossaryEntry) -> dict[str, Any]:
    return {
        "key": entry.key, "term": entry.term, "aliases": list(entry.aliases),
        "definition": entry.definition, "infrastructure": entry.infrastructure,
        "eksplain": entry.eksplain, "related": list(entry.related),
    }


def explanation_dict(ex: Explanation) -> dict[str, Any]:
    out = glossary_entry_dict(ex.entry)
    out["used_by"] = list(ex.used_by)
    if ex.workload is not None:
        out["workload"] = {"model": ex.workload.model.id, "hardware": ex.workload.hardware,
                           "devices": ex.workload.devices, "sizing": ex.workload.sizing,
                           "default": ex.workload.default,
                           "input_tokens": ex.workload.input_tokens,
                           "output_tokens": ex.workload.output_tokens}
    if ex.impact is not None:
        out["impact"] = {"title": ex.impact.title, "headers": list(ex.impact.headers),
                         "rows": [list(r) for r in ex.impact.rows],
                         "notes": list(ex.impact.notes)}
    if ex.impact_error:
        out["impact_error"] = ex.impact_error
    return out


def _latency(s: LatencySummary) -> dict[str, Any]:
    return {"count": s.count, "mean_s": _round(s.mean_s), "p50_s": _round(s.p50_s),
            "p90_s": _round(s.p90_s), "p99_s": _round(s.p99_s), "max_s": _round(s.max_s)}


def simulation_dict(sim: Simulation) -> dict[str, Any]:
    r, cfg, lim = sim.result, sim.result.config, sim.limits
    return {
        "model": sim.model_id,
        "choice": sim.choice.label,
        "traffic": sim.traffic,
        "duration_s": _round(cfg.duration_s, 3),
        "simulated_s": _round(r.simulated_s, 3),
        "seed": cfg.seed,
        "replicas": cfg.replicas,
        "routing": cfg.routing,
        "engine": {"max_num_seqs": lim.max_num_seqs,
                   "max_num_batched_tokens": lim.max_num_batched_tokens,
                   "kv_blocks": lim.kv_blocks, "block_size": lim.block_size},
        "requests": {"arrived": r.arrived, "completed": r.completed, "failed": r.failed,
                     "in_flight": r.in_flight},
        "preemptions": r.preemptions,
        "throughput": {"requests_per_s": _round(r.requests_per_s, 4),
                       "output_tokens_per_s": _round(r.output_tokens_per_s, 2)},
        "queue_wait": _latency(r.queue_wait),
        "ttft": _latency(r.ttft),
        "tpot": _latency(r.tpot),
        "e2e": _latency(r.e2e),
        "estimated_tpot_s": _round(sim.estimated_tpot_s),
        "slo_attainment": {k: _round(v, 4) for k, v in r.slo_attainment},
        "queue_cap": cfg.queue_cap,
        "stopped": r.stopped or None,
        "token_budget_source": sim.token_budget_source,
        "cold_start": {k: _round(v, 1) for k, v in sim.cold_start_s},
        "fleet": _fleet(r.fleet) if r.fleet is not None else None,
        "timeline": [{k: _round(v) if isinstance(v, float) else v
                      for k, v in asdict(m).items()} for m in r.timeline],
    }


def _fleet(f: FleetResult) -> dict[str, Any]:
    return {
        "autoscaler": f.autoscaler,
        "replicas_peak": f.replicas_peak, "nodes_peak": f.nodes_peak,
        "instance_hours": _round(f.instance_hours, 4),
        "cost_usd": _round(f.cost_usd, 2) if f.cost_usd is not None else None,
        "accelerator_utilisation": _round(f.accelerator_utilisation, 4),
        "cold_starts": f.cold_starts, "cold_start_s": _latency(f.cold_start),
        "scale_ups": f.scale_ups, "scale_downs": f.scale_downs,
        "scale_events": [{"time_s": e.time_s, "from": e.replicas_from, "to": e.replicas_to}
                         for e in f.scale_events],
        "spot_interruptions": f.spot_interruptions, "crashes": f.crashes,
        "retries": f.retries, "failed_after_retries": f.failed_after_retries,
    }
