"""Terminal formatting of facade results (Rich tables). No maths beyond unit conversion."""

from __future__ import annotations

from rich.table import Table

from eksplain.api import Estimate, HardwareRow
from eksplain.catalog import ModelEntry
from eksplain.units import GIB, format_bytes

__all__ = ["estimate_summary", "estimate_table", "hardware_table", "models_table"]

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
            f"blocks of {kv.block_size}; max concurrency at {req.seq_len:,} tokens: "
            f"{kv.max_concurrency:.2f}"
        )
    lines.append(
        f"max batch at {req.seq_len:,} tokens: {est.max_batch:,}; "
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
