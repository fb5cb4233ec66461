"""Serving search: enumerate instance x TP x PP x precision, estimate, check, size the fleet.

    enumerate: every priced, allowed instance type with accelerators; TP a divisor of the
               heads that fits inside one node; PP across nodes only when one node is too small;
               every allowed weight format
    estimate:  memory at the p95 context, the largest batch whose TPOT meets the SLO, TTFT of a
               p95 prompt, requests/s per replica at the mean request
    select:    replicas for the traffic (peak and daily average), nodes, dollars a month;
               minimise monthly dollars, ties broken by latency then name

Every candidate that fails a check becomes a ``Rejection`` with its reason and how far off it is.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

from eksplain.calibration import load_calibration
from eksplain.catalog import Model
from eksplain.cost import HOURS_PER_MONTH
from eksplain.errors import EksplainError
from eksplain.estimate import (
    Estimate,
    EstimateRequest,
    run_estimate,
    unsupported_format,
    weight_format,
)
from eksplain.hardware import HardwareCatalog, InstanceType, accelerator_of
from eksplain.search.plan import Candidate, Rejection, eligible_instances
from eksplain.spec import WorkloadSpec
from eksplain.units import GIB

__all__ = ["Sizing", "daily_shape", "fleet", "search_serving"]

HOURS_PER_DAY = 24
BATCH_DEFAULT_DEADLINE_S = 3600.0  # a batch job without a deadline is sized to finish in an hour


@dataclass(frozen=True)
class Sizing:
    replicas_mean: float  # average over the day
    replicas_min: int
    replicas_peak: int
    nodes_peak: int
    nodes_mean: float


def daily_shape(peak_to_mean: float) -> list[float]:
    """Hourly multipliers of the mean rate: their mean is 1 and their largest is peak_to_mean.

    Up to 2, a sine: 1 + (p - 1) sin(2 pi h / 24). Above 2 that sine would dip below zero, so
    the curve is max(0, x + sin(2 pi h / 24)) scaled to a peak of p, with x in (-1, 1] found by
    bisection so that its hourly peak-to-mean is p: the quiet hours carry no traffic and the
    busy hours narrow as p grows. At most 24 (a whole day's requests in one hour).
    """
    # Rounded so that sin(pi) is 0, not 1.2e-16: at the mean rate a replica count is exact.
    sines = [round(math.sin(2 * math.pi * h / HOURS_PER_DAY), 12) for h in range(HOURS_PER_DAY)]
    if peak_to_mean <= 2:
        return [1 + (peak_to_mean - 1) * s for s in sines]

    def floored(x: float) -> list[float]:
        return [max(0.0, x + s) for s in sines]

    low, high = -1.0, 1.0  # peak-to-mean falls from 24 (x just above -1) to 2 (x = 1)
    while high - low > 1e-12:
        mid = (low + high) / 2
        curve = floored(mid)
        if max(curve) * HOURS_PER_DAY / sum(curve) > peak_to_mean:
            low = mid
        else:
            high = mid
    curve = floored(high)
    return [peak_to_mean * c / max(curve) for c in curve]


def _hourly_rates(spec: WorkloadSpec) -> list[float]:
    """Requests/s through a day: flat, or daily with the spec's mean and peak-to-mean ratio."""
    t = spec.traffic
    if t.pattern == "flat":
        return [t.rps] * HOURS_PER_DAY
    return [t.rps * m for m in daily_shape(t.peak_to_mean)]


def fleet(spec: WorkloadSpec, per_replica_rps: float, devices_per_replica: int,
          devices_per_node: int) -> Sizing:
    """Replicas and nodes: at the peak, and on average when replicas follow the traffic."""
    rates = _hourly_rates(spec)
    peak_rate = max(spec.traffic.rps * spec.traffic.peak_to_mean, *rates)
    replicas = [max(1, math.ceil(r / per_replica_rps)) for r in rates]
    peak = max(1, math.ceil(peak_rate / per_replica_rps))

    def nodes(count: float) -> float:
        if devices_per_replica >= devices_per_node:
            return count * math.ceil(devices_per_replica / devices_per_node)
        return math.ceil(count / (devices_per_node // devices_per_replica))

    mean_nodes = sum(nodes(r) for r in replicas) / len(replicas)
    return Sizing(sum(replicas) / len(replicas), min(replicas), peak, int(nodes(peak)),
                  mean_nodes)


def _splits(model: Model, inst: InstanceType,
            device_bytes: int) -> Iterator[tuple[int, int, int]]:
    """(TP, PP, EP): TP inside one node (powers of two up to its accelerators), and for MoE
    models the same devices as an expert-parallel group (EP = TP, as vLLM's
    --enable-expert-parallel does); PP over 2 and 4 nodes, TP filling each, only for models
    whose 16-bit weights one node cannot hold."""
    n = inst.accelerator_count
    moe = model.architecture.is_moe
    tp = 1
    while tp <= n:
        yield tp, 1, 1
        if moe and tp > 1 and model.architecture.experts and (
                model.architecture.experts.num_experts % tp == 0):
            yield tp, 1, tp
        tp *= 2
    if model.params.total * 2 > n * device_bytes:
        for pp in (2, 4):
            yield n, pp, 1


def _request(spec: WorkloadSpec, inst: InstanceType, split: tuple[int, int, int], fmt: str,
             batch: int, tokens: tuple[int, int], tpot: float | None) -> EstimateRequest:
    c = spec.constraints
    tp, pp, ep = split
    return EstimateRequest(
        model=spec.model, hardware=inst.name, devices=tp * pp, tp=tp, pp=pp, dp=1, ep=ep,
        task="inference", dtype=fmt, batch=batch, input_tokens=tokens[0],
        output_tokens=tokens[1], tpot_target_s=tpot, engine=spec.engine,
        region=c.region, capacity_type=c.capacity_type, storage="s3",
    )


def _label(inst: InstanceType, split: tuple[int, int, int], fmt: str) -> str:
    tp, pp, ep = split
    text = f"TP={tp}" + (f" PP={pp}" if pp > 1 else "") + (f" EP={ep}" if ep > 1 else "")
    return f"{inst.name}, {text}, {fmt}"


def _memory_reason(est: Estimate) -> str:
    m = est.memory
    return (f"out of memory: needs {m.total_bytes / GIB:.1f} GiB per device at the p95 context of "
            f"{est.seq_len:,} tokens (weights {m.weights_bytes / GIB:.1f} GiB, KV cache "
            f"{m.kv_cache_bytes / GIB:.1f} GiB), the device has {m.capacity_bytes / GIB:.1f} GiB")


def _memory_gap(est: Estimate) -> float:
    """Memory needed over memory available: the device's, or the engine pool's for the KV."""
    m = est.memory
    ratio = m.total_bytes / m.capacity_bytes
    if est.kv is not None and m.kv_cache_bytes > est.kv.pool_bytes:
        fixed = m.total_bytes - m.kv_cache_bytes
        ratio = max(ratio, m.total_bytes / (fixed + est.kv.pool_bytes))
    return ratio


def _engine_max_seqs(spec: WorkloadSpec) -> tuple[int, str]:
    """The most sequences the spec's engine runs at once (its --max-num-seqs), and the engine
    whose calibration entry gave it: vLLM's stands in for an engine without one."""
    cal = load_calibration()
    source = spec.engine if spec.engine in {e.name for e in cal.engines} else "vllm"
    return cal.engine(source).max_num_seqs, source


def _tpot_target(spec: WorkloadSpec, est: Estimate) -> float | None:
    """The TPOT every request must hold: the TPOT SLO, or tighter when the end-to-end SLO
    leaves less per token after the p95 prompt's TTFT: (e2e - TTFT) / p95 output tokens."""
    slo, s = spec.slo, est.speed.serving
    target = slo.tpot_p95
    if slo.e2e_p95 is not None and s is not None and spec.tokens.output_high > 0:
        per_token = max((slo.e2e_p95 - s.ttft_s) / spec.tokens.output_high, 1e-6)
        target = per_token if target is None else min(target, per_token)
    return target


def _batch(spec: WorkloadSpec, est: Estimate, target: float | None,
           ) -> tuple[int, Rejection | None]:
    """The concurrency a replica runs at: what holds the TPOT target (``_tpot_target``), the
    KV cache and the engine."""
    if spec.task == "embedding":
        return load_calibration().engine("vllm").embedding_batch, None
    engine_limit, _ = _engine_max_seqs(spec)  # never more at once
    kv_limit = min(est.kv.max_batch if est.kv else 1, engine_limit)
    if target is None or spec.task == "batch-inference":
        return max(kv_limit, 1), None
    held = est.speed.max_batch_for_tpot or 0
    if held < 1:
        s = est.speed.serving
        tpot = s.tpot_s if s else 0.0
        if spec.slo.tpot_p95 is not None and target >= spec.slo.tpot_p95:
            return 0, Rejection("", "tpot", f"TPOT {tpot * 1000:.1f} ms at batch 1 misses the "
                                f"{target * 1000:.0f} ms SLO", tpot / target)
        e2e = (s.ttft_s if s else 0.0) + spec.tokens.output_high * tpot
        e2e_slo = spec.slo.e2e_p95 or 0.0
        return 0, Rejection("", "e2e", f"end-to-end {e2e:.1f} s for the p95 request even at "
                            f"batch 1 misses the {e2e_slo:.1f} s SLO", e2e / max(e2e_slo, 1e-9))
    return min(held, kv_limit), None


def _check_ttft(spec: WorkloadSpec, est: Estimate) -> Rejection | None:
    slo = spec.slo
    s = est.speed.serving
    if s is None:
        return None
    if slo.ttft_p95 is not None and s.ttft_s > slo.ttft_p95:
        return Rejection("", "ttft", f"TTFT {s.ttft_s * 1000:.0f} ms for a p95 prompt of "
                         f"{spec.tokens.input_high:,} tokens misses the "
                         f"{slo.ttft_p95 * 1000:.0f} ms SLO", s.ttft_s / slo.ttft_p95)
    return None


def _evaluate(spec: WorkloadSpec, inst: InstanceType, split: tuple[int, int, int], fmt: str,
              catalog: HardwareCatalog) -> Candidate | Rejection:
    tp, pp, _ = split
    label = _label(inst, split, fmt)
    t = spec.tokens
    embedding = spec.task == "embedding"
    high = (t.input_high, 0 if embedding else t.output_high)
    try:
        est = run_estimate(_request(spec, inst, split, fmt, 1, high, spec.slo.tpot_p95), catalog)
        if not est.fits:
            return Rejection(label, "memory", _memory_reason(est), _memory_gap(est))
        target = _tpot_target(spec, est)
        if target != spec.slo.tpot_p95:  # the end-to-end SLO is the tighter: hold it instead
            est = run_estimate(_request(spec, inst, split, fmt, 1, high, target), catalog)
        batch, rejected = _batch(spec, est, target)
        rejected = rejected or _check_ttft(spec, est)
        if rejected is not None:
            return Rejection(label, rejected.code, rejected.reason, rejected.gap)
        mean = (t.input_mean, 0 if embedding else t.output_mean)
        loaded = run_estimate(_request(spec, inst, split, fmt, batch, mean, None), catalog)
        tpot = _tpot_at(spec, est, run_estimate(
            _request(spec, inst, split, fmt, batch, high, None), catalog) if batch > 1 else est)
    except EksplainError as exc:
        return Rejection(label, "input", exc.message + (f" ({exc.hint})" if exc.hint else ""))
    return _candidate(spec, inst, (tp, pp, fmt, label), est, loaded, tpot)


def _tpot_at(spec: WorkloadSpec, p95: Estimate, at_batch: Estimate) -> float:
    """The TPOT held to the SLO: under load at the plan's batch with p95 lengths (the loaded
    TPOT, compute._loaded_step, which the batch search bisects on), else the p95 estimate's."""
    if spec.task != "inference" or at_batch.speed.serving is None:
        return p95.speed.serving.tpot_s if p95.speed.serving else 0.0
    return at_batch.speed.serving.tpot_s


def _candidate(spec: WorkloadSpec, inst: InstanceType, key: tuple[int, int, str, str],
               p95: Estimate, loaded: Estimate, tpot: float) -> Candidate | Rejection:
    tp, pp, fmt, label = key
    speed = loaded.speed.serving
    cost = loaded.cost
    if speed is None or cost.usd_per_hour is None:
        return Rejection(label, "price", cost.note or "no speed estimate")
    node_price = cost.usd_per_hour / cost.nodes
    details: list[tuple[str, float | int | str]] = [
        ("batch", speed.batch), ("ep", loaded.parallel.ep),
        ("requests_per_s_per_replica", round(speed.requests_per_s, 4)),
        ("output_tokens_per_s_per_replica", round(speed.output_tokens_per_s, 1)),
        ("kv_bytes_per_token", loaded.kv.bytes_per_token if loaded.kv else 0),
        ("weights_bytes", p95.memory.weights_bytes),
    ]
    if spec.task != "embedding":
        max_seqs, engine = _engine_max_seqs(spec)
        details += [("max_num_seqs", max_seqs), ("max_num_seqs_engine", engine)]
    if spec.task == "batch-inference":
        return _batch_job(spec, inst, key, p95, (speed.requests_per_s, node_price, details))
    size = fleet(spec, speed.requests_per_s, tp * pp, inst.accelerator_count)
    details[2:2] = [
        ("replicas_min", size.replicas_min), ("replicas_mean", round(size.replicas_mean, 2)),
        ("replicas_peak", size.replicas_peak), ("nodes_peak", size.nodes_peak),
    ]
    # Memory in use at the operating point: the p95 estimate holds one p95-length sequence;
    # the plan's batch holds ``batch`` of them (the KV pool was sized to hold them).
    m = p95.memory
    in_use = m.total_bytes + (speed.batch - 1) * m.kv_cache_bytes
    cand = Candidate(
        label=label, instance_type=inst.name, accelerator=p95.choice.accelerator.id,
        nodes=size.nodes_peak, devices=tp * pp * size.replicas_peak, tp=tp, pp=pp,
        dp=size.replicas_peak, weight_format=fmt, usd_per_hour=node_price * size.nodes_peak,
        usd_per_month=node_price * size.nodes_mean * HOURS_PER_MONTH, usd_total=None,
        latency_s=speed.tpot_s if spec.task != "embedding" else speed.ttft_s,
        ttft_s=p95.speed.serving.ttft_s if p95.speed.serving else None,
        memory_bytes=in_use, capacity_bytes=m.capacity_bytes,
        details=(*details, ("tpot_p95_s", round(tpot, 6))),
    )
    return _check_limits(spec, cand)


def _batch_job(spec: WorkloadSpec, inst: InstanceType, key: tuple[int, int, str, str],
               p95: Estimate, run: tuple[float, float, list[tuple[str, float | int | str]]],
               ) -> Candidate | Rejection:
    """Offline batches: enough replicas to finish the requests before the deadline, all of them
    running for the whole job (no traffic to follow); the job's dollars are the objective."""
    tp, pp, fmt, label = key
    per_replica, node_price, details = run
    requests = spec.data.samples or round(spec.traffic.rps * 3600)
    deadline = spec.slo.deadline or BATCH_DEFAULT_DEADLINE_S
    replicas = max(1, math.ceil(requests / (per_replica * deadline)))
    per_node = max(inst.accelerator_count // (tp * pp), 1)
    nodes = math.ceil(replicas / per_node) * max(1, (tp * pp) // inst.accelerator_count)
    seconds = requests / (per_replica * replicas)
    cand = Candidate(
        label=label, instance_type=inst.name, accelerator=p95.choice.accelerator.id,
        nodes=nodes, devices=tp * pp * replicas, tp=tp, pp=pp, dp=replicas, weight_format=fmt,
        usd_per_hour=node_price * nodes, usd_per_month=None,
        usd_total=node_price * nodes * seconds / 3600, latency_s=seconds, ttft_s=None,
        memory_bytes=p95.memory.total_bytes, capacity_bytes=p95.memory.capacity_bytes,
        details=(*details, ("replicas_min", replicas), ("replicas_peak", replicas),
                 ("nodes_peak", nodes), ("requests", requests),
                 ("deadline_s", round(deadline, 1))),
    )
    return _check_limits(spec, cand)


def _check_limits(spec: WorkloadSpec, cand: Candidate) -> Candidate | Rejection:
    c = spec.constraints
    if cand.nodes > c.max_nodes:
        return Rejection(cand.label, "nodes", f"needs {cand.nodes} nodes at the peak, more than "
                         f"max_nodes {c.max_nodes}", cand.nodes / c.max_nodes)
    budget = c.monthly_budget_usd
    if budget is None:
        return cand
    # A batch job is held to the budget with its own dollars, as a training run is.
    spend, what = ((cand.usd_total, "for the job") if cand.usd_total is not None
                   else (cand.usd_per_month, "a month"))
    if spend is not None and spend > budget:
        return Rejection(cand.label, "budget", f"${spend:,.0f} {what} is over the "
                         f"${budget:,.0f} budget", spend / budget)
    return cand


def search_serving(spec: WorkloadSpec, model: Model, catalog: HardwareCatalog,
                   ) -> tuple[list[Candidate], list[Rejection], int]:
    """Every candidate for a serving spec: accepted ones and rejections, and how many ran."""
    accepted: list[Candidate] = []
    rejected: list[Rejection] = []
    evaluated = 0
    cal = load_calibration()
    for inst in eligible_instances(spec, catalog, rejected):
        acc = accelerator_of(catalog, inst)
        formats = []
        for fmt in spec.precision:
            why = unsupported_format(weight_format(fmt, model), acc, cal)
            if why is None:
                formats.append(fmt)
            else:
                rejected.append(Rejection(f"{inst.name} {fmt}", "format", why))
        for split in _splits(model, inst, acc.memory_bytes):
            for fmt in formats:
                evaluated += 1
                out = _evaluate(spec, inst, split, fmt, catalog)
                if isinstance(out, Candidate):
                    accepted.append(out)
                else:
                    rejected.append(out)
    return accepted, rejected, evaluated
