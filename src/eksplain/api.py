"""The facade: the one module front ends (CLI, HTTP) import.

    estimate(EstimateRequest) -> Estimate     memory per device, fit, KV capacity, limits
    models() -> list of catalogue entries
    hardware(family, min_memory) -> list of instance types with prices

Requests are pydantic models (the validation boundary); results are frozen dataclasses with a
``to_dict()`` that gives the stable JSON contract documented in docs/json.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from eksplain.calibration import load_calibration
from eksplain.catalog import Model, ModelEntry, load_models, resolve_model
from eksplain.hardware import (
    HardwareChoice,
    InstanceType,
    Offering,
    filter_instances,
    load_catalog,
    offering_for,
    resolve_hardware,
)
from eksplain.memory import (
    LORA_TARGETS,
    KvCapacity,
    MemoryBreakdown,
    ServingConfig,
    TrainingConfig,
    serving_memory,
    training_memory,
)
from eksplain.parallel import Parallelism
from eksplain.units import normalise_dtype, parse_bytes

__all__ = [
    "Estimate",
    "EstimateRequest",
    "HardwareRow",
    "estimate",
    "hardware",
    "hardware_row_dict",
    "model_entry_dict",
    "models",
]

_WEIGHT_FORMATS = {"awq", "gptq", "nf4"}


class EstimateRequest(BaseModel):
    """Inputs of ``eksplain estimate``: model and hardware, and defaults for everything else."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(min_length=1, description="catalogue id/alias or path to a config.json")
    hardware: str = Field(min_length=1, description="accelerator name or EC2 instance type")
    devices: int | None = Field(default=None, ge=1)
    task: Literal["inference", "training"] = "inference"
    dtype: str = "bf16"
    kv_dtype: str = "auto"
    batch: int = Field(default=1, ge=1)
    seq_len: int = Field(default=4096, ge=1)
    tp: int = Field(default=1, ge=1)
    pp: int = Field(default=1, ge=1)
    dp: int | None = Field(default=None, ge=1)
    cp: int = Field(default=1, ge=1)
    ep: int = Field(default=1, ge=1)
    zero: int = Field(default=0, ge=0, le=3)
    fsdp: Literal["none", "full", "hybrid"] = "none"
    method: Literal["full", "lora", "qlora"] = "full"
    lora_rank: int = Field(default=16, ge=1)
    optimizer: Literal["adamw", "adamw-8bit", "sgd", "adafactor"] = "adamw"
    recompute: Literal["none", "selective", "full"] = "none"
    precision: Literal["mixed", "bf16", "fp32"] = "mixed"
    engine: Literal["vllm", "sglang", "trtllm", "hf", "neuron"] = "vllm"
    gpu_memory_utilization: float | None = Field(default=None, gt=0, le=1)
    max_num_seqs: int | None = Field(default=None, ge=1)
    max_num_batched_tokens: int | None = Field(default=None, ge=1)
    flash_attention: bool = True
    microbatches: int = Field(default=1, ge=1)


