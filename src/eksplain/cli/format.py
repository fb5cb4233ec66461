"""Terminal formatting of facade results (Rich tables). No maths beyond unit conversion."""

from __future__ import annotations

from rich.markup import escape
from rich.table import Table

from eksplain.api import Estimate, HardwareRow, Rendered
from eksplain.catalog import ModelEntry
from eksplain.explain import Explanation
from eksplain.explain.glossary import GlossaryEntry
from eksplain.search import Candidate, Plan, rejection_counts
from eksplain.sim.metrics import ATTAINMENT_FOR_P95, LatencySummary
from eksplain.sim.scenario import Simulation
from eksplain.units import GIB, format_bytes, format_duration

__all__ = ["estimate_summary", "estimate_table", "hardware_table", "models_table", "render_lines",
           "simulation_lines"]

_BAR_WIDTH = 30


def _bar(value: int, total: int) -> str:
    if total <= 0:
        return ""
    return "█" * max(round(_BAR_WIDTH * value / total), 1 if value else 0)


def estimate_table(est: Estimate) -> Table:
    m = est.memory
    table = Table(title="Memory per device", title_justify="left")
    table.add_column("component")
    table.add_column("GiB", justify="right")
    table.add_column("share of capacity")
    rows = [
        ("weights", m.weights_bytes),
        ("kv cache", m.kv_cache_bytes),
        ("activations", m.activations_bytes),
        ("gradients", m.gradients_bytes),
        ("optimizer states", m.optimizer_states_bytes),
        ("overhead", m.overhead_bytes),
    ]
    for name, value in rows:
        if value or name in ("weights", "overhead"):
            table.add_row(name, f"{value / GIB:.2f}", _bar(value, m.capacity_bytes))
    table.add_section()
    table.add_row("total", f"{m.total_bytes / GIB:.2f}", _bar(m.total_bytes, m.capacity_bytes))
    table.add_row("capacity", f"{m.capacity_bytes / GIB:.2f}", "")
    return table


def estimate_summary(est: Estimate) -> list[str]:
    req, par, m = est.request, est.parallel, est.memory
    acc = est.choice.accelerator
    where = f" ({est.choice.instance.name})" if est.choice.instance else ""
    split = f"TP={par.tp} PP={par.pp}" + (f" EP={par.ep}" if par.ep > 1 else "") + (
        f" CP={par.cp}" if par.cp > 1 else "")
    if req.task == "inference":
        what = f"serving with {req.engine}, weights {est.weight_format}, {split}, " \
               f"{par.dp} replica{'s' if par.dp > 1 else ''}"
    else:
        what = f"training ({req.method}), precision {req.precision}, {split} DP={par.dp}"
    lines = [
        f"[bold]{est.model.id}[/bold] on {est.choice.devices} x {acc.id}{where}: {what}",
        f"parameters: {est.model.params.total:,} total, {est.model.params.active:,} active",
    ]
    verdict = "[green]fits[/green]" if est.fits else "[red]does not fit[/red]"
    lines.append(f"{verdict}: {format_bytes(m.total_bytes)} of {format_bytes(m.capacity_bytes)}, "
                 f"headroom {format_bytes(m.headroom_bytes)}")
    if est.kv is not None and est.kv.bytes_per_token:
        kv = est.kv
        lines.append(
            f"KV cache: {format_bytes(kv.bytes_per_token)} per token; engine pool "
            f"{format_bytes(kv.pool_bytes)} = {kv.capacity_tokens:,} tokens in {kv.blocks:,} "
            f"blocks of {kv.block_size}; max concurrency at {est.seq_len:,} tokens: "
            f"{kv.max_concurrency:.2f}"
        )
    lines.append(
        f"max batch at {est.seq_len:,} tokens: {est.max_batch:,}; "
        f"max context at batch {req.batch}: {est.max_seq_len:,} tokens"
    )
    return lines


def hardware_table(rows: list[HardwareRow]) -> Table:
    dates = sorted({r.offering.price_date for r in rows if r.offering})
    title = "Instance types; $/hour: us-east-1 on-demand" + (
        f" ({', '.join(dates)})" if dates else "")
    table = Table(title=title, title_justify="left")
    for col in ("instance", "accel", "n", "accel GiB", "vCPU", "mem GiB", "EFA", "$/hour"):
        table.add_column(col, justify="left" if col in ("instance", "accel") else "right")
    for row in rows:
        inst, off = row.instance, row.offering
        table.add_row(
            inst.name, row.accelerator_label or "-", str(inst.accelerator_count or "-"),
            f"{row.accelerator_memory_bytes / GIB:.0f}" if row.accelerator_memory_bytes else "-",
            str(inst.vcpus), f"{inst.memory_bytes / GIB:.0f}", str(inst.efa_interfaces or "-"),
            f"{off.price_usd_per_hour:.3f}" if off else "unknown",
        )
    return table


