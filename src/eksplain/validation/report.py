"""Reference cases, outcomes and the accuracy report shared by the memory and speed checks."""

from __future__ import annotations

import functools
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from eksplain.datafiles import data_files, read_yaml
from eksplain.errors import EksplainError

__all__ = ["Case", "Outcome", "Report", "evaluate", "load_cases", "render_markdown",
           "report_dict", "weight_format"]

# The reference set's words for a weight format (its `quantization` and `dtype` fields), mapped
# to eksplain's formats; one table for the memory and the speed cases.
_FORMATS: dict[str | None, str | None] = {
    None: None, "fp8": "fp8", "awq": "awq", "gptq": "gptq", "int4": "awq",
    "bnb-nf4": "nf4", "nf4": "nf4", "bnb-4bit": "nf4", "bnb-fp4": "bnb4",
    "bnb-int8": "int8-wo", "int8": "int8-wo", "int8 (weight storage)": "int8-wo",
}
_DTYPES = {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32", "fp8": "fp8"}


def weight_format(setup: dict[str, Any]) -> str:
    """The weight format a reference case ran: its quantization, else its dtype (bf16)."""
    quant = setup.get("quantization")
    if quant not in _FORMATS:
        raise EksplainError(f"weight format {quant!r} is not modelled")
    return _FORMATS[quant] or _DTYPES.get(str(setup.get("dtype")), "bf16")

@dataclass(frozen=True)
class Case:
    id: str
    kind: str
    quantity: str
    model: str
    hardware: str
    setup: dict[str, Any]
    value: float
    unit: str
    source: str
    quote: str
    note: str
    exclude: str
    bound: str  # "" (a measurement) or "upper" (the source states an upper bound)
    known_miss: str  # why eksplain misses this case (shown in docs/accuracy.md)
    per: str  # what a throughput is normalised by: sequence, gpu, system
    flops_convention: str  # "model" (default) or "hardware" (recomputation counted)
    kv_cache_dtype: str  # serving speed cases: the KV-cache type, when the source implies one


@dataclass(frozen=True)
class Outcome:
    case: Case
    predicted: float | None  # in the case's unit
    error: float | None  # signed: (predicted - measured) / measured
    tolerance: float | None
    excluded: str = ""

    @property
    def status(self) -> str:
        if self.excluded:
            return "excluded"
        if self.tolerance is None:
            return "calibration"
        if self.case.bound == "upper":
            within = (self.error or 0.0) <= 0
        else:
            within = abs(self.error or 0.0) <= self.tolerance
        if within:
            return "ok"
        return "known miss" if self.case.known_miss else "miss"


@dataclass(frozen=True)
class Report:
    outcomes: tuple[Outcome, ...]

    def by_status(self, status: str) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == status]

    def median_abs_error(self, quantities: tuple[str, ...]) -> float:
        errors = [abs(o.error) for o in self.outcomes
                  if o.error is not None and o.case.quantity in quantities
                  and o.status in ("ok", "miss", "known miss")]
        return statistics.median(errors) if errors else 0.0


