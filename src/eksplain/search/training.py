"""Training search: enumerate instance x nodes x TP x PP x recomputation, estimate, check.

    enumerate: every priced, allowed instance type with accelerators; 1, 2, 4 ... nodes up to
               max_nodes (several nodes only with EFA); TP inside a node, the smallest that fits;
               PP only when TP alone does not fit; the least recomputation that fits, then the
               largest micro-batch (1, 2, 4) that still fits
    estimate:  memory per device, step time, time and dollars for the data
    select:    the cheapest run that meets the deadline; the Pareto front of dollars vs time
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

from eksplain.calibration import load_calibration
from eksplain.catalog import Model
from eksplain.errors import EksplainError, InputError
from eksplain.estimate import Estimate, EstimateRequest, run_estimate, unsupported_format
from eksplain.hardware import HardwareCatalog, InstanceType, accelerator_of
from eksplain.parallel import Parallelism, validate_parallelism
from eksplain.search.interruptions import SpotRun, spot_run
from eksplain.search.plan import Candidate, Rejection, eligible_instances
from eksplain.spec import WorkloadSpec
from eksplain.units import GIB

__all__ = ["data_tokens", "search_training"]

Recompute = Literal["none", "selective", "full"]
RECOMPUTE: tuple[Recompute, ...] = ("none", "selective", "full")
MICRO_BATCHES = (1, 2, 4)


def data_tokens(spec: WorkloadSpec) -> int | None:
    """Tokens to train on: data.tokens, else samples x sequence length, times epochs."""
    d = spec.data
    per_epoch = d.tokens or (d.samples * spec.tokens.context if d.samples else None)
    return round(per_epoch * d.epochs) if per_epoch else None


def _node_counts(max_nodes: int) -> Iterator[int]:
    n = 1
    while n <= max_nodes:
        yield n
        n *= 2


def _request(spec: WorkloadSpec, inst: InstanceType, nodes: int,
             layout: tuple[int, int, Recompute],
             micro: int, tokens: int | None) -> EstimateRequest:
    tp, pp, recompute = layout
    devices = nodes * inst.accelerator_count
    dp = devices // (tp * pp)
    c = spec.constraints
    return EstimateRequest(
        model=spec.model, hardware=inst.name, devices=devices, task="training", tp=tp, pp=pp,
        dp=dp, batch=micro, seq_len=spec.tokens.context,
        fsdp="full" if dp > 1 and spec.method == "full" else "none", method=spec.method,
        recompute=recompute, precision="mixed", global_batch=micro * dp * max(1, 4 * (pp - 1)),
        tokens=str(tokens) if tokens else None, region=c.region, capacity_type=c.capacity_type,
        storage=spec.storage,
    )


def _valid(model: Model, layout: tuple[int, int], devices: int) -> bool:
    """Whether the split passes the same rules the estimate enforces (heads, KV heads, layers)."""
    tp, pp = layout
    try:
        validate_parallelism(model.architecture,
                             Parallelism(tp=tp, pp=pp, dp=devices // (tp * pp)), devices)
    except InputError:
        return False
    return True


def _layouts(model: Model, inst: InstanceType,
             devices: int) -> Iterator[tuple[int, int, Recompute]]:
    """TP inside a node, PP, then recomputation; layouts the model cannot take are skipped."""
    n = inst.accelerator_count
    for pp in (1, 2, 4, 8):
        for tp in (1, 2, 4, 8):
            if tp <= n and devices % (tp * pp) == 0 and _valid(model, (tp, pp), devices):
                for recompute in RECOMPUTE:
                    yield tp, pp, recompute


def _fit(spec: WorkloadSpec, model: Model, inst: InstanceType, nodes: int,
         catalog: HardwareCatalog, tokens: int | None) -> tuple[Estimate | None, str, int]:
    """The first layout that fits (least parallelism and recomputation), with its largest
    micro-batch; else None and the shortfall of the first layout tried."""
    best_gap = ""
    tried = 0
    devices = nodes * inst.accelerator_count
    for layout in _layouts(model, inst, devices):
        tried += 1
        est = run_estimate(_request(spec, inst, nodes, layout, 1, tokens), catalog, limits=False)
        if not est.fits:
            best_gap = best_gap or (
                f"out of memory: {est.memory.total_bytes / GIB:.1f} GiB per device of "
                f"{est.memory.capacity_bytes / GIB:.1f} GiB without parallelism or "
                "recomputation, and no layout up to TP=8 x PP=8 with full recomputation fits")
            continue
        for micro in reversed(MICRO_BATCHES):
            if micro == 1:
                return est, "", tried
            tried += 1
            bigger = run_estimate(_request(spec, inst, nodes, layout, micro, tokens), catalog,
                                  limits=False)
            if bigger.fits:
                return bigger, "", tried
    return None, best_gap or "no parallel layout divides the heads and layers", tried


def _candidate(spec: WorkloadSpec, inst: InstanceType, nodes: int, est: Estimate,
               ) -> Candidate | Rejection:
    par, speed = est.parallel, est.speed.training
    split = f"TP={par.tp}" + (f" PP={par.pp}" if par.pp > 1 else "")
    label = f"{inst.name} x {nodes}, {split}, DP={par.dp}, recompute {est.request.recompute}"
    cost = est.cost
    if speed is None or cost.usd_per_hour is None:
        return Rejection(label, "price", cost.note or "no speed estimate")
    check = est.checkpoint
    spot = spot_run(check, inst, nodes, par.devices, spec.storage) if (
        check is not None and spec.constraints.capacity_type == "spot") else None
    if spot is not None:
        check = spot.checkpoint  # Young/Daly at the hardware + spot interruption rate
    lost = (spot.overhead_fraction if spot else
            check.overhead_fraction if check else 0.0)  # share of wall-clock time, section 11
    if lost >= 1:
        return Rejection(label, "failures", f"checkpoint writes and rework after failures "
                         f"would take {lost:.0%} of the time: the run would never finish")
    compute = est.speed.time_to_train_s
    seconds = compute / (1 - lost) if compute is not None else None
    deadline = spec.slo.deadline
    if seconds is not None and deadline is not None and seconds > deadline:
        return Rejection(label, "deadline", f"{seconds / 3600:,.1f} h to train (with "
                         f"{lost:.1%} lost to checkpoints and failures) misses the "
                         f"{deadline / 3600:,.1f} h deadline", seconds / deadline)
    total = cost.usd_total / (1 - lost) if cost.usd_total is not None else None
    budget = spec.constraints.monthly_budget_usd
    if budget is not None and total is not None and total > budget:
        return Rejection(label, "budget", f"${total:,.0f} for the run is over the "
                         f"${budget:,.0f} budget", total / budget)
    return Candidate(
        label=label, instance_type=inst.name, accelerator=est.choice.accelerator.id,
        nodes=nodes, devices=par.devices, tp=par.tp, pp=par.pp, dp=par.dp,
        weight_format=est.weight_format, usd_per_hour=cost.usd_per_hour, usd_per_month=None,
        usd_total=total, latency_s=seconds or speed.step_time_s, ttft_s=None,
        memory_bytes=est.memory.total_bytes, capacity_bytes=est.memory.capacity_bytes,
        details=(
            ("micro_batch", est.request.batch), ("recompute", est.request.recompute),
            ("fsdp", est.request.fsdp),
            ("step_time_s", round(speed.step_time_s, 4)), ("mfu", round(speed.mfu, 4)),
            ("tokens_per_s_per_device", round(speed.tokens_per_s_per_device, 1)),
            ("efa_interfaces", inst.efa_interfaces),
            ("checkpoint_interval_s", round(check.interval_s, 1) if check else 0),
            ("checkpoint_write_s", round(check.write_s, 1) if check else 0),
            ("checkpoint_overhead", round(lost, 4)),
            ("checkpoint_storage_bytes", est.storage.stored_bytes),
            ("compute_s", round(compute, 1) if compute is not None else 0),
            *_spot_details(spot, nodes, seconds, cost.usd_per_hour),
        ),
    )


def _spot_details(spot: SpotRun | None, nodes: int, wall_s: float | None, usd_per_hour: float,
                  ) -> tuple[tuple[str, float | int | str], ...]:
    """The expected interruptions of a spot run and what they cost (search.interruptions)."""
    if spot is None:
        return ()
    count = spot.interruptions(nodes, wall_s or 0.0)
    lost_s = count * spot.lost_per_interruption_s()
    return (
        ("spot_band", spot.band + ("" if spot.band_published else " (unverified stand-in)")),
        ("spot_interruptions_per_node_hour", round(spot.rate_per_node_hour, 6)),
        ("spot_interruptions_expected", round(count, 2)),
        ("spot_restart_s", round(spot.restart_s, 1)),
        ("spot_node_provisioning_s", spot.node_provisioning_s
         if spot.node_provisioning_s is not None else "not included (no sourced figure)"),
        ("spot_interruption_s", round(lost_s, 1)),
        ("spot_interruption_usd", round(lost_s / 3600 * usd_per_hour, 2)),
        ("checkpoint_interval_on_demand_s", round(spot.interval_on_demand_s, 1)),
    )


def search_training(spec: WorkloadSpec, model: Model, catalog: HardwareCatalog,
                    ) -> tuple[list[Candidate], list[Rejection], int]:
    tokens = data_tokens(spec)
    accepted: list[Candidate] = []
    rejected: list[Rejection] = []
    evaluated = 0
    cal = load_calibration()
    for inst in eligible_instances(spec, catalog, rejected):
        acc = accelerator_of(catalog, inst)
        why = unsupported_format("nf4", acc, cal) if spec.method == "qlora" else None
        if why is not None:
            rejected.append(Rejection(inst.name, "format", "QLoRA: " + why))
            continue
        for nodes in _node_counts(spec.constraints.max_nodes):
            label = f"{inst.name} x {nodes}"
            if nodes > 1 and not inst.efa_interfaces:
                rejected.append(Rejection(label, "efa", "multi-node training without EFA: "
                                          f"{inst.name} has no Elastic Fabric Adapter"))
                break
            try:
                est, why, tried = _fit(spec, model, inst, nodes, catalog, tokens)
            except EksplainError as exc:  # this node count only: more nodes may still work
                rejected.append(Rejection(label, "parallelism", exc.message))
                continue
            evaluated += tried
            if est is None:
                rejected.append(Rejection(label, "memory", why))
                continue
            out = _candidate(spec, inst, nodes, est)
            if isinstance(out, Candidate):
                accepted.append(out)
            else:
                rejected.append(out)
    return accepted, rejected, evaluated
