"""Sweeps (``eksplain simulate --sweep FILE``): many simulations, traffic levels x plans x seeds.

    sweep file   YAML, one strict schema (``SweepFile``): which specs, how many of each plan's
                 ranked candidates, which mean rates, seeds and replica counts, how long
    scenarios    every combination, in the file's order (spec, plan, replicas, rate, seed)
    runners      where they run: in this process, on local processes, or on a Ray cluster;
                 each returns the rows in scenario order, so the output does not depend on
                 the runner or the number of workers
    rows         one per scenario: what the simulation measured, and what the fleet cost

Each spec is planned once at its own traffic; its candidates are then simulated at every
traffic level with their peak replicas (or the sweep's replica counts), so a line per plan
shows where each plan stops holding its SLOs as traffic grows. A traffic level replaces the
spec's mean rate; its pattern and peak-to-mean stay (a daily pattern starts at its busiest
hour, as in ``simulate``).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Protocol

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from eksplain.errors import InputError, suggest
from eksplain.hardware import HardwareCatalog, load_catalog
from eksplain.search import Candidate
from eksplain.search import plan as run_plan
from eksplain.sim.engine import ROUTING, SimResult
from eksplain.spec import WorkloadSpec, load_spec
from eksplain.units import parse_duration

__all__ = ["RUNNERS", "Job", "ProcessRunner", "RayRunner", "Runner", "SequentialRunner",
           "Sweep", "SweepFile", "SweepResult", "SweepRow", "load_sweep", "peak_replicas",
           "prepare_jobs", "run_job", "run_sweep"]

Progress = Callable[[int, int], None]  # (scenarios done, scenarios in all)


class SweepFile(BaseModel):
    """The sweep file: ``spec`` or ``specs``, and what to vary. Paths are relative to the file;
    lists must not be empty."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    spec: str | None = Field(default=None, description="a workload spec (YAML) of a serving "
                             "workload, relative to the sweep file")
    specs: list[str] | None = Field(default=None, min_length=1, description="several specs, "
                                    "instead of spec")
    plans: int = Field(default=1, ge=1, le=20, description="candidates of each spec's plan to "
                       "simulate, in rank order: 1 = the choice, 3 = it and two alternatives")
    rps: list[Annotated[float, Field(gt=0)]] | None = Field(
        default=None, min_length=1,
        description="mean requests per second to simulate (default: each spec's own)")
    seeds: list[int] = Field(default=[0], min_length=1, description="random seeds")
    replicas: list[Annotated[int, Field(ge=1)]] | None = Field(
        default=None, min_length=1,
        description="replica counts (default: each candidate's peak replicas)")
    duration: float = Field(default=600.0, description="simulated time of each scenario, "
                            "e.g. 10m")
    routing: str = "least-outstanding"

    @model_validator(mode="after")
    def _one_of_spec_and_specs(self) -> SweepFile:
        if (self.spec is None) == (self.specs is None):
            raise ValueError("give exactly one of spec (a path) and specs (a list of paths)")
        return self

    @property
    def spec_paths(self) -> list[str]:
        return [self.spec] if self.spec is not None else list(self.specs or [])

    @field_validator("duration", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return parse_duration(value)
            except InputError as exc:
                raise ValueError(f"{exc.message} ({exc.hint})") from exc
        return value

    @field_validator("duration")
    @classmethod
    def _positive(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("the simulated duration must be more than zero")
        return value

    @field_validator("routing")
    @classmethod
    def _routing(cls, value: str) -> str:
        if value not in ROUTING:
            raise ValueError(f"routing must be one of {', '.join(ROUTING)}")
        return value


@dataclass(frozen=True)
class Sweep:
    path: str
    file: SweepFile
    specs: tuple[tuple[str, WorkloadSpec], ...]  # (the path as the file names it, the spec)


@dataclass(frozen=True)
class Job:
    """One scenario, everything a worker needs (picklable: sent to processes and to Ray)."""

    index: int
    spec_name: str
    spec: WorkloadSpec  # with the scenario's mean rate
    candidate: Candidate
    rank: int
    replicas: int
    seed: int
    duration_s: float
    routing: str


@dataclass(frozen=True)
class SweepRow:
    """What one scenario measured. Latencies in seconds; 0 when no request completed."""

    spec: str
    plan: str
    rank: int
    replicas: int
    rps: float  # the mean rate asked for
    seed: int
    simulated_s: float
    arrived: int
    completed: int
    failed: int
    in_flight: int
    requests_per_s: float
    output_tokens_per_s: float
    ttft: tuple[float, float, float]  # p50, p90, p99
    tpot: tuple[float, float, float]
    e2e: tuple[float, float, float]
    attainment: tuple[tuple[str, float], ...]  # (ttft / tpot / e2e, share within the target)
    targets: tuple[tuple[str, float], ...]  # the spec's p95 targets, seconds
    usd_per_hour: float  # the fleet: replicas x the plan's peak price per replica
    usd_per_million_output_tokens: float | None
    stopped: str


@dataclass(frozen=True)
class SweepResult:
    path: str
    duration_s: float
    routing: str
    rows: tuple[SweepRow, ...]  # in scenario order


def _line(node: yaml.Node | None, loc: Sequence[int | str]) -> int | None:
    """The 1-based line of the YAML node at ``loc`` (a pydantic error location), or of the
    deepest node found on the way."""
    line = None if node is None else node.start_mark.line + 1
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if k.value == key), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) \
                and key < len(node.value):
            node = node.value[key]
        else:
            break
        if node is None:
            break
        line = node.start_mark.line + 1
    return line


