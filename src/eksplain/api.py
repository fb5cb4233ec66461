"""The facade: the one module front ends (CLI, HTTP) import.

    estimate(EstimateRequest, offerings=None) -> Estimate   memory, speed and cost of one setup
    plan(WorkloadSpec, offerings=None) -> Plan               the cheapest setup that meets a spec
    explain(term, model=None, hardware=None) -> Explanation   a glossary term, for a workload
    glossary() -> every glossary entry
    render(WorkloadSpec, out_dir=None, ...) -> Rendered      validated Kubernetes manifests
    load_spec(path) / spec_schema()                          the workload spec
    models() -> catalogue entries
    hardware(family, min_memory) -> instance types with prices
    load_price_file(path) -> offerings from a user's CSV (front ends read files, the core does not)
    simulate(WorkloadSpec, SimulateOptions) -> Simulation   the plan's choice under traffic
    load_trace(path) -> Trace                                a CSV request trace for simulate
    simulation_chart(Simulation) -> Chart                    load, replicas, queue, latency
    chart_bytes(Chart, suffix) -> bytes                      a chart as .png, .svg or .html
    verify(WorkloadSpec, Plan, VerifyOptions) -> Verification   the plan's SLOs, simulated
    load_sweep(path) -> Sweep / sweep(Sweep, jobs, ray) -> SweepResult   many simulations
    sweep_chart(SweepResult) -> Chart                        latency and cost against traffic

Requests are pydantic models (the validation boundary); results are frozen dataclasses whose
JSON forms (``eksplain.serialize``) are the contract documented in docs/json.md.
"""

from __future__ import annotations

import csv
import dataclasses
import importlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from eksplain.catalog import ModelEntry, load_models, resolve_model
from eksplain.errors import InputError, RenderError
from eksplain.estimate import Estimate, EstimateRequest, run_estimate
from eksplain.hardware import (
    InstanceType,
    Offering,
    filter_instances,
    load_catalog,
    offering_for,
)
from eksplain.search import Plan
from eksplain.search import plan as run_plan
from eksplain.serialize import (
    PLAN_FORMAT,
    hardware_row_dict,
    model_entry_dict,
    plan_dict,
    simulation_dict,
    sweep_dict,
    verification_dict,
)
from eksplain.spec import WorkloadSpec, load_spec, spec_from_dict, spec_schema
from eksplain.units import parse_bytes

if TYPE_CHECKING:  # imported when first used: explain, render and simulate load on demand
    from eksplain.explain import Explanation, GlossaryEntry
    from eksplain.render import Manifests, RenderOptions
    from eksplain.render.check import CelCoverage, Finding
    from eksplain.sim import Trace
    from eksplain.sim.chart import Chart
    from eksplain.sim.scenario import SimulateOptions, Simulation
    from eksplain.sim.sweep import Sweep, SweepResult
    from eksplain.sim.verify import Verification, VerifyOptions

# Names of the use cases' types that front ends reach through the facade; their modules load
# on first use so that every command does not pay for all of them at start-up.
_LAZY = {
    "Explanation": "eksplain.explain", "GlossaryEntry": "eksplain.explain",
    "Manifests": "eksplain.render", "RenderOptions": "eksplain.render",
    "Trace": "eksplain.sim", "SimulateOptions": "eksplain.sim.scenario",
    "Simulation": "eksplain.sim.scenario",
    "Chart": "eksplain.sim.chart",
    "Verification": "eksplain.sim.verify", "VerifyOptions": "eksplain.sim.verify",
    "Sweep": "eksplain.sim.sweep", "SweepResult": "eksplain.sim.sweep",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)

__all__ = [
    "Chart",
    "Estimate",
    "EstimateRequest",
    "Explanation",
    "GlossaryEntry",
    "HardwareRow",
    "Plan",
    "PlanFile",
    "RenderOptions",
    "Rendered",
    "SimulateOptions",
    "Simulation",
    "Sweep",
    "SweepResult",
    "Trace",
    "Verification",
    "VerifyOptions",
    "WorkloadSpec",
    "chart_bytes",
    "estimate",
    "explain",
    "glossary",
    "hardware",
    "hardware_row_dict",
    "load_plan_json",
    "load_price_file",
    "load_spec",
    "load_sweep",
    "load_trace",
    "model_entry_dict",
    "models",
    "plan",
    "plan_dict",
    "render",
    "render_stream",
    "simulate",
    "simulation_chart",
    "simulation_dict",
    "spec_from_dict",
    "spec_schema",
    "sweep",
    "sweep_chart",
    "sweep_dict",
    "verification_dict",
    "verify",
]