def models_table(entries: tuple[ModelEntry, ...]) -> Table:
    table = Table(title="Model catalogue", title_justify="left")
    for col in ("id", "type", "params", "active", "layers", "max context"):
        table.add_column(col, justify="left" if col in ("id", "type") else "right")
    for e in entries:
        m = e.model
        table.add_row(
            m.id, m.architecture.model_type, f"{m.params.total / 1e9:.2f}B",
            f"{m.params.active / 1e9:.2f}B", str(m.architecture.num_layers),
            f"{m.architecture.max_context:,}",
        )
    return table


def speed_lines(est: Estimate) -> list[str]:
    """Speed, cost and checkpoint sections as text lines."""
    lines: list[str] = []
    sp = est.speed
    if sp.serving is not None:
        s = sp.serving
        lines.append(
            f"speed (batch {s.batch}): TTFT {format_duration(s.ttft_s)}, TPOT "
            f"{format_duration(s.tpot_s)}, {s.output_tokens_per_s:,.0f} output tokens/s and "
            f"{s.requests_per_s:.3g} requests/s per replica; decode is {s.decode_bound}-bound"
            + (f" (compute-bound from batch {s.critical_batch})" if s.critical_batch else "")
        )
        if sp.max_batch_for_tpot is not None:
            lines.append(f"largest batch within the TPOT target: {sp.max_batch_for_tpot}")
    if sp.training is not None:
        t = sp.training
        lines.append(
            f"speed: step {format_duration(t.step_time_s)} ({t.tokens_per_step:,} tokens), "
            f"{t.tokens_per_s_per_device:,.0f} tokens/s per device, "
            f"{t.tflops_per_device:.0f} TFLOP/s, MFU {t.mfu:.0%}"
            + (f", bubble {t.bubble_fraction:.0%}" if t.bubble_fraction else "")
        )
        if sp.time_to_train_s:
            hours = sp.time_to_train_s * est.parallel.devices / 3600
            lines.append(f"time to train: {format_duration(sp.time_to_train_s)} "
                         f"({hours:,.0f} device-hours)")
    lines.extend(_cost_lines(est))
    st = est.storage
    what = "model cache" if est.request.task == "inference" else "two checkpoints"
    price = f": ${st.usd_per_month:,.2f}/month" if st.usd_per_month is not None else ""
    lines.append(f"storage: {what} of {format_bytes(st.stored_bytes)} on {st.storage}{price}")
    if est.checkpoint is not None:
        c = est.checkpoint
        lines.append(
            f"checkpoint: {format_bytes(c.size_bytes)} to {c.storage}, written in "
            f"{format_duration(c.write_s)}; every {format_duration(c.interval_s)} (Young/Daly, "
            f"one failure per {format_duration(c.mtbf_s)} of the job): {c.overhead_fraction:.1%} "
            "of the time lost"
        )
    lines.extend(f"note: {n}" for n in est.notes)
    return lines


def _cost_lines(est: Estimate) -> list[str]:
    c = est.cost
    where = f"{c.nodes} x {c.instance_type} ({c.capacity_type}, {c.region})"
    if not c.price_known:
        return [f"cost: {where}: price unknown ({c.note})"]
    parts = [f"${c.usd_per_hour:,.2f}/hour", f"${c.usd_per_month:,.0f}/month"]
    if c.usd_per_million_output_tokens is not None:
        parts.append(f"${c.usd_per_million_output_tokens:,.3f} per million output tokens at "
                     f"{est.request.utilization:.0%} utilization")
    if c.usd_total is not None:
        parts.append(f"${c.usd_total:,.0f} for the run")
    line = f"cost: {where}: " + ", ".join(parts) + f" (prices of {c.price_date})"
    return [line] + ([f"note: {c.note}"] if c.note else [])


def _money(c: Candidate) -> str:
    if c.usd_total is not None:
        return f"${c.usd_total:,.0f} for the run (${c.usd_per_hour:,.2f}/hour)"
    return f"${c.usd_per_month or 0:,.0f}/month (${c.usd_per_hour:,.2f}/hour at the peak)"


