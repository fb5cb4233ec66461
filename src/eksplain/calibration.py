"""Calibration: the tunable factors of the estimators, read from ``data/calibration.yaml``.

Exact quantities (parameter counts, KV bytes per token) are computed; what is not exact (memory
the driver keeps, an engine's non-torch memory and activation peak, allocator headroom) is data,
each value with the measurement it came from. This module only loads and types that data.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from eksplain.comms import LinkCalibration
from eksplain.compute import ServingEfficiency, SpeedCalibration
from eksplain.datafiles import read_yaml
from eksplain.errors import InputError, suggest
from eksplain.hardware import find_accelerator, load_catalog
from eksplain.units import GIB

__all__ = [
    "Calibration",
    "EngineCalibration",
    "QuantFormat",
    "TokenBudget",
    "TrainingCalibration",
    "load_calibration",
]


@dataclass(frozen=True)
class QuantFormat:
    """How a weight format stores one projection matrix."""

    name: str
    weight_bits: int
    group_size: int
    scale_bits: int
    zero_bits: int
    double_quant_scale_bits: int
    double_quant_group: int
    compute: str
    vendors: tuple[str, ...]  # accelerator vendors whose engines load this format

    def runs_on(self, vendor: str) -> bool:
        return vendor in self.vendors

    def matrix_bits(self, elements: int) -> int:
        """Bits to store ``elements`` weights of a projection matrix, scales included."""
        bits = elements * self.weight_bits
        if self.group_size:
            groups = elements // self.group_size
            if self.double_quant_scale_bits:
                bits += groups * self.double_quant_scale_bits
                bits += (groups // self.double_quant_group) * self.scale_bits
            else:
                bits += groups * (self.scale_bits + self.zero_bits)
        return bits

    @property
    def quantized(self) -> bool:
        return self.weight_bits < 16

    @property
    def weight_only(self) -> bool:
        """Stored narrower than it computes: dequantized on the fly (AWQ, GPTQ, NF4, int8-wo)."""
        return self.weight_bits < 16 and self.compute in ("bf16", "fp16")


@dataclass(frozen=True)
class EngineCalibration:
    """A serving engine's memory behaviour (vLLM-style profiling of a dummy batch)."""

    name: str
    block_size: int
    vocab_padding: int
    gpu_memory_utilization: float
    max_num_seqs: int
    max_num_batched_tokens: int
    non_torch_bytes: int
    non_torch_bytes_tp: int
    cuda_graph_bytes: int
    act_bytes_per_token_hidden: float
    act_bytes_per_token_intermediate: float
    logits_bytes_per_vocab_entry: float
    full_sequence_logits: bool
    embedding_batch: int  # requests an embedding replica runs in one forward pass at load


@dataclass(frozen=True)
class TokenBudget:
    """An engine's default token budget per step (``--max-num-batched-tokens``) by device:
    ``large_device_tokens`` on devices with at least ``large_device_min_bytes`` visible whose
    id names none of ``large_device_excluded``, else ``tokens``."""

    engine: str
    tokens: int
    large_device_tokens: int
    large_device_min_bytes: int
    large_device_excluded: tuple[str, ...]

    def for_device(self, accelerator_id: str, visible_bytes: int) -> int:
        excluded = any(name in accelerator_id.lower() for name in self.large_device_excluded)
        large = visible_bytes >= self.large_device_min_bytes and not excluded
        return self.large_device_tokens if large else self.tokens


@dataclass(frozen=True)
class TrainingCalibration:
    cuda_context_bytes: int
    nccl_bytes: int
    allocator_headroom_fraction: float
    logits_bytes_per_element: float
    zero3_prefetch_layers: int


@dataclass(frozen=True)
class Calibration:
    visible_memory_bytes: tuple[tuple[str, int], ...]
    default_visible_fraction: float
    peak_proxies: tuple[tuple[str, str], ...]
    engines: tuple[EngineCalibration, ...]
    token_budgets: tuple[TokenBudget, ...]
    training: TrainingCalibration
    formats: tuple[QuantFormat, ...]
    speed: SpeedCalibration
    links: LinkCalibration
    eks_control_plane_usd_per_hour: float

    def visible_bytes(self, accelerator_id: str, physical_bytes: int) -> int:
        """Memory a process can use on the device (driver and ECC reservations taken off)."""
        measured = dict(self.visible_memory_bytes).get(accelerator_id)
        return measured if measured else round(physical_bytes * self.default_visible_fraction)

    def peak_proxy(self, accelerator_id: str) -> str | None:
        """The accelerator whose datasheet peaks stand in for an unpublished one's."""
        return dict(self.peak_proxies).get(accelerator_id)

    def engine(self, name: str) -> EngineCalibration:
        return _by_name(self.engines, name, "serving engine")

    def format(self, name: str) -> QuantFormat:
        return _by_name(self.formats, name, "weight format")

    def token_budget_for(self, accelerator_id: str, physical_bytes: int,
                         engine: str = "vllm") -> int:
        """The engine's default token budget per step on this device (``token_budgets``);
        engines without a row use vLLM's."""
        rows = {b.engine: b for b in self.token_budgets}
        row = rows.get(engine, rows["vllm"])
        return row.for_device(accelerator_id, self.visible_bytes(accelerator_id, physical_bytes))

    def token_budget(self, accelerator_id: str, engine: str = "vllm") -> int:
        """``token_budget_for`` a catalogue accelerator (by id or alias): the one value that
        estimate, plan, render (--max-num-batched-tokens) and simulate use."""
        acc = find_accelerator(load_catalog(), accelerator_id)
        return self.token_budget_for(acc.id, acc.memory_bytes, engine)


