"""Plan values shared by the serving and training searches: candidates, rejections, decisions.

A plan is the cheapest candidate that meets every SLO and constraint, the Pareto front of cost
against latency (serving) or time (training), every rejected candidate with its reason, and the
decisions behind the choice, each tagged with the glossary terms that explain it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from eksplain.hardware import HardwareCatalog, InstanceType
from eksplain.spec import WorkloadSpec

__all__ = ["Candidate", "Decision", "Plan", "Rejection", "eligible_instances", "pareto_front"]


@dataclass(frozen=True)
class Candidate:
    """One evaluated configuration that passed every check."""

    label: str  # "p5.48xlarge x 1, TP=4, bf16"
    instance_type: str
    accelerator: str
    nodes: int
    devices: int
    tp: int
    pp: int
    dp: int
    weight_format: str
    usd_per_hour: float  # at peak (serving) or while running (training)
    usd_per_month: float | None  # serving, with autoscaling over the traffic pattern
    usd_total: float | None  # training or batch: the whole run
    latency_s: float  # serving: TPOT at p95 load; training and batch: time to finish
    ttft_s: float | None
    memory_bytes: int  # per device
    capacity_bytes: int
    details: tuple[tuple[str, float | int | str], ...] = ()

    @property
    def objective(self) -> float:
        """What the search minimises: monthly dollars (serving) or dollars for the run."""
        if self.usd_total is not None:
            return self.usd_total
        return self.usd_per_month if self.usd_per_month is not None else self.usd_per_hour

    def detail(self, key: str) -> float | int | str | None:
        return dict(self.details).get(key)

    def concurrency(self, fallback: int) -> int:
        """Sequences a serving replica runs at once: the plan's batch (which holds the TPOT SLO
        and is within the engine's limit), else the engine's limit, else ``fallback``. What
        ``eksplain render`` passes as ``--max-num-seqs`` and ``eksplain simulate`` admits."""
        return int(self.detail("batch") or self.detail("max_num_seqs") or fallback)


@dataclass(frozen=True)
class Rejection:
    label: str
    code: str  # memory | format | ttft | tpot | e2e | deadline | budget | nodes | efa ...
    reason: str
    gap: float | None = None  # how far off, as a ratio to the limit (1.3 = 30% over)


@dataclass(frozen=True)
class Decision:
    """One decision of the plan, in a sentence with its number, and the terms behind it."""

    terms: tuple[str, ...]
    text: str


@dataclass(frozen=True)
class Plan:
    task: str
    model_id: str
    choice: Candidate | None
    alternatives: tuple[Candidate, ...]  # accepted candidates, cheapest first
    pareto: tuple[Candidate, ...]
    rejections: tuple[Rejection, ...]
    decisions: tuple[Decision, ...]
    evaluated: int
    advice: tuple[str, ...] = field(default=())  # what would make an infeasible spec feasible
    extras: tuple[tuple[str, object], ...] = field(default=())


def pareto_front(candidates: tuple[Candidate, ...]) -> tuple[Candidate, ...]:
    """Candidates no other candidate beats on both cost and latency (or time), cheapest first."""
    front: list[Candidate] = []
    for cand in sorted(candidates, key=lambda c: (c.objective, c.latency_s, c.label)):
        if not front or cand.latency_s < front[-1].latency_s:
            front.append(cand)
    return tuple(front)


def eligible_instances(spec: WorkloadSpec, catalog: HardwareCatalog,
                       rejected: list[Rejection], cpu: bool = False) -> Iterator[InstanceType]:
    """Instance types with accelerators (``cpu``: CPU-only ones) that the spec's families
    allow, by name; each excluded one is recorded in ``rejected`` with its reason."""
    c = spec.constraints
    for inst in sorted(catalog.instances, key=lambda i: i.name):
        if (inst.accelerator_id is None) != cpu:
            continue
        if inst.family in c.exclude_families:
            rejected.append(Rejection(inst.name, "family", f"family {inst.family} is excluded"))
        elif c.families and inst.family not in c.families:
            rejected.append(Rejection(inst.name, "family",
                                      f"family {inst.family} is not in the allowed families"))
        else:
            yield inst
