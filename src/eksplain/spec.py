"""The workload spec: one YAML document that describes what to run and what it must achieve.

Only ``model`` and ``task`` are required; everything else has a default a platform engineer
would pick. ``eksplain schema`` prints the JSON Schema of ``WorkloadSpec``. Durations are
strings with units (``500ms``, ``72h``); sizes of data are counts (``300B`` tokens).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from eksplain.errors import InputError
from eksplain.units import parse_count, parse_duration

__all__ = ["WorkloadSpec", "load_spec", "spec_from_dict", "spec_schema"]

Task = Literal["inference", "batch-inference", "embedding", "fine-tuning", "pre-training"]
SERVING_TASKS = ("inference", "batch-inference", "embedding")
HOURS_PER_DAY = 24  # the daily traffic pattern is hourly
# Upper bounds far beyond any real workload, so that absurd values get a clear error instead of
# overflowing the arithmetic (found by fuzzing the HTTP API): a 10M-token context, a million
# requests/s, 10^16 training tokens (a hundred times today's largest published runs), 10^4 epochs.
MAX_TOKENS = 10_000_000
MAX_RPS = 1e6
MAX_PEAK_TO_MEAN = 1_000.0
MAX_DATA_TOKENS = 10**16
MAX_EPOCHS = 10_000.0


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Tokens(_Strict):
    """Tokens per request (serving) or per sample (training)."""

    input_mean: int = Field(default=512, ge=1, le=MAX_TOKENS)
    input_p95: int | None = Field(default=None, ge=1, le=MAX_TOKENS,
                                  description="default: 2 x mean")
    output_mean: int = Field(default=256, ge=0, le=MAX_TOKENS)
    output_p95: int | None = Field(default=None, ge=0, le=MAX_TOKENS,
                                   description="default: 2 x mean")
    max_context: int | None = Field(default=None, ge=1, le=MAX_TOKENS,
                                    description="default: input_p95 + output_p95")

    @property
    def input_high(self) -> int:
        return self.input_p95 or 2 * self.input_mean

    @property
    def output_high(self) -> int:
        return self.output_p95 if self.output_p95 is not None else 2 * self.output_mean

    @property
    def context(self) -> int:
        return self.max_context or self.input_high + self.output_high


class Traffic(_Strict):
    rps: float = Field(default=1.0, gt=0, le=MAX_RPS, description="mean requests per second")
    peak_to_mean: float = Field(default=2.0, ge=1, le=MAX_PEAK_TO_MEAN,
                                description="peak over mean requests/s; at most 24 for a daily "
                                "pattern")
    pattern: Literal["flat", "daily"] = "daily"
    trace: str | None = Field(default=None, description="CSV trace (used by simulate)")

    @model_validator(mode="after")
    def _daily_peak(self) -> Traffic:
        # 24 hourly rates with mean m sum to 24 m, so no hour of a day can carry more.
        if self.pattern == "daily" and self.peak_to_mean > HOURS_PER_DAY:
            raise ValueError(f"peak_to_mean {self.peak_to_mean:g} is more than "
                             f"{HOURS_PER_DAY}, a whole day's requests in one hour, for a daily "
                             "pattern; use pattern: flat for short bursts")
        return self


def _seconds(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    return parse_duration(str(value))


class Slo(_Strict):
    """Latency targets at the 95th percentile (serving), or a deadline (batch and training)."""

    ttft_p95: float | None = Field(default=None, description="e.g. 500ms")
    tpot_p95: float | None = Field(default=None, description="e.g. 50ms")
    e2e_p95: float | None = Field(default=None, description="end-to-end, e.g. 20s")
    deadline: float | None = Field(default=None, description="batch or training, e.g. 72h")

    @field_validator("ttft_p95", "tpot_p95", "e2e_p95", "deadline", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> float | None:
        seconds = _seconds(value)
        if seconds is not None and not 0 < seconds < math.inf:
            raise ValueError(f"a target must be a positive, finite time, not {value!r}")
        return seconds


class Data(_Strict):
    tokens: int | None = Field(default=None, ge=1, le=MAX_DATA_TOKENS, description="e.g. 300B")
    samples: int | None = Field(default=None, ge=1, le=MAX_DATA_TOKENS)
    epochs: float = Field(default=1.0, gt=0, le=MAX_EPOCHS)

    @field_validator("tokens", "samples", mode="before")
    @classmethod
    def _count(cls, value: Any) -> int | None:
        return None if value is None else parse_count(str(value))


class Constraints(_Strict):
    region: str = "us-east-1"
    capacity_type: Literal["on-demand", "spot"] = "on-demand"
    families: list[str] = Field(default_factory=list, description="allowed; empty: all")
    exclude_families: list[str] = Field(default_factory=list)
    max_nodes: int = Field(default=64, ge=1)
    monthly_budget_usd: float | None = Field(default=None, gt=0)
    availability_zones: list[str] = Field(default_factory=list)


class RenderChoices(_Strict):
    """How ``eksplain render`` builds the plan's objects; no effect on the plan itself."""

    training_launcher: Literal["pytorchjob", "jobset", "rayjob"] = Field(
        default="pytorchjob", description="training: a Kubeflow PyTorchJob (needs the training "
        "operator), a JobSet (needs the JobSet controller) or a KubeRay RayJob (needs the "
        "KubeRay operator; the script uses Ray Train)")
    expose: Literal["none", "nlb", "alb"] = Field(
        default="none", description="serving: reach the server from outside the cluster through "
        "the AWS Load Balancer Controller, an internal NLB (Service) or ALB (Ingress); none "
        "keeps a ClusterIP Service")