def _reference_rows(prefix: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for name in data_files("reference", prefix=prefix):
        rows.extend(read_yaml(name) or [])
    return rows


@functools.cache
def load_cases(prefix: str) -> tuple[Case, ...]:
    """Cases of the reference files whose names start with ``prefix`` (memory, speed)."""
    cases = []
    for row in _reference_rows(prefix):
        cases.append(Case(
            id=row["id"], kind=row["kind"], quantity=row["quantity"], model=row["model"],
            hardware=row["hardware"], setup=dict(row.get("setup") or {}),
            value=float(row["measured"]["value"]), unit=str(row["measured"]["unit"]),
            source=str(row["source"]), quote=str(row["quote"]), note=str(row.get("note", "")),
            exclude=str(row.get("exclude", "")), bound=str(row.get("bound", "")),
            known_miss=str(row.get("known_miss", "")),
            per=str(row["measured"].get("per", "")),
            flops_convention=str(row.get("flops_convention", "model")),
            kv_cache_dtype=str(row.get("kv_cache_dtype", "auto")),
        ))
    return tuple(cases)


def evaluate(
    case: Case, predict: Callable[[Case], float], tolerances: dict[str, float]
) -> Outcome:
    """Predict one case; a quantity without a tolerance is shown as calibration data."""
    if case.exclude:
        return Outcome(case, None, None, None, excluded=case.exclude)
    try:
        predicted = predict(case)
    except EksplainError as exc:
        return Outcome(case, None, None, None, excluded=str(exc))
    error = (predicted - case.value) / case.value if case.value else None
    return Outcome(case, predicted, error, tolerances.get(case.quantity))




def report_dict(report: Report) -> dict[str, Any]:
    return {
        "cases": [
            {
                "id": o.case.id, "quantity": o.case.quantity, "model": o.case.model,
                "hardware": o.case.hardware, "measured": o.case.value, "unit": o.case.unit,
                "predicted": None if o.predicted is None else round(o.predicted, 4),
                "error": None if o.error is None else round(o.error, 4),
                "tolerance": o.tolerance, "status": o.status, "excluded": o.excluded,
                "source": o.case.source,
            }
            for o in report.outcomes
        ],
        "summary": _summary(report),
    }


_GROUPS = {
    "weights": ("weights",),
    "kv capacity": ("kv_cache_bytes", "kv_tokens", "kv_blocks", "max_concurrency"),
    "serving totals": ("serving_total",),
    "training peaks": ("training_peak", "model_states"),
    "decode latency": ("decode_tokens_per_s", "tpot_ms"),
    "serving throughput": ("output_tokens_per_s",),
    "time to first token": ("ttft_ms",),
    "training speed": ("step_time_s", "tokens_per_s_per_device", "tflops_per_device", "mfu",
                       "hfu"),
    "cpu encoder throughput": ("requests_per_s",),
}


def _summary(report: Report) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, quantities in _GROUPS.items():
        rows = [o for o in report.outcomes if o.case.quantity in quantities
                and o.status in ("ok", "miss", "known miss")]
        clean = sorted(abs(o.error or 0) for o in rows if not o.case.known_miss)
        out[name] = {
            "cases": len(rows),
            "within_tolerance": sum(o.status == "ok" for o in rows),
            "median_abs_error": round(report.median_abs_error(quantities), 4),
            "worst_abs_error": round(max((abs(o.error or 0) for o in rows), default=0.0), 4),
            "median_abs_error_without_known_misses": round(statistics.median(clean), 4)
            if clean else 0.0,
        }
    out["excluded"] = len(report.by_status("excluded"))
    return out


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"


def render_markdown(report: Report) -> str:
    """The accuracy table as Markdown (docs/accuracy.md embeds this output)."""
    lines = ["| group | cases | within tolerance | median abs error | worst abs error | "
             "median without known misses |", "|---|---:|---:|---:|---:|---:|"]
    for name, row in _summary(report).items():
        if isinstance(row, dict):
            lines.append(f"| {name} | {row['cases']} | {row['within_tolerance']} | "
                         f"{row['median_abs_error']:.1%} | {row['worst_abs_error']:.1%} | "
                         f"{row['median_abs_error_without_known_misses']:.1%} |")
    lines += ["", "| case | quantity | measured | predicted | error | tolerance | status |",
              "|---|---|---:|---:|---:|---:|---|"]
    for o in report.outcomes:
        if o.status == "excluded":
            continue
        err = "-" if o.error is None else f"{o.error:+.1%}"
        tol = "-" if o.tolerance is None else f"±{o.tolerance:.0%}"
        lines.append(f"| [{o.case.id}]({o.case.source}) | {o.case.quantity} | "
                     f"{_fmt(o.case.value)} {o.case.unit} | {_fmt(o.predicted)} | {err} | "
                     f"{tol} | {o.status} |")
    lines += ["", "Known misses (counted in the summary above):", ""]
    lines += [f"- `{o.case.id}` ({o.error:+.1%}): {o.case.known_miss}"
              for o in report.by_status("known miss")]
    lines += ["", "Excluded cases (not predicted):", ""]
    lines += [f"- `{o.case.id}`: {o.excluded}" for o in report.by_status("excluded")]
    return "\n".join(lines) + "\n"


