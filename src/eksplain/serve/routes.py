"""The HTTP routes. Each is the CLI's recipe: parse (pydantic) -> one facade call -> JSON form.

Request bodies are the spec's own models (``WorkloadSpec``, ``EstimateRequest``); options that
are the CLI's flags are query parameters. JSON forms come from ``eksplain.serialize`` (the
contract of docs/json.md), so the API and ``--json`` print the same documents.
"""

from __future__ import annotations

import asyncio
import io
import threading
import zipfile
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Path, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from eksplain import __version__, api
from eksplain.errors import CatalogError
from eksplain.serialize import explanation_dict, glossary_entry_dict
from eksplain.serve.guards import catalogue_model, no_files
from eksplain.serve.limits import Deadline, DeadlineExceededError
from eksplain.serve.problems import ProblemError, problem_responses
from eksplain.units import parse_duration

__all__ = ["Limits", "router", "simulation_json"]

JSON = dict[str, Any]
_BAD = problem_responses(400, 413, 422)
# Kubernetes names (RFC 1123 labels): what the rendered objects accept.
_NAME = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_ZIP_DATE = (2020, 1, 1, 0, 0, 0)  # a fixed timestamp: the same spec gives the same bytes


@dataclass(frozen=True)
class Limits:
    """Per-request limits of the server (``create_app`` takes them)."""

    body_bytes: int = 1 << 20
    simulation_s: float = 20.0  # wall-clock seconds a simulation may compute
    simulated_s: float = 86_400.0  # longest simulated time a request may ask for
    simulations: int = 2  # simulations computing at once; more are refused with 429


router = APIRouter()
Spec = Annotated[api.WorkloadSpec, Body(description="a workload spec, as `eksplain schema`")]


@router.get("/healthz", tags=["meta"])
def healthz() -> dict[str, str]:
    """Liveness: the server answers."""
    return {"status": "ok", "version": __version__}


@router.get("/v1/models", tags=["catalogue"])
def models() -> list[JSON]:
    """The bundled model catalogue (the ids and aliases every ``model`` field accepts)."""
    return [api.model_entry_dict(e) for e in api.models()]


@router.get("/v1/hardware", tags=["catalogue"], responses=_BAD)
def hardware(family: Annotated[str | None, Query(max_length=32)] = None,
             min_memory: Annotated[str | None, Query(max_length=32,
                                                     description="e.g. 48GiB")] = None,
             ) -> list[JSON]:
    """Instance types with accelerators and their us-east-1 on-demand prices."""
    return [api.hardware_row_dict(r) for r in api.hardware(family, min_memory)]


@router.get("/v1/glossary", tags=["glossary"])
def glossary() -> list[JSON]:
    """Every glossary term: key, name, aliases, definition and infrastructure impact."""
    return [glossary_entry_dict(e) for e in api.glossary()]


@router.get("/v1/explain/{term}", tags=["glossary"], responses=problem_responses(404, 422))
def explain(term: Annotated[str, Path(max_length=64)],
            model: Annotated[str | None, Query(max_length=200)] = None,
            hardware: Annotated[str | None, Query(max_length=64)] = None,
            input_tokens: Annotated[int, Query(ge=1, le=1_000_000)] = 512,
            output_tokens: Annotated[int, Query(ge=0, le=1_000_000)] = 256) -> JSON:
    """A glossary term, and its figures for a workload (Llama-3.1-8B on an H100 by default)."""
    if model is not None:
        catalogue_model(model, ("query", "model"))
    known = {e.key for e in api.glossary()}
    try:
        result = api.explain(term, model, hardware, input_tokens, output_tokens)
    except CatalogError as exc:
        if term.lower() in known or not exc.message.startswith("Unknown term"):
            raise
        raise ProblemError(404, exc.message, exc.hint, ("path", "term"),
                           exc.suggestions) from exc
    return explanation_dict(result)


@router.post("/v1/estimate", tags=["plan"], responses=_BAD)
async def estimate(request: Annotated[api.EstimateRequest, Body()]) -> JSON:
    """Memory per device, fit, speed and cost of one model on one hardware choice."""
    # Runs on the event loop, not in a worker thread: an estimate takes about a millisecond, and
    # the hand-off to a thread cost more than that under load (bench/bench_serve.py: 1.10 ms
    # of server CPU per request in a thread, 0.80 ms inline, and half the p99 latency).
    catalogue_model(request.model)
    return api.estimate(request).to_dict()


@router.post("/v1/plan", tags=["plan"], responses=_BAD)
def plan(spec: Spec, top: Annotated[int | None, Query(ge=0, le=1000, description=
                                                      "alternatives to list; all when absent")]
         = None) -> JSON:
    """The cheapest configuration that meets the spec, its alternatives, rejections and the
    reasons; the JSON of ``eksplain plan --json``."""
    spec = no_files(spec)
    return api.plan_dict(api.plan(spec), top, spec)


@router.post("/v1/render", tags=["render"], response_class=Response, responses={
    200: {"description": "one multi-document YAML stream, or a zip of the files",
          "content": {"application/yaml": {"schema": {"type": "string"}},
                      "application/zip": {"schema": {"type": "string", "format": "binary"}}}},
    **_BAD})
