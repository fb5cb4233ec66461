"""CPU candidates for embedding specs, and the CPU-versus-accelerator comparison of the plan.

    enumerate: every priced CPU-only instance type the spec's families allow, x each allowed
               precision the CPU's matrix engine runs (bf16, int8: AMX on Sapphire Rapids);
               encoder-only models only (the CPU model is compute-bound, eksplain.cpu)
    estimate:  one replica per node, using the node's allocatable CPU; its batch is the
               engine's embedding batch, halved until a batch of p95 prompts finishes within the
               latency SLO (TTFT or end-to-end p95: the requests of a batch finish together);
               host RAM for the weights and one layer's activations
    select:    replicas for the traffic like the accelerated candidates (``serving.fleet``),
               dollars a month, the same limits (max nodes, budget)

The plan's objective ranks CPU and accelerated candidates together (monthly dollars at the
required throughput); ``cpu_vs_accelerator`` states both in dollars per million requests:

    $/M requests = dollars a month / (mean requests/s x 3,600 x 730) x 1,000,000
"""

from __future__ import annotations

from eksplain.calibration import Calibration, load_calibration
from eksplain.catalog import Model
from eksplain.cost import HOURS_PER_MONTH
from eksplain.cpu import (
    CpuProcessor,
    cpu_encode_speed,
    host_memory_bytes,
    peak_ops_per_s,
    pod_cores,
    processor_of,
    unsupported_cpu_format,
)
from eksplain.errors import InputError
from eksplain.estimate import check_context
from eksplain.hardware import HardwareCatalog, InstanceType, offering_for, pod_resources
from eksplain.memory import weight_bytes
from eksplain.parallel import Parallelism
from eksplain.search.plan import Candidate, Decision, Rejection, eligible_instances
from eksplain.search.serving import _check_limits, fleet
from eksplain.spec import WorkloadSpec
from eksplain.units import GIB

__all__ = ["CPU", "cpu_vs_accelerator", "search_cpu", "usd_per_million_requests"]

CPU = "cpu"  # Candidate.accelerator of a CPU-only candidate


def _latency_limit(spec: WorkloadSpec) -> tuple[float, str] | None:
    """The tightest latency SLO an embedding request has, and its rejection code."""
    limits = [(v, code) for v, code in ((spec.slo.ttft_p95, "ttft"), (spec.slo.e2e_p95, "e2e"))
              if v is not None]
    return min(limits) if limits else None


def _batch(spec: WorkloadSpec, model: Model, cal: Calibration, fmt: str,
           peak: float) -> tuple[int, Rejection | None]:
    """The engine's embedding batch, halved until a batch of p95 prompts meets the SLO."""
    batch = cal.engine("vllm").embedding_batch
    limit = _latency_limit(spec)
    if limit is None:
        return batch, None
    while batch >= 1:
        seconds = cpu_encode_speed(model, cal, fmt, peak, (batch, spec.tokens.input_high)).ttft_s
        if seconds <= limit[0]:
            return batch, None
        if batch == 1:
            return 0, Rejection("", limit[1], f"one p95 prompt of {spec.tokens.input_high:,} "
                                f"tokens takes {seconds * 1000:.0f} ms on the CPU, over the "
                                f"{limit[0] * 1000:.0f} ms SLO", seconds / limit[0])
        batch //= 2
    return 0, None  # pragma: no cover - the loop returns at batch 1


def _evaluate(spec: WorkloadSpec, model: Model, inst: InstanceType, proc: CpuProcessor,
              fmt: str, catalog: HardwareCatalog) -> Candidate | Rejection:
    label = f"{inst.name}, CPU, {fmt}"
    cal = load_calibration()
    c, t = spec.constraints, spec.tokens
    try:
        check_context(model, t.input_high)
    except InputError as exc:
        return Rejection(label, "input", exc.message + (f" ({exc.hint})" if exc.hint else ""))
    cores = pod_cores(inst, proc)
    peak = peak_ops_per_s(proc, cores, fmt)
    batch, rejected = _batch(spec, model, cal, fmt, peak)
    if rejected is not None:
        return Rejection(label, rejected.code, rejected.reason, rejected.gap)
    need = host_memory_bytes(model, cal, fmt, (batch, t.input_high))
    have = pod_resources(inst.allocatable, 1)[1]
    if need > have:
        return Rejection(label, "memory", f"out of memory: needs {need / GIB:.1f} GiB of host "
                         f"RAM, a pod on the node gets {have / GIB:.1f} GiB", need / have)
    offer = offering_for(catalog, inst.name, c.region, c.capacity_type)
    if offer is None:
        return Rejection(label, "price", f"no {c.capacity_type} price for {inst.name} in "
                         f"{c.region}")
    p95 = cpu_encode_speed(model, cal, fmt, peak, (batch, t.input_high))
    mean = cpu_encode_speed(model, cal, fmt, peak, (batch, t.input_mean))
    size = fleet(spec, mean.requests_per_s, 1, 1)
    price = offer.price_usd_per_hour
    cand = Candidate(
        label=label, instance_type=inst.name, accelerator=CPU, nodes=size.nodes_peak,
        devices=0, tp=1, pp=1, dp=size.replicas_peak, weight_format=fmt,  # no accelerators
        usd_per_hour=price * size.nodes_peak,
        usd_per_month=price * size.nodes_mean * HOURS_PER_MONTH, usd_total=None,
        latency_s=mean.ttft_s, ttft_s=p95.ttft_s, memory_bytes=need, capacity_bytes=have,
        details=(
            ("batch", batch), ("ep", 1), ("replicas_min", size.replicas_min),
            ("replicas_mean", round(size.replicas_mean, 2)),
            ("replicas_peak", size.replicas_peak), ("nodes_peak", size.nodes_peak),
            ("requests_per_s_per_replica", round(mean.requests_per_s, 4)),
            ("output_tokens_per_s_per_replica", 0.0), ("kv_bytes_per_token", 0),
            ("weights_bytes", weight_bytes(model, cal.format(fmt), Parallelism())),
            ("cpu_model", proc.model), ("cpu_cores_per_replica", round(cores, 2)),
            ("cpu_peak_tops", round(peak / 1e12, 2)), ("tpot_p95_s", 0.0),
        ),
    )
    return _check_limits(spec, cand)


