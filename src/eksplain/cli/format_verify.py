"""Terminal lines for ``eksplain plan --verify``: each candidate tried, and the verdict."""

from __future__ import annotations

from rich.markup import escape

from eksplain.sim.verify import CandidateCheck, SloCheck, Verification
from eksplain.units import format_duration

__all__ = ["verification_lines"]

_NAMES = {"ttft": "TTFT", "tpot": "TPOT", "e2e": "end to end"}


def _slo(s: SloCheck) -> str:
    lat = s.latency
    text = (f"{_NAMES[s.metric]} {s.attainment:.1%} within {format_duration(s.target_s)}")
    if s.held:
        return text
    return (f"{text} (p50 {format_duration(lat.p50_s)}, p90 {format_duration(lat.p90_s)}, "
            f"p99 {format_duration(lat.p99_s)})")


def _candidate(c: CandidateCheck) -> str:
    which = "the choice" if c.rank == 0 else f"alternative {c.rank}"
    verdict = "[green]holds[/green]" if c.passed else "[red]misses[/red]"
    text = f"- {escape(c.label)} ({which}, {c.replicas} replicas): {verdict}"
    if c.slos:
        text += ": " + "; ".join(_slo(s) for s in c.slos)
    if c.stopped:
        text += f"; stopped: {escape(c.stopped)}"
    return text


def verification_lines(v: Verification) -> list[str]:
    if v.status == "not-applicable":
        return ["", f"verify: not applicable: {escape(v.reason)}"]
    lines = ["", f"verify: simulated {format_duration(v.duration_s)} of {escape(v.traffic)}, "
                 f"seed {v.seed}; a p95 target holds when "
                 f"{v.attainment_required:.0%} of requests are within it"]
    lines += [_candidate(c) for c in v.checks]
    if v.verified is None:
        lines.append(f"[red]not verified:[/red] {escape(v.reason)}")
    else:
        lines.append(f"verified: {escape(v.verified)}: {escape(v.reason)}")
    return lines