def render(spec: Spec,
           format: Annotated[Literal["yaml", "zip"], Query()] = "yaml",
           check: Annotated[bool, Query(description="validate every object first")] = False,
           autoscaler: Annotated[Literal["hpa", "keda"], Query()] = "hpa",
           namespace: Annotated[str | None, Query(max_length=63, pattern=_NAME)] = None,
           cluster_name: Annotated[str, Query(max_length=63, pattern=_NAME)] = "eksplain",
           model_bucket: Annotated[str, Query(max_length=63, pattern=_NAME)]
           = "my-model-bucket",
           hf_token_secret: Annotated[str, Query(max_length=63, pattern=_NAME)] = "hf-token",
           ) -> Response:
    """Kubernetes manifests for the plan's choice, as ``eksplain render``."""
    spec = no_files(spec)
    options = api.RenderOptions(namespace=namespace, cluster_name=cluster_name,
                                autoscaler=autoscaler, hf_token_secret=hf_token_secret,
                                model_bucket=model_bucket)
    rendered = api.render(spec, check=check, options=options)
    if format == "yaml":
        return Response(api.render_stream(rendered), media_type="application/yaml")
    name = f"{rendered.manifests.context.namespace}-manifests"
    return Response(_zip(rendered.files, name), media_type="application/zip", headers={
        "content-disposition": f'attachment; filename="{name}.zip"'})


def _zip(files: tuple[tuple[str, str], ...], folder: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for file_name, text in files:
            archive.writestr(zipfile.ZipInfo(f"{folder}/{file_name}", _ZIP_DATE), text)
    return buffer.getvalue()


def simulation_json(sim: api.Simulation) -> JSON:
    """The JSON of a simulation: the one place the API converts one (new fields go here)."""
    return api.simulation_dict(sim)


@dataclass(frozen=True)
class _Slot:
    """One of the server's simulation slots, held by the worker thread that runs in it."""

    slots: threading.BoundedSemaphore
    started: threading.Event


def _simulate(spec: api.WorkloadSpec, options: api.SimulateOptions, limit_s: float,
              slot: _Slot) -> JSON:
    """The worker thread: it holds its slot until it stops, even when the route stopped
    waiting for it."""
    slot.started.set()
    deadline = Deadline(limit_s)
    try:
        return simulation_json(api.simulate(spec, options, progress=deadline.check))
    except DeadlineExceededError:
        raise _too_long(limit_s) from None
    finally:
        slot.slots.release()


def _too_long(limit_s: float) -> ProblemError:
    return ProblemError(422, f"The simulation did not finish within this server's limit of "
                        f"{limit_s:g} s of computing.", "simulate a shorter duration or "
                        "lower traffic, or run `eksplain simulate` locally",
                        ("query", "duration"))


@router.post("/v1/simulate", tags=["simulate"],
             responses={**_BAD, **problem_responses(429)})
async def simulate(
    request: Request,
    spec: Spec,
    duration: Annotated[str, Query(max_length=16, description="simulated time, e.g. 30m")]
    = "1h",
    seed: Annotated[int, Query(ge=0, le=2**32 - 1)] = 0,
    replicas: Annotated[int | None, Query(ge=1, le=1000, description=
                                          "default: the plan's peak replicas")] = None,
    routing: Annotated[Literal["round-robin", "least-outstanding", "central-queue"],
                       Query()] = "least-outstanding",
) -> JSON:
    """Plan the spec and simulate its choice under the spec's traffic, as ``eksplain
    simulate``: latency percentiles, SLO attainment, and the queue per simulated minute."""
    limits: Limits = request.app.state.limits
    spec = no_files(spec)
    seconds = _duration(duration, limits.simulated_s)
    options = api.SimulateOptions(duration_s=seconds, seed=seed, replicas=replicas,
                                  routing=routing)
    slots: threading.BoundedSemaphore = request.app.state.simulation_slots
    if not slots.acquire(blocking=False):
        raise ProblemError(429, f"{limits.simulations} simulations are already running on this "
                           "server.", "retry in a few seconds")
    slot = _Slot(slots, threading.Event())
    try:
        # The worker checks the deadline once a simulated minute and stops itself; the route
        # stops waiting a little later (planning, and the minute in progress, come first).
        return await asyncio.wait_for(
            run_in_threadpool(_simulate, spec, options, limits.simulation_s, slot),
            limits.simulation_s + 5.0)
    except TimeoutError:
        raise _too_long(limits.simulation_s) from None
    finally:
        # A thread that started runs to its end and frees the slot itself (a thread cannot be
        # cancelled); one that never got a thread must not keep it.
        if not slot.started.is_set():
            slots.release()


def _duration(text: str, most_s: float) -> float:
    try:
        seconds = parse_duration(text)
    except Exception as exc:
        raise ProblemError(422, str(exc), "write 30m, 2h or 90s", ("query", "duration")) from exc
    if not 0 < seconds <= most_s:
        raise ProblemError(422, f"duration {text!r} is outside (0, {most_s:g} s], the longest "
                           "simulation this server runs.", "simulate less time",
                           ("query", "duration"))
    return seconds