class WorkloadSpec(_Strict):
    """What to run (model, task, data, traffic) and what it must achieve (SLOs, constraints)."""

    model: str = Field(min_length=1)
    task: Task
    precision: list[str] = Field(default_factory=lambda: ["bf16"],
                                 description="weight formats allowed: bf16, fp8, awq ...")
    tokens: Tokens = Field(default_factory=Tokens)
    traffic: Traffic = Field(default_factory=Traffic)
    slo: Slo = Field(default_factory=Slo)
    data: Data = Field(default_factory=Data)
    method: Literal["full", "lora", "qlora"] = "full"
    constraints: Constraints = Field(default_factory=Constraints)
    engine: Literal["vllm", "sglang", "trtllm", "hf", "neuron"] = "vllm"
    storage: Literal["fsx-lustre", "s3", "efs", "ebs-gp3", "ebs-io2", "instance-nvme"] = (
        "fsx-lustre")
    render: RenderChoices = Field(default_factory=RenderChoices)

    @property
    def serving(self) -> bool:
        return self.task in SERVING_TASKS


def _error_message(exc: ValidationError, where: str) -> str:
    parts = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"])
        parts.append(f"{field}: {err['msg']}")
    return f"{where}: " + "; ".join(parts)


def spec_from_dict(data: Any, where: str = "spec") -> WorkloadSpec:
    if not isinstance(data, dict):
        raise InputError(f"{where} must be a mapping with at least 'model' and 'task'.")
    try:
        return WorkloadSpec.model_validate(data)
    except ValidationError as exc:
        raise InputError(_error_message(exc, where),
                         hint="see `eksplain schema` for every field") from exc


def load_spec(path: Path | str) -> WorkloadSpec:
    """Read a YAML spec; errors name the file, and the line for YAML syntax errors."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"Cannot read {path}: {exc.strerror}.") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        raise InputError(f"{path}{line}: not valid YAML ({getattr(exc, 'problem', exc)}).") from exc
    return spec_from_dict(data, str(path))


def spec_schema() -> dict[str, Any]:
    """The JSON Schema of the workload spec."""
    return WorkloadSpec.model_json_schema()