def estimate(request: EstimateRequest, offerings: tuple[Offering, ...] = ()) -> Estimate:
    """Memory per device, fit, speed and cost for one model on one hardware choice.

    ``offerings`` (from ``load_price_file``) take precedence over the packaged prices.
    """
    catalog = load_catalog()
    if offerings:
        catalog = dataclasses.replace(catalog, offerings=offerings + catalog.offerings)
    return run_estimate(request, catalog)


def plan(spec: WorkloadSpec, offerings: tuple[Offering, ...] = ()) -> Plan:
    """The cheapest configuration that meets the spec, its alternatives, rejections and reasons.

    Raises ``InfeasibleError`` naming what would have to change when nothing qualifies.
    """
    catalog = load_catalog()
    if offerings:
        catalog = dataclasses.replace(catalog, offerings=offerings + catalog.offerings)
    return run_plan(spec, catalog)


def explain(term: str, model: str | None = None, hardware: str | None = None,
            input_tokens: int = 512, output_tokens: int = 256) -> Explanation:
    """A glossary term (key, name or alias): its definition, why it matters, where eksplain
    uses it, and its figures for the workload (Llama-3.1-8B on an H100 when none is given)."""
    from eksplain.explain import explain as run_explain

    return run_explain(term, model, hardware, input_tokens, output_tokens)


def glossary() -> tuple[GlossaryEntry, ...]:
    """Every glossary entry, in the seed glossary's order."""
    from eksplain.explain import glossary as load_glossary_entries

    return load_glossary_entries()


@dataclass(frozen=True)
class Rendered:
    """A render: the objects, the files' texts, what the check found, and what was written."""

    manifests: Manifests
    files: tuple[tuple[str, str], ...]  # (file name, text), in apply order
    findings: tuple[Finding, ...]  # empty when not checked or when valid
    checked: bool
    written: tuple[Path, ...]
    cel: CelCoverage | None = None  # the CRD CEL rules the check met; None when not checked


@dataclass(frozen=True)
class PlanFile:
    """What ``eksplain render PLAN.json`` needs from ``eksplain plan --json``: the spec it
    answers and the configuration it chose (checked against a fresh plan of that spec)."""

    spec: WorkloadSpec
    choice_label: str