class _Named(Protocol):
    @property
    def name(self) -> str: ...


N = TypeVar("N", bound=_Named)


def _by_name(items: tuple[N, ...], name: str, what: str) -> N:
    for item in items:
        if item.name == name:
            return item
    names = [i.name for i in items]
    raise InputError(
        f"Unknown {what} {name!r}.", hint="use one of " + ", ".join(names),
        suggestions=suggest(name, names),
    )


def _gib(value: Any) -> int:
    return round(float(value) * GIB)


def _engine(name: str, row: dict[str, Any]) -> EngineCalibration:
    act = row["activation"]
    return EngineCalibration(
        name=name,
        block_size=int(row["block_size"]),
        vocab_padding=int(row["vocab_padding"]),
        gpu_memory_utilization=float(row["gpu_memory_utilization"]),
        max_num_seqs=int(row["max_num_seqs"]),
        max_num_batched_tokens=int(row["max_num_batched_tokens"]),
        non_torch_bytes=_gib(row["non_torch_gib"]["value"]),
        non_torch_bytes_tp=_gib(row["non_torch_gib_tp"]["value"]),
        cuda_graph_bytes=_gib(row["cuda_graph_gib"]["value"]),
        act_bytes_per_token_hidden=float(act["bytes_per_token_per_hidden"]),
        act_bytes_per_token_intermediate=float(act["bytes_per_token_per_intermediate"]),
        logits_bytes_per_vocab_entry=float(act["logits_bytes_per_vocab_entry"]),
        full_sequence_logits=bool(row.get("full_sequence_logits", False)),
        embedding_batch=int(row.get("embedding_batch", {}).get("value", 1)),
    )


def _token_budget(engine: str, row: dict[str, Any]) -> TokenBudget:
    return TokenBudget(
        engine=engine, tokens=int(row["tokens"]),
        large_device_tokens=int(row["large_device_tokens"]),
        large_device_min_bytes=_gib(row["large_device_min_gib"]),
        large_device_excluded=tuple(str(n).lower() for n in row["large_device_excluded"]),
    )


def _format(name: str, row: dict[str, Any]) -> QuantFormat:
    return QuantFormat(
        name=name,
        weight_bits=int(row["weight_bits"]),
        group_size=int(row["group_size"]),
        scale_bits=int(row["scale_bits"]),
        zero_bits=int(row["zero_bits"]),
        double_quant_scale_bits=int(row.get("double_quant_scale_bits", 0)),
        double_quant_group=int(row.get("double_quant_group", 0)),
        compute=str(row["compute"]),
        vendors=tuple(str(v) for v in row["vendors"]),
    )


@functools.cache
def load_calibration() -> Calibration:
    """The packaged calibration (read once; values are immutable)."""
    cal = read_yaml("calibration.yaml")
    formats = read_yaml("quantization.yaml")["formats"]
    t = cal["training"]
    return Calibration(
        visible_memory_bytes=tuple(
            (acc, _gib(row["visible_gib"])) for acc, row in cal["visible_memory"].items()
        ),
        default_visible_fraction=float(cal["default_visible_fraction"]["value"]),
        peak_proxies=tuple((k, str(v)) for k, v in cal["peak_proxies"].items()),
        engines=tuple(_engine(name, row) for name, row in cal["engines"].items()),
        token_budgets=tuple(_token_budget(name, row)
                            for name, row in cal["token_budgets"].items()),
        training=TrainingCalibration(
            cuda_context_bytes=_gib(t["cuda_context_gib"]["value"]),
            nccl_bytes=_gib(t["nccl_gib"]["value"]),
            allocator_headroom_fraction=float(t["allocator_headroom_fraction"]["value"]),
            logits_bytes_per_element=float(t["logits_bytes_per_element"]["value"]),
            zero3_prefetch_layers=int(t["zero3_prefetch_layers"]["value"]),
        ),
        formats=tuple(_format(name, row) for name, row in formats.items()),
        speed=_speed(cal["speed"]),
        links=LinkCalibration(**{k: float(v["value"]) for k, v in cal["comms"].items()}),
        eks_control_plane_usd_per_hour=float(
            read_yaml("pricing.yaml")["eks_control_plane_usd_per_hour"]["value"]),
    )


def _speed(row: dict[str, Any]) -> SpeedCalibration:
    serving = tuple(
        (family, ServingEfficiency(**{k: float(v) for k, v in values.items()}))
        for family, values in row["serving"]["by_architecture"].items()
    )
    table = row["training_compute_efficiency"]["by_architecture"]
    return SpeedCalibration(
        serving=serving,
        training_compute_efficiency=tuple((k, float(v)) for k, v in table.items()),
        width_half=float(row["width_half"]["value"]),
        training_low_precision_scale=float(row["training_low_precision_scale"]["value"]),
        dp_overlap=float(row["dp_overlap"]["value"]),
    )