def _latency(c: Candidate, task: str) -> str:
    if task in ("fine-tuning", "pre-training", "batch-inference"):
        return f"{format_duration(c.latency_s)} to finish"
    if task == "embedding":
        return f"{format_duration(c.latency_s)} per request"
    return f"TPOT {format_duration(c.latency_s)}" + (
        f", TTFT {format_duration(c.ttft_s)}" if c.ttft_s is not None else "")


def plan_lines(p: Plan, top: int, explain: bool) -> list[str]:
    c = p.choice
    assert c is not None  # plan() raises InfeasibleError instead of returning no choice
    lines = [f"[bold]plan[/bold] for {p.model_id} ({p.task}): {c.label}, {c.nodes} node"
             f"{'s' if c.nodes > 1 else ''}, {_money(c)}; {_latency(c, p.task)}",
             f"{p.evaluated} configurations evaluated, {len(p.alternatives) + 1} meet the spec, "
             f"{len(p.rejections)} rejected", "",
             "why (each with its glossary terms: eksplain explain TERM):" if explain else "why:"]
    for d in p.decisions:
        terms = f" (terms: {', '.join(d.terms)})" if explain else ""
        lines.append(f"- {escape(d.text)}{terms}")
    if p.alternatives:
        lines += ["", f"alternatives (top {min(top, len(p.alternatives))}):"]
        lines += [f"- {a.label}: {_money(a)}; {_latency(a, p.task)}"
                  for a in p.alternatives[:top]]
    lines += ["", "cost vs latency (Pareto front): " + "; ".join(
        f"{a.label} {_money(a)}" for a in p.pareto[:top])]
    if explain:
        lines += ["", "rejected:"]
        lines += [f"- {r.label}: {escape(r.reason)}" for r in p.rejections]
    else:
        lines += ["", "rejections by reason: " + ", ".join(
            f"{code} {n}" for code, n in rejection_counts(p).items())
            + " (--explain lists them)"]
    return lines


def explanation_lines(ex: Explanation) -> list[str | Table]:
    e = ex.entry
    lines: list[str | Table] = []
    w = ex.workload
    if w is not None:
        default = "; the default workload: pass --model and --hardware for yours" if (
            w.default) else ""
        lines.append(f"[dim]workload: {w.describe()}{default}[/dim]")
    lines += [f"[bold]{e.term}[/bold] ({e.key})", "", e.definition, "",
              f"[bold]why it matters:[/bold] {e.infrastructure}", "",
              f"[bold]in eksplain:[/bold] {e.eksplain}"]
    if ex.impact is not None:
        if ex.impact.rows:
            table = Table(title=ex.impact.title, title_justify="left")
            for header in ex.impact.headers:
                table.add_column(header)
            for row in ex.impact.rows:
                table.add_row(*row)
            lines += ["", table]
        else:
            lines += ["", f"[bold]{ex.impact.title}[/bold]"]
        lines += [f"- {note}" for note in ex.impact.notes]
    elif ex.impact_error:
        lines += ["", f"(no figures for this workload: {ex.impact_error})"]
    if ex.used_by:
        lines += ["", "used by: " + "; ".join(ex.used_by)]
    if e.related:
        lines += ["related: " + ", ".join(e.related)]
    return lines


def glossary_table(entries: tuple[GlossaryEntry, ...]) -> Table:
    table = Table(title=f"Glossary ({len(entries)} terms; eksplain explain TERM)",
                  title_justify="left")
    table.add_column("key")
    table.add_column("term")
    table.add_column("definition")
    for e in entries:
        first = e.definition.split(". ")[0].rstrip(".") + "."
        table.add_row(e.key, e.term, first)
    return table


def render_lines(r: Rendered) -> list[str]:
    """What a render wrote, file by file, and what the check found."""
    objects = r.manifests.objects
    where = escape(str(r.written[0].parent)) if r.written else "nowhere"
    lines = [f"wrote {len(r.written)} files to {where}:"]
    for name, objs in r.manifests.files:
        kinds = ", ".join(f"{o['kind']} {o['metadata']['name']}" for o in objs)
        lines.append(f"  {name}: {escape(kinds)}")
    lines.append("  kustomization.yaml, README.md (apply order and prerequisites)")
    if r.checked:
        lines.append(f"checked: {len(objects)} objects match their schemas and each other")
    if r.cel is not None:
        lines.append(escape(r.cel.summary()))
    return lines


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f}"