def load_plan_json(path: Path) -> PlanFile:
    """Read the JSON of ``eksplain plan --json``; errors name the field that is wrong."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"Cannot read {path}: {exc.strerror}.") from exc
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not JSON (line {exc.lineno}: {exc.msg}).") from exc
    where = f"{path}"
    if not isinstance(data, dict):
        raise InputError(f"{where}: a plan JSON is an object, as `eksplain plan --json` prints.")
    if data.get("plan_format") != PLAN_FORMAT:
        raise InputError(f"{where}: plan_format is {data.get('plan_format')!r}, this eksplain "
                         f"reads {PLAN_FORMAT}.",
                         hint="re-run `eksplain plan SPEC --json` with this version")
    if not isinstance(data.get("spec"), dict):
        raise InputError(f"{where}: spec is missing; it is what the plan answers.",
                         hint="re-run `eksplain plan SPEC --json` with this version")
    choice = data.get("choice")
    label = choice.get("label") if isinstance(choice, dict) else None
    if not isinstance(label, str):
        raise InputError(f"{where}: choice.label is missing: the plan chose nothing to render.")
    return PlanFile(spec_from_dict(data["spec"], f"{where}: spec"), label)


def render(spec: WorkloadSpec, out_dir: Path | None = None, *, check: bool = False,
           force: bool = False, options: RenderOptions | None = None,
           offerings: tuple[Offering, ...] = (), expect_choice: str | None = None) -> Rendered:
    """Plan the spec and render its manifests; with ``out_dir``, write one file per concern,
    a kustomization.yaml and a README.md there.

    ``check`` validates every object (schemas, then cross-object checks) and raises
    ``RenderError`` listing each finding, writing nothing, when any fails. An existing
    ``out_dir`` is refused unless ``force``; files the render did not write are never touched.
    ``expect_choice`` (a plan JSON's ``choice.label``) must be what planning the spec chooses.
    """
    from eksplain.render import RenderOptions, render_plan
    from eksplain.render.context import check_spec
    from eksplain.render.output import file_texts, write_files

    check_spec(spec)
    opts = options or RenderOptions()
    catalog = load_catalog()
    if offerings:
        catalog = dataclasses.replace(catalog, offerings=offerings + catalog.offerings)
    result = run_plan(spec, catalog)
    chosen = result.choice.label if result.choice else None
    if expect_choice is not None and chosen != expect_choice:
        raise RenderError(f"plan JSON: choice.label is {expect_choice!r}, but planning its spec "
                          f"now chooses {chosen!r} (another eksplain version, other prices, or "
                          "an edited file).",
                          hint="re-run `eksplain plan SPEC --json`, or render the spec itself")
    manifests = render_plan(spec, result, resolve_model(spec.model), catalog, opts)
    findings: tuple[Finding, ...] = ()
    cel: CelCoverage | None = None
    if check:
        # imported here: the schema packages add a tenth of a second to every command's start
        from eksplain.render.check import check_report

        report = check_report(manifests.objects, catalog, (opts.hf_token_secret,))
        findings, cel = report.findings, report.cel
    if findings:
        raise RenderError(f"{len(findings)} problem(s) in the rendered manifests:\n"
                          + "\n".join(f"  {f}" for f in findings))
    files = file_texts(manifests)
    written = write_files(files, out_dir, force) if out_dir is not None else ()
    return Rendered(manifests, files, findings, check, written, cel)


def render_stream(rendered: Rendered) -> str:
    """All rendered objects as one multi-document YAML stream, in apply order."""
    from eksplain.render.output import stream

    return stream(rendered.manifests)


def models() -> tuple[ModelEntry, ...]:
    """The bundled model catalogue."""
    return load_models()


@dataclass(frozen=True)
class HardwareRow:
    instance: InstanceType
    accelerator_memory_bytes: int
    accelerator_label: str  # the short name Karpenter labels nodes with (h100, l40s, inferentia2)
    offering: Offering | None


def hardware(family: str | None = None, min_memory: str | None = None) -> list[HardwareRow]:
    """Instance types, optionally of one family and with at least ``min_memory`` of accelerator
    memory in total (``48GiB``), each with its us-east-1 on-demand price when known."""
    catalog = load_catalog()
    minimum = parse_bytes(min_memory) if min_memory else None
    acc = {a.id: a for a in catalog.accelerators}
    rows = []
    for inst in filter_instances(catalog, family, minimum):
        chip = acc.get(inst.accelerator_id or "")
        memory = chip.memory_bytes * inst.accelerator_count if chip else 0
        label = chip.karpenter_label if chip else ""
        rows.append(HardwareRow(inst, memory, label, offering_for(catalog, inst.name)))
    return rows


_PRICE_COLUMNS = ("instance_type", "region", "capacity_type", "price_usd_per_hour")


def load_price_file(path: Path) -> tuple[Offering, ...]:
    """A user's prices: CSV with instance_type, region, capacity_type, price_usd_per_hour and
    optionally price_date and source (for example spot prices or a negotiated discount)."""
    try:
        rows = list(csv.DictReader(path.read_text(encoding="utf-8").splitlines()))
    except OSError as exc:
        raise InputError(f"Cannot read the price file {path}: {exc.strerror}.") from exc
    missing = [c for c in _PRICE_COLUMNS if rows and c not in rows[0]]
    if not rows or missing:
        raise InputError(f"The price file {path} needs the columns {', '.join(_PRICE_COLUMNS)}.",
                         hint=f"missing: {', '.join(missing) or 'all rows'}")
    offerings = []
    for line, row in enumerate(rows, start=2):
        try:
            price = float(row["price_usd_per_hour"])
        except ValueError as exc:
            raise InputError(f"{path}:{line}: price_usd_per_hour {row['price_usd_per_hour']!r} "
                             "is not a number.") from exc
        offerings.append(Offering(row["instance_type"], row["region"], row["capacity_type"],
                                  price, row.get("price_date") or "", row.get("source") or
                                  str(path)))
    return tuple(offerings)


def simulate(spec: WorkloadSpec, options: SimulateOptions | None = None,
             offerings: tuple[Offering, ...] = (),
             progress: Callable[[float], None] | None = None) -> Simulation:
    """Plan ``spec``, then simulate its choice under the spec's traffic (or ``options.trace``)
    with its autoscaling, nodes, cold starts and faults (or a fixed number of replicas):
    latency percentiles, SLO attainment, replicas, queue and cost over time.

    ``progress`` hears the simulated seconds done, once a simulated minute.
    """
    catalog = load_catalog()
    if offerings:
        catalog = dataclasses.replace(catalog, offerings=offerings + catalog.offerings)
    chosen = run_plan(spec, catalog)
    if chosen.choice is None:  # pragma: no cover - plan raises InfeasibleError first
        raise InputError("The plan chose nothing to simulate.")
    from eksplain.sim.scenario import SimulateOptions, simulate_plan

    options = options or SimulateOptions()
    load = dict(chosen.extras).get("weight_load_s")  # the plan's model cache, as it chose it
    if options.weight_load_s is None and isinstance(load, int | float):
        options = dataclasses.replace(options, weight_load_s=float(load))
    return simulate_plan(spec, chosen.choice, catalog, options, progress)


def load_trace(path: Path) -> Trace:
    """A request trace: CSV with timestamp_s, input_tokens, output_tokens (errors name lines)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"Cannot read the trace {path}: {exc.strerror}.") from exc
    from eksplain.sim import parse_trace

    return parse_trace(text.splitlines(), str(path))