@dataclass(frozen=True)
class Estimate:
    """The answer of ``estimate``: memory per device, fit and limits for one configuration."""

    request: EstimateRequest
    model: Model
    choice: HardwareChoice
    parallel: Parallelism
    memory: MemoryBreakdown
    kv: KvCapacity | None
    fits: bool
    max_batch: int
    max_seq_len: int
    weight_format: str
    engine_model: str

    def to_dict(self) -> dict[str, Any]:
        """The JSON contract (docs/json.md); keys and types are stable."""
        m, acc = self.memory, self.choice.accelerator
        out: dict[str, Any] = {
            "model": {
                "id": self.model.id,
                "params_total": self.model.params.total,
                "params_active": self.model.params.active,
            },
            "hardware": {
                "id": acc.id,
                "instance_type": self.choice.instance.name if self.choice.instance else None,
                "devices": self.choice.devices,
                "capacity_bytes_per_device": m.capacity_bytes,
            },
            "task": self.request.task,
            "parallelism": {
                "tp": self.parallel.tp, "pp": self.parallel.pp, "dp": self.parallel.dp,
                "cp": self.parallel.cp, "ep": self.parallel.ep,
            },
            "weight_format": self.weight_format,
            "memory_per_device": {
                "weights_bytes": m.weights_bytes,
                "kv_cache_bytes": m.kv_cache_bytes,
                "activations_bytes": m.activations_bytes,
                "gradients_bytes": m.gradients_bytes,
                "optimizer_states_bytes": m.optimizer_states_bytes,
                "overhead_bytes": m.overhead_bytes,
                "total_bytes": m.total_bytes,
                "capacity_bytes": m.capacity_bytes,
                "headroom_bytes": m.headroom_bytes,
            },
            "fits": self.fits,
            "max_batch": self.max_batch,
            "max_seq_len": self.max_seq_len,
        }
        if self.kv is not None:
            out["kv_cache"] = {
                "bytes_per_token": self.kv.bytes_per_token,
                "pool_bytes": self.kv.pool_bytes,
                "block_size": self.kv.block_size,
                "blocks": self.kv.blocks,
                "capacity_tokens": self.kv.capacity_tokens,
                "max_concurrency": round(self.kv.max_concurrency, 4),
            }
        return out


def _weight_format(req: EstimateRequest, model: Model) -> str:
    """The storage format of the weights: a pre-quantized checkpoint's, else ``--dtype``."""
    if model.quantization is not None and req.dtype in ("bf16", "auto"):
        method = model.quantization.method
        if method == "bitsandbytes":
            return "nf4" if model.quantization.bits == 4 else "int8"
        return method if method in _WEIGHT_FORMATS | {"fp8"} else "bf16"
    if req.dtype.lower() in _WEIGHT_FORMATS:
        return req.dtype.lower()
    return normalise_dtype(req.dtype)