def search_cpu(spec: WorkloadSpec, model: Model, catalog: HardwareCatalog,
               ) -> tuple[list[Candidate], list[Rejection], int]:
    """CPU candidates of an embedding spec: accepted ones, rejections, and how many ran."""
    accepted: list[Candidate] = []
    rejected: list[Rejection] = []
    evaluated = 0
    for inst in eligible_instances(spec, catalog, rejected, cpu=True):
        proc = processor_of(inst)
        if not model.architecture.is_encoder_only:
            rejected.append(Rejection(f"{inst.name}, CPU", "cpu", f"{model.id} is not an "
                                      "encoder-only model; eksplain's CPU speed model covers "
                                      "encoders (BERT, RoBERTa, XLM-R) only"))
            continue
        for fmt in spec.precision:
            label = f"{inst.name}, CPU, {fmt}"
            if proc is None:
                rejected.append(Rejection(label, "cpu", f"the CPU of {inst.name} is not in "
                                          "data/cpu_processors.csv"))
                continue
            why = unsupported_cpu_format(proc, fmt)
            if why is not None:
                rejected.append(Rejection(label, "cpu", why))
                continue
            evaluated += 1
            out = _evaluate(spec, model, inst, proc, fmt, catalog)
            if isinstance(out, Candidate):
                accepted.append(out)
            else:
                rejected.append(out)
    return accepted, rejected, evaluated


def usd_per_million_requests(spec: WorkloadSpec, c: Candidate) -> float:
    """Dollars per million requests at the spec's mean rate, autoscaled as the plan runs it."""
    requests = spec.traffic.rps * 3600 * HOURS_PER_MONTH
    return (c.usd_per_month or 0.0) / requests * 1e6


def _closest_cpu_rejection(rejected: list[Rejection]) -> Rejection | None:
    slo = [r for r in rejected if r.code in ("ttft", "e2e", "memory", "budget", "nodes")
           and ", CPU," in r.label]
    return min(slo, key=lambda r: (r.gap or 0.0, r.label)) if slo else None


def cpu_vs_accelerator(spec: WorkloadSpec, ranked: tuple[Candidate, ...],
                       rejected: list[Rejection],
                       ) -> tuple[Decision, tuple[tuple[str, object], ...]] | None:
    """The embedding decision CPU or accelerator, in dollars per million requests."""
    cpu = next((c for c in ranked if c.accelerator == CPU), None)
    acc = next((c for c in ranked if c.accelerator != CPU), None)
    costs = {name: {"label": c.label, "usd_per_million_requests":
                    round(usd_per_million_requests(spec, c), 4),
                    "usd_per_month": round(c.usd_per_month or 0.0, 2)}
             for name, c in (("cpu", cpu), ("accelerator", acc)) if c is not None}
    extras: tuple[tuple[str, object], ...] = (("cost_per_million_requests", costs),)
    terms = ("embedding", "accelerator", "throughput")
    if cpu is None or acc is None:
        only = cpu if cpu is not None else acc
        if only is None:
            return None
        why = _closest_cpu_rejection(rejected) if cpu is None else None
        other = ("no CPU candidate meets the spec" + (f" (closest: {why.label}: {why.reason})"
                                                       if why else "")
                 if cpu is None else "no accelerated candidate meets the spec")
        return Decision(terms, f"{only.label} costs ${usd_per_million_requests(spec, only):.2f} "
                        f"per million requests; {other}"), extras
    c_cost, a_cost = usd_per_million_requests(spec, cpu), usd_per_million_requests(spec, acc)
    cheaper, dearer = (cpu, acc) if c_cost <= a_cost else (acc, cpu)
    ratio = max(c_cost, a_cost) / max(min(c_cost, a_cost), 1e-12)
    kind = "CPU" if cheaper is cpu else "accelerator"
    return Decision(terms, f"{kind} wins for embeddings at {spec.traffic.rps:g} requests/s: "
                    f"{cheaper.label} costs ${min(c_cost, a_cost):.2f} per million requests, "
                    f"{ratio:.1f}x less than {dearer.label} (${max(c_cost, a_cost):.2f}), "
                    "each autoscaled over the day's traffic"), extras