def simulation_chart(sim: Simulation) -> Chart:
    """A simulation's timeline as a chart: load, replicas, queue, and p95 latency against the
    SLO targets, one point a simulated minute."""
    from eksplain.sim.chart import timeline_chart

    return timeline_chart(sim)


def chart_bytes(chart: Chart, suffix: str) -> bytes:
    """A chart as the bytes of a ``.png`` (needs the ``chart`` extra), ``.svg`` or ``.html``
    file; front ends write them."""
    from eksplain.sim.chart import chart_bytes as draw

    return draw(chart, suffix)


def verify(spec: WorkloadSpec, planned: Plan, options: VerifyOptions | None = None,
           offerings: tuple[Offering, ...] = (),
           progress: Callable[[float], None] | None = None) -> Verification:
    """Simulate ``planned`` (the plan of ``spec``) under the spec's traffic and check its p95
    targets; when the choice misses them, try the next candidates in rank order (up to
    ``options.top``). Plans that are not online serving come back ``not-applicable``.

    ``progress`` hears the simulated seconds done over all candidates tried so far.
    """
    catalog = load_catalog()
    if offerings:
        catalog = dataclasses.replace(catalog, offerings=offerings + catalog.offerings)
    from eksplain.sim.verify import VerifyOptions, verify_plan

    return verify_plan(spec, planned, catalog, options or VerifyOptions(), progress)


def load_sweep(path: Path) -> Sweep:
    """A sweep file (YAML: ``spec`` or ``specs``, ``plans``, ``rps``, ``seeds``, ``replicas``,
    ``duration``, ``routing``) and the specs it names; errors name the line and field."""
    from eksplain.sim.sweep import load_sweep as read

    return read(path)


def sweep(planned: Sweep, jobs: int | None = None, ray: str | None = None,
          progress: Callable[[int, int], None] | None = None) -> SweepResult:
    """Run every scenario of a sweep: on ``jobs`` local processes (default: one per CPU), or on
    the Ray cluster at ``ray`` (``"local"`` starts one here). Rows come back in the sweep's
    order, so the result does not depend on where they ran. ``progress`` hears (done, all)."""
    import os

    from eksplain.sim.sweep import RUNNERS, run_sweep

    workers = jobs if jobs is not None else os.cpu_count() or 1
    if workers < 1:
        raise InputError("--jobs must be at least 1.")
    runner = RUNNERS["ray"](ray, workers) if ray else RUNNERS["processes"]("", workers)
    return run_sweep(planned, runner, load_catalog(), progress)


def sweep_chart(result: SweepResult) -> Chart:
    """A sweep against traffic, a line a plan: p99 TTFT and TPOT, SLO attainment, cost."""
    from eksplain.sim.chart import sweep_chart as draw

    return draw(result)