def _latency_table(sim: Simulation) -> Table:
    r = sim.result
    table = Table(title="Latency (ms)", title_justify="left")
    for name in ("", "mean", "p50", "p90", "p99", "max", "requests"):
        table.add_column(name, justify="left" if not name else "right")
    rows: tuple[tuple[str, LatencySummary], ...] = (
        ("queue wait", r.queue_wait), ("TTFT", r.ttft), ("TPOT", r.tpot),
        ("end to end", r.e2e))
    for name, s in rows:
        table.add_row(name, _ms(s.mean_s), _ms(s.p50_s), _ms(s.p90_s), _ms(s.p99_s),
                      _ms(s.max_s), f"{s.count:,}")
    return table


def simulation_lines(sim: Simulation) -> list[str | Table]:
    r = sim.result
    cfg = r.config
    lim = sim.limits
    lines: list[str | Table] = [
        f"[bold]{escape(sim.model_id)}[/bold] on {escape(sim.choice.label)}, "
        f"{_replicas_words(sim)} ({cfg.routing}), {format_duration(r.simulated_s)} simulated, "
        f"seed {cfg.seed}",
        f"traffic: {escape(sim.traffic)}",
        f"engine: max_num_seqs {lim.max_num_seqs}, token budget "
        f"{lim.max_num_batched_tokens:,}, {lim.kv_blocks:,} KV blocks of {lim.block_size} tokens"
        + (f" (token budget: {escape(sim.token_budget_source)})"
           if sim.token_budget_source else ""),
        "",
        _latency_table(sim),
        "",
        f"requests: {r.arrived:,} arrived = {r.completed:,} completed + {r.failed:,} failed + "
        f"{r.in_flight:,} in flight; {r.preemptions:,} preemptions",
        f"throughput: {r.requests_per_s:,.2f} requests/s, {r.output_tokens_per_s:,.0f} output "
        f"tokens/s; the estimator's TPOT at the plan's batch: {_ms(sim.estimated_tpot_s)} ms",
    ]
    for name, share in r.slo_attainment:
        verdict = "holds" if share >= ATTAINMENT_FOR_P95 else "[red]missed[/red]"
        lines.append(f"SLO {name} p95: {share:.1%} of requests within target, {verdict}")
    if r.timeline:
        peak = max(r.timeline, key=lambda m: (m.waiting, m.minute))
        lines.append(f"queue: at most {peak.waiting:,} waiting (minute {peak.minute}), "
                     f"{r.timeline[-1].waiting:,} at the end")
    lines += _fleet_lines(sim)
    if r.stopped:
        lines.append(f"[red]stopped early:[/red] {escape(r.stopped)}")
    return lines


def _replicas_words(sim: Simulation) -> str:
    f = sim.result.config.fleet
    if f is None or f.autoscaler == "off":
        return f"{sim.result.config.replicas} replicas"
    return (f"{f.autoscaler.upper()} autoscaling {f.min_replicas}-{f.max_replicas} replicas "
            f"from {f.initial_replicas}")


def _fleet_lines(sim: Simulation) -> list[str | Table]:
    f, cfg = sim.result.fleet, sim.result.config.fleet
    if f is None or cfg is None:
        return []
    cold = " + ".join(f"{name.removesuffix('_s').replace('_', ' ')} {seconds:,.0f} s"
                      for name, seconds in sim.cold_start_s)
    cost = f"${f.cost_usd:,.2f}" if f.cost_usd is not None else "no price known"
    lines: list[str | Table] = [
        f"replicas: peak {f.replicas_peak}, {f.scale_ups} scale-ups and {f.scale_downs} "
        f"scale-downs; {f.cold_starts} cold starts (mean {f.cold_start.mean_s:,.0f} s, "
        f"max {f.cold_start.max_s:,.0f} s)",
        f"nodes: peak {f.nodes_peak} x {escape(sim.choice.instance_type)}, "
        f"{f.instance_hours:,.2f} instance-hours, {cost}; accelerators busy "
        f"{f.accelerator_utilisation:.1%} of the serving time",
        f"faults: {f.spot_interruptions} spot interruptions, {f.crashes} replica crashes, "
        f"{f.retries:,} requests retried, {f.failed_after_retries:,} failed after retries",
    ]
    if cold:
        lines.append(f"cold start on a new node: {cold}")
    return lines
