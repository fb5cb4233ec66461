"""Units: byte sizes, dtype widths and the parsing of human-typed quantities.

Bytes are ``int``. Data-type widths are bits (``int``), never bytes, so that 4-bit formats are
exact: bytes for ``n`` elements of ``bits`` width is ``ceil(n * bits / 8)``.
GiB = 2**30 bytes, GB = 10**9 bytes. vLLM logs print "GB" while meaning GiB; the reference
set records which one each source meant.
"""

from __future__ import annotations

import math
import re

from eksplain.errors import InputError, suggest

__all__ = [
    "DTYPE_BITS",
    "GB",
    "GIB",
    "MIB",
    "bits_to_bytes",
    "dtype_bits",
    "format_bytes",
    "format_duration",
    "parse_bytes",
    "parse_count",
    "parse_duration",
]

KIB = 2**10
MIB = 2**20
GIB = 2**30
GB = 10**9

# Element widths in bits. These are definitions of the formats, not hardware facts.
DTYPE_BITS: dict[str, int] = {
    "fp32": 32,
    "tf32": 32,
    "bf16": 16,
    "fp16": 16,
    "fp8": 8,
    "int8": 8,
    "int4": 4,
    "nf4": 4,
    "fp4": 4,
}

_DTYPE_ALIASES: dict[str, str] = {
    "float32": "fp32",
    "float": "fp32",
    "bfloat16": "bf16",
    "float16": "fp16",
    "half": "fp16",
    "fp8_e4m3": "fp8",
    "fp8_e5m2": "fp8",
    "float8": "fp8",
    "float8_e4m3fn": "fp8",
    "e4m3": "fp8",
    "uint8": "int8",
    "auto": "auto",
}


def dtype_bits(name: str) -> int:
    """Width in bits of a data type name as users and HF configs spell it."""
    key = _DTYPE_ALIASES.get(name.lower(), name.lower())
    if key not in DTYPE_BITS:
        raise InputError(
            f"Unknown data type {name!r}.",
            hint="use one of " + ", ".join(DTYPE_BITS),
            suggestions=suggest(name, list(DTYPE_BITS) + list(_DTYPE_ALIASES)),
        )
    return DTYPE_BITS[key]


def normalise_dtype(name: str) -> str:
    """Canonical short name (``bf16``) of a data type spelled any accepted way."""
    dtype_bits(name)
    return _DTYPE_ALIASES.get(name.lower(), name.lower())


def bits_to_bytes(elements: int, bits: int) -> int:
    """Bytes needed for ``elements`` values of ``bits`` width, rounded up to a whole byte."""
    return math.ceil(elements * bits / 8)


_SIZE_UNITS: dict[str, int] = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": GB,
    "tb": 10**12,
    "kib": KIB,
    "mib": MIB,
    "gib": GIB,
    "tib": 2**40,
}

_QUANTITY = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:e[0-9]+)?)\s*([a-z]*)\s*$", re.IGNORECASE)


def parse_bytes(text: str) -> int:
    """Parse ``48GiB``, ``80 GB``, ``1024`` (bytes) into an integer number of bytes."""
    match = _QUANTITY.match(text)
    unit = match.group(2).lower() if match else ""
    if not match or unit not in _SIZE_UNITS:
        raise InputError(
            f"Cannot read {text!r} as a size.",
            hint="write a number with a unit, for example 48GiB, 80GB or 512MiB",
        )
    return round(float(match.group(1)) * _SIZE_UNITS[unit])


_COUNT_SUFFIX = {"": 1, "k": 10**3, "m": 10**6, "b": 10**9, "t": 10**12}


def parse_count(text: str) -> int:
    """Parse ``1.5T``, ``300B``, ``8k`` or ``1000000`` into an integer count."""
    match = _QUANTITY.match(text.replace("_", "").replace(",", ""))
    suffix = match.group(2).lower() if match else ""
    if not match or suffix not in _COUNT_SUFFIX:
        raise InputError(
            f"Cannot read {text!r} as a count.", hint="write 8192, 8k, 300B or 1.5T"
        )
    return round(float(match.group(1)) * _COUNT_SUFFIX[suffix])


def format_bytes(value: int | float) -> str:
    """Human form in binary units (GiB), as GPU tools report memory."""
    for unit, size in (("TiB", 2**40), ("GiB", GIB), ("MiB", MIB), ("KiB", KIB)):
        if abs(value) >= size:
            return f"{value / size:.2f} {unit}"
    return f"{int(value)} B"


_DURATION_UNITS = {"ms": 1e-3, "s": 1.0, "": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0,
                   "d": 86400.0}


def parse_duration(text: str) -> float:
    """Parse ``50ms``, ``1.5s``, ``10m``, ``2h`` or ``3d`` into seconds."""
    match = _QUANTITY.match(text)
    unit = match.group(2).lower() if match else ""
    if not match or unit not in _DURATION_UNITS:
        raise InputError(f"Cannot read {text!r} as a duration.", hint="write 50ms, 2s, 10m or 4h")
    return float(match.group(1)) * _DURATION_UNITS[unit]


def format_duration(seconds: float) -> str:
    """Human form: ms under a second, then s, min, h, days."""
    for unit, size in (("days", 86400.0), ("h", 3600.0), ("min", 60.0), ("s", 1.0)):
        if seconds >= size:
            return f"{seconds / size:.3g} {unit}"
    return f"{seconds * 1000:.3g} ms"
