"""The model catalogue: bundled open models by Hugging Face id and alias, or a local config.json.

Each catalogue entry (``eksplain/data/models/*.yaml``) holds the architecture fields of the
model's ``config.json`` verbatim, the published parameter count with its source and quote, and
aliases people type. The same parser reads a user's own ``config.json``, so catalogue models and
local models go through one code path.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eksplain.datafiles import data_files, read_yaml
from eksplain.errors import CatalogError, InputError, suggest
from eksplain.hfconfig import architecture_from_config, read_config_dir
from eksplain.model import Architecture, ParamCount, count_parameters

__all__ = [
    "Model",
    "ModelEntry",
    "PreQuantization",
    "find_model",
    "inline_config",
    "load_models",
    "model_from_config",
    "resolve_model",
]


@dataclass(frozen=True)
class PreQuantization:
    """A checkpoint that is already quantized (``quantization_config`` in config.json)."""

    method: str  # awq | gptq | fp8 | bitsandbytes | compressed-tensors
    bits: int
    group_size: int


@dataclass(frozen=True)
class Model:
    """A model resolved to its architecture and exact parameter counts."""

    id: str
    architecture: Architecture
    params: ParamCount
    quantization: PreQuantization | None = None
    source: str = ""


@dataclass(frozen=True)
class ModelEntry:
    """A catalogue row: the model plus its published facts."""

    model: Model
    aliases: tuple[str, ...]
    family: str
    released: str
    published_total: int | None
    published_total_approx: float | None
    published_active: int | None
    params_source: str
    params_quote: str


def _pre_quantization(config: dict[str, Any]) -> PreQuantization | None:
    q = config.get("quantization_config")
    if not isinstance(q, dict):
        return None
    method = str(q.get("quant_method", "unknown")).lower()
    if method == "compressed-tensors":
        return _compressed_tensors(q)
    if method == "fp8":
        return PreQuantization("fp8", 8, 0)
    if method == "bitsandbytes":
        four = q.get("load_in_4bit") or q.get("_load_in_4bit")
        return PreQuantization("bitsandbytes", 4 if four else 8, 64 if four else 0)
    bits = q.get("bits") or q.get("w_bit") or 4
    group = q.get("group_size") or q.get("q_group_size") or 128
    return PreQuantization(method, int(bits), int(group))


def _compressed_tensors(q: dict[str, Any]) -> PreQuantization:
    """llm-compressor's format: the scheme is in ``config_groups`` (compressed-tensors'
    QuantizationScheme: ``weights.num_bits``, ``weights.type`` int|float, ``weights.group_size``,
    and ``input_activations`` when activations are quantized too).

    float 8-bit is FP8; int 8-bit is W8A8 int8 with quantized activations, else weight-only
    int8; int 4-bit is a group format stored as GPTQ's (4 bits and a 16-bit scale per group; its
    4-bit zero point, 0.03 bits per weight, is counted although symmetric schemes store none).
    Without groups the scheme is unknown and kept as compressed-tensors (estimated as FP8).
    """
    groups = q.get("config_groups")
    scheme = next(iter(groups.values()), None) if isinstance(groups, dict) and groups else None
    weights = scheme.get("weights") if isinstance(scheme, dict) else None
    if not isinstance(weights, dict):
        return PreQuantization("compressed-tensors", 8, 0)
    bits = int(weights.get("num_bits") or 8)
    group = int(weights.get("group_size") or 0)
    if weights.get("type") == "float" and bits == 8:
        return PreQuantization("fp8", 8, 0)
    if bits == 8:
        w8a8 = isinstance(scheme, dict) and scheme.get("input_activations")
        return PreQuantization("int8" if w8a8 else "int8-wo", 8, group)
    return PreQuantization("gptq", bits, group or 128)


def model_from_config(
    model_id: str, config: dict[str, Any], source: str = ""
) -> Model:
    """A ``Model`` from a parsed config.json."""
    arch = architecture_from_config(config)
    params = count_parameters(arch)
    if any(v < 0 for layer in params.layer_kinds for v in dataclasses.astuple(layer)):
        raise InputError(f"config.json of {model_id} gives a layer negative sizes "
                         "(intermediate_size, heads or experts).")
    return Model(
        id=model_id,
        architecture=arch,
        params=params,
        quantization=_pre_quantization(config),
        source=source,
    )


def _entry(row: dict[str, Any]) -> ModelEntry:
    params = row.get("params") or {}
    return ModelEntry(
        model=model_from_config(row["id"], row["config"], row.get("config_source", "")),
        aliases=tuple(str(a).lower() for a in row.get("aliases") or ()),
        family=str(row.get("family", "")),
        released=str(row.get("released", "")),
        published_total=params.get("total"),
        published_total_approx=(
            float(params["total_approx"]) if params.get("total_approx") is not None else None
        ),
        published_active=params.get("active"),
        params_source=str(params.get("source", "")),
        params_quote=str(params.get("quote", "")),
    )


@functools.cache
def load_models() -> tuple[ModelEntry, ...]:
    """All bundled catalogue entries, sorted by id (read once; values are immutable)."""
    entries: list[ModelEntry] = []
    for name in data_files("models"):
        entries.extend(_entry(row) for row in read_yaml(name) or [])
    return tuple(sorted(entries, key=lambda e: e.model.id.lower()))


def find_model(entries: tuple[ModelEntry, ...], name: str) -> ModelEntry:
    """A catalogue entry by HF id or alias, case-insensitive."""
    key = name.strip().lower()
    for entry in entries:
        if key == entry.model.id.lower() or key in entry.aliases:
            return entry
    for entry in entries:  # "Llama-3.1-8B" without the organisation
        if key == entry.model.id.lower().split("/")[-1]:
            return entry
    names = [e.model.id for e in entries] + [a for e in entries for a in e.aliases]
    raise CatalogError(
        f"Unknown model {name!r}.",
        hint="run `eksplain models` to list the catalogue, or pass a path to a config.json",
        suggestions=suggest(name, names),
    )


def inline_config(name: str) -> dict[str, Any] | None:
    """The config.json a model name carries inline (a JSON object, ``{"model_type": ...}``), or
    None for any other name. The HTTP API takes models this way instead of paths."""
    if not name.lstrip().startswith("{"):
        return None
    try:
        config = json.loads(name)
    except json.JSONDecodeError as exc:
        raise InputError(f"The model's inline config.json is not valid JSON: {exc.msg} at "
                         f"character {exc.pos}.") from exc
    if not isinstance(config, dict):
        raise InputError("The model's inline config.json must be a JSON object.")
    return config


def resolve_model(name: str, entries: tuple[ModelEntry, ...] | None = None) -> Model:
    """Resolve a catalogue id/alias, an inline config.json (a JSON object as the name), or a
    local ``config.json`` path or directory, to a Model. An inline config is named by its
    ``_name_or_path`` when it has one, else ``inline-<model_type>``."""
    config = inline_config(name)
    if config is not None:
        model_id = str(config.get("_name_or_path") or f"inline-{config.get('model_type')}")
        return model_from_config(model_id, config, source="inline config.json")
    path = Path(name).expanduser()
    if name.endswith(".json") or (path.exists() and path.is_dir()):
        if not path.exists():
            raise InputError(f"No such file: {name}.")
        config, _index = read_config_dir(path)
        return model_from_config(str(path), config, source=str(path))
    return find_model(load_models() if entries is None else entries, name).model