def _parallelism(req: EstimateRequest, devices: int) -> Parallelism:
    if req.task == "inference":  # DP = replicas that the given devices hold
        dp = req.dp or max(devices // (req.tp * req.pp * req.cp), 1)
        return Parallelism(tp=req.tp, pp=req.pp, dp=dp, cp=req.cp, ep=req.ep)
    dp = req.dp or max(devices // (req.tp * req.pp * req.cp), 1)
    return Parallelism(tp=req.tp, pp=req.pp, dp=dp, cp=req.cp, ep=req.ep)


def _serving_config(req: EstimateRequest, fmt: str, par: Parallelism, batch: int,
                    seq_len: int) -> ServingConfig:
    engine = "hf" if req.engine == "hf" else "vllm"
    return ServingConfig(
        weight_format=fmt, kv_dtype=req.kv_dtype, batch=batch, seq_len=seq_len, parallel=par,
        engine=engine, gpu_memory_utilization=req.gpu_memory_utilization,
        max_num_seqs=req.max_num_seqs, max_num_batched_tokens=req.max_num_batched_tokens,
    )


def _training_config(req: EstimateRequest, par: Parallelism, batch: int,
                     seq_len: int) -> TrainingConfig:
    return TrainingConfig(
        precision=req.precision, micro_batch=batch, seq_len=seq_len, parallel=par,
        zero=req.zero, fsdp=req.fsdp, method=req.method, lora_rank=req.lora_rank,
        lora_targets=LORA_TARGETS, optimizer=req.optimizer, recompute=req.recompute,
        flash_attention=req.flash_attention, microbatches=req.microbatches,
    )


def _largest(fits: Any, start: int, limit: int) -> int:
    """Largest n in [1, limit] with fits(n), assuming monotonicity; 0 when even 1 does not fit."""
    if not fits(1):
        return 0
    low, high = 1, 2
    while high <= limit and fits(high):
        low, high = high, high * 2
    high = min(high, limit + 1)
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if fits(mid) else (low, mid)
    return low


def estimate(request: EstimateRequest) -> Estimate:
    """Memory per device, fit, KV capacity and limits for one model on one hardware choice."""
    model = resolve_model(request.model)
    choice = resolve_hardware(load_catalog(), request.hardware, request.devices)
    cal = load_calibration()
    acc = choice.accelerator
    capacity = cal.visible_bytes(acc.id, acc.memory_bytes)
    par = _parallelism(request, choice.devices)
    fmt = _weight_format(request, model)
    if request.task == "inference":
        serving = serving_memory(
            model, capacity,
            _serving_config(request, fmt, par, request.batch, request.seq_len), cal,
            choice.devices,
        )
        return Estimate(
            request=request, model=model, choice=choice, parallel=par, memory=serving.breakdown,
            kv=serving.kv, fits=serving.fits, max_batch=serving.kv.max_batch,
            max_seq_len=serving.kv.max_seq_len, weight_format=fmt, engine_model=request.engine,
        )
    mem = training_memory(
        model, capacity, _training_config(request, par, request.batch, request.seq_len), cal,
        choice.devices,
    ).breakdown

    def fits_batch(b: int) -> bool:
        cfg = _training_config(request, par, b, request.seq_len)
        return training_memory(model, capacity, cfg, cal, choice.devices).breakdown.fits

    def fits_seq(s: int) -> bool:
        cfg = _training_config(request, par, request.batch, s)
        return training_memory(model, capacity, cfg, cal, choice.devices).breakdown.fits

    max_ctx = model.architecture.max_context
    return Estimate(
        request=request, model=model, choice=choice, parallel=par, memory=mem, kv=None,
        fits=mem.fits, max_batch=_largest(fits_batch, 1, 4096),
        max_seq_len=_largest(fits_seq, 1, max_ctx), weight_format=fmt,
        engine_model=request.engine,
    )


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


def hardware_row_dict(row: HardwareRow) -> dict[str, Any]:
    """JSON form of a hardware row (docs/json.md)."""
    inst, off = row.instance, row.offering
    alloc = inst.allocatable
    return {
        "instance_type": inst.name,
        "family": inst.family,
        "accelerator_id": inst.accelerator_id,
        "accelerator_count": inst.accelerator_count,
        "accelerator_memory_bytes": row.accelerator_memory_bytes,
        "vcpus": inst.vcpus,
        "memory_bytes": inst.memory_bytes,
        "cpu_architecture": inst.cpu_architecture,
        "efa_interfaces": inst.efa_interfaces,
        "network_gbps": inst.network_gbps,
        "capacity": {"cpu_millicores": inst.capacity.cpu_millicores,
                     "memory_bytes": inst.capacity.memory_bytes,
                     "extended_resources": dict(inst.capacity.extended)},
        "allocatable": {"cpu_millicores": alloc.cpu_millicores,
                        "memory_bytes": alloc.memory_bytes,
                        "extended_resources": dict(alloc.extended)},
        "offering": None if off is None else {
            "region": off.region, "capacity_type": off.capacity_type,
            "price_usd_per_hour": off.price_usd_per_hour, "price_date": off.price_date,
        },
    }


def model_entry_dict(entry: ModelEntry) -> dict[str, Any]:
    """JSON form of a catalogue entry (docs/json.md)."""
    m, a = entry.model, entry.model.architecture
    return {
        "id": m.id,
        "aliases": list(entry.aliases),
        "model_type": a.model_type,
        "params_total": m.params.total,
        "params_active": m.params.active,
        "published_params_total": entry.published_total,
        "params_source": entry.params_source,
        "num_layers": a.num_layers,
        "hidden_size": a.hidden_size,
        "num_heads": a.attention.num_heads,
        "num_kv_heads": a.attention.num_kv_heads,
        "max_context": a.max_context,
        "source": m.source,
    }