def _errors(exc: ValidationError, path: Path, root: yaml.Node | None) -> str:
    parts = []
    for err in exc.errors():
        loc = [p for p in err["loc"] if isinstance(p, int | str)]
        line = _line(root, loc)
        where = f"{path}:{line}" if line else str(path)
        field = ".".join(str(p) for p in loc) or "sweep"
        message = err["msg"].removeprefix("Value error, ")
        hint = ""
        if err["type"] == "extra_forbidden":
            known = suggest(str(loc[-1]), SweepFile.model_fields)
            hint = f" (did you mean {', '.join(known)}?)" if known else (
                f" (the fields are {', '.join(SweepFile.model_fields)})")
        parts.append(f"{where}: {field}: {message}{hint}")
    return "; ".join(parts)


def load_sweep(path: Path) -> Sweep:
    """Read and check a sweep file and the specs it names; errors name the file, line and
    field."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"Cannot read the sweep file {path}: {exc.strerror}.") from exc
    try:
        root, data = yaml.compose(text), yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise InputError(f"{path}{line}: not valid YAML ({getattr(exc, 'problem', exc)}).") \
            from exc
    if not isinstance(data, dict):
        raise InputError(f"{path}: a sweep file is a mapping with at least `spec`.",
                         hint="see examples/sweeps/chat.yaml")
    try:
        file = SweepFile.model_validate(data)
    except ValidationError as exc:
        raise InputError(_errors(exc, path, root),
                         hint="see docs/cli.md, eksplain simulate --sweep") from exc
    specs = tuple((name, load_spec(path.parent / name)) for name in file.spec_paths)
    for name, spec in specs:
        if spec.task != "inference" or spec.tokens.output_mean < 1:
            raise InputError(f"{path}: {name} is a {spec.task} spec; a sweep simulates online "
                             "generation (task: inference).")
    return Sweep(str(path), file, specs)


def peak_replicas(c: Candidate) -> int:
    """The replicas a serving candidate runs at its peak (what ``simulate`` runs by default on a
    fixed fleet)."""
    return int(c.detail("replicas_peak") or c.dp)


def prepare_jobs(sweep: Sweep, catalog: HardwareCatalog) -> tuple[Job, ...]:
    """Plan each spec once, then every scenario, in order: spec, plan, replicas, rate, seed."""
    f = sweep.file
    jobs: list[Job] = []
    for name, spec in sweep.specs:
        planned = run_plan(spec, catalog)
        ranked = ((planned.choice,) if planned.choice else ()) + planned.alternatives
        for rank, cand in enumerate(ranked[:f.plans]):
            for replicas in f.replicas or [peak_replicas(cand)]:
                for rps in f.rps or [spec.traffic.rps]:
                    traffic = spec.traffic.model_copy(update={"rps": rps})
                    at_rate = spec.model_copy(update={"traffic": traffic})
                    jobs += [Job(len(jobs) + i, name, at_rate, cand, rank, replicas, seed,
                                 f.duration, f.routing) for i, seed in enumerate(f.seeds)]
    return tuple(jobs)


def _percentiles(s: Any) -> tuple[float, float, float]:
    return (s.p50_s, s.p90_s, s.p99_s)


def _row(job: Job, r: SimResult) -> SweepRow:
    """Cost: the replicas at the plan's peak hourly price per replica (its peak price over its
    peak replicas), for the simulated time; per million output tokens of completed requests."""
    c = job.candidate
    per_replica = c.usd_per_hour / max(peak_replicas(c), 1)
    usd_per_hour = per_replica * job.replicas
    dollars = usd_per_hour * r.simulated_s / 3600
    s = job.spec.slo
    targets = tuple((m, t) for m, t in (("ttft", s.ttft_p95), ("tpot", s.tpot_p95),
                                        ("e2e", s.e2e_p95)) if t is not None)
    return SweepRow(
        job.spec_name, c.label, job.rank, job.replicas, job.spec.traffic.rps, job.seed,
        r.simulated_s, r.arrived, r.completed, r.failed, r.in_flight, r.requests_per_s,
        r.output_tokens_per_s, _percentiles(r.ttft), _percentiles(r.tpot),
        _percentiles(r.e2e), r.slo_attainment, targets, usd_per_hour,
        dollars / r.output_tokens * 1e6 if r.output_tokens else None, r.stopped)


def run_job(job: Job) -> SweepRow:
    """Simulate one scenario (in whichever process or Ray worker runs it)."""
    from eksplain.sim.scenario import SimulateOptions, simulate_plan

    options = SimulateOptions(duration_s=job.duration_s, seed=job.seed, replicas=job.replicas,
                              routing=job.routing)
    return _row(job, simulate_plan(job.spec, job.candidate, load_catalog(), options).result)


class Runner(Protocol):
    """Where a sweep's scenarios run. ``run`` returns one row per job, in the jobs' order."""

    def run(self, jobs: Sequence[Job], progress: Progress | None) -> list[SweepRow]: ...


class SequentialRunner:
    """In this process, one after another: the reference the others must equal."""

    def run(self, jobs: Sequence[Job], progress: Progress | None) -> list[SweepRow]:
        rows = []
        for job in jobs:
            rows.append(run_job(job))
            if progress is not None:
                progress(len(rows), len(jobs))
        return rows


@dataclass(frozen=True)
class ProcessRunner:
    """On ``workers`` local processes (``concurrent.futures``); one worker runs in-process."""

    workers: int

    def run(self, jobs: Sequence[Job], progress: Progress | None) -> list[SweepRow]:
        if self.workers <= 1 or len(jobs) <= 1:
            return SequentialRunner().run(jobs, progress)
        from concurrent.futures import ProcessPoolExecutor, as_completed

        rows: dict[int, SweepRow] = {}
        with ProcessPoolExecutor(max_workers=min(self.workers, len(jobs))) as pool:
            futures = {pool.submit(run_job, job): job.index for job in jobs}
            for future in as_completed(futures):
                rows[futures[future]] = future.result()
                if progress is not None:
                    progress(len(rows), len(jobs))
        return [rows[job.index] for job in jobs]


@dataclass(frozen=True)
class RayRunner:
    """On a Ray cluster at ``address``, or on a Ray instance started here (``local``, with
    ``workers`` CPUs). The cluster's workers need eksplain installed, the same version."""

    address: str
    workers: int

    def run(self, jobs: Sequence[Job], progress: Progress | None) -> list[SweepRow]:
        try:
            import ray
        except ImportError as exc:
            raise InputError("--ray needs Ray, which is not installed.",
                             hint="pip install 'eksplain[ray]'") from exc
        local = self.address == "local"
        with warnings.catch_warnings():
            # Ray's notices of future changes to its defaults (GPU visibility) are not the
            # user's to act on here: the scenarios use CPUs only.
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            ray.init(address=None if local else self.address,
                     num_cpus=self.workers if local else None,
                     include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
        try:
            remote = ray.remote(run_job)
            pending = {remote.remote(job): job.index for job in jobs}
            rows: dict[int, SweepRow] = {}
            while len(rows) < len(jobs):
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    rows[pending.pop(ref)] = ray.get(ref)
                if progress is not None:
                    progress(len(rows), len(jobs))
            return [rows[job.index] for job in jobs]
        finally:
            ray.shutdown()


RUNNERS: dict[str, Callable[[str, int], Runner]] = {
    "sequential": lambda address, workers: SequentialRunner(),
    "processes": lambda address, workers: ProcessRunner(workers),
    "ray": RayRunner,
}


def run_sweep(sweep: Sweep, runner: Runner, catalog: HardwareCatalog,
              progress: Progress | None = None) -> SweepResult:
    """Every scenario of ``sweep`` on ``runner``; rows in scenario order whatever ran them."""
    jobs = prepare_jobs(sweep, catalog)
    rows = tuple(runner.run(jobs, progress))
    return SweepResult(sweep.path, sweep.file.duration, sweep.file.routing, rows)

