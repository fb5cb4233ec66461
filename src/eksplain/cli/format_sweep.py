"""Terminal table for ``eksplain simulate --sweep``: one row per scenario, in the sweep's order."""

from __future__ import annotations

from rich import box
from rich.markup import escape
from rich.table import Table

from eksplain.sim.metrics import ATTAINMENT_FOR_P95
from eksplain.sim.sweep import SweepResult, SweepRow

__all__ = ["sweep_lines"]


def _ms(value: float) -> str:
    return f"{value * 1000:,.0f}" if value >= 0.1 else f"{value * 1000:,.1f}"


def _share(row: SweepRow, metric: str) -> str:
    share = dict(row.attainment).get(metric)
    if share is None:
        return "-"
    text = f"{share:.1%}"
    return text if share >= ATTAINMENT_FOR_P95 else f"[red]{text}[/red]"


def _plans(result: SweepResult) -> dict[tuple[str, str], str]:
    """A short key per (spec, plan), #1, #2 ..., in the order they first appear."""
    keys: dict[tuple[str, str], str] = {}
    for r in result.rows:
        keys.setdefault((r.spec, r.plan), f"#{len(keys) + 1}")
    return keys


def _table(result: SweepResult, keys: dict[tuple[str, str], str]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 0, 0, 1))
    heads = ["plan", "repl", "req/s", "seed", "done/s", "TTFT p99", "TPOT p99",
             "TTFT ok", "TPOT ok", "$/h", "$/1M"]
    for i, head in enumerate(heads):
        table.add_column(head, justify="left" if i == 0 else "right")
    for r in result.rows:
        cost = r.usd_per_million_output_tokens
        cells = [
            keys[(r.spec, r.plan)] + ("[red]![/red]" if r.stopped else ""), str(r.replicas),
            f"{r.rps:g}", str(r.seed), f"{r.requests_per_s:,.2f}", _ms(r.ttft[2]),
            _ms(r.tpot[2]), _share(r, "ttft"), _share(r, "tpot"), f"{r.usd_per_hour:,.2f}",
            "-" if cost is None else f"{cost:,.2f}"]
        table.add_row(*cells)
    return table


def sweep_lines(result: SweepResult) -> list[str | Table]:
    keys = _plans(result)
    lines: list[str | Table] = [
        f"sweep {escape(result.path)}: {len(result.rows)} scenarios of "
        f"{result.duration_s / 60:g} simulated min each ({result.routing})"]
    lines += [f"{key}: {escape(plan)} ({escape(spec)})" for (spec, plan), key in keys.items()]
    lines += [_table(result, keys),
              "repl: replicas; req/s: the mean traffic asked for; done/s: requests completed "
              "a second; p99 in ms; ok: share of requests within the spec's p95 target (a p95 "
              "holds at 95%); "
              "$/h: the replicas at the plan's peak price per replica; $/1M: per million "
              "output tokens"]
    stopped = [r for r in result.rows if r.stopped]
    if stopped:
        lines.append(f"[red]! {len(stopped)} scenario(s) stopped early:[/red] "
                     f"{escape(stopped[0].stopped)}")
    return lines
