import pytest

from eksplain.errors import InputError
from eksplain.units import GIB, bits_to_bytes, dtype_bits, format_bytes, parse_bytes, parse_count


@pytest.mark.parametrize(
    ("text", "expected"),
    [("48GiB", 48 * GIB), ("80 GB", 80 * 10**9), ("512MiB", 512 * 2**20), ("1024", 1024),
     ("1.5GiB", 3 * 2**29)],
)
def test_parse_bytes(text: str, expected: int) -> None:
    assert parse_bytes(text) == expected


@pytest.mark.parametrize("text", ["", "GiB", "48 parsecs", "-1GiB"])
def test_parse_bytes_rejects(text: str) -> None:
    with pytest.raises(InputError):
        parse_bytes(text)


@pytest.mark.parametrize(
    ("text", "expected"), [("8k", 8000), ("300B", 300 * 10**9), ("1.5T", 15 * 10**11),
                           ("1_000", 1000)],
)
def test_parse_count(text: str, expected: int) -> None:
    assert parse_count(text) == expected


def test_dtype_bits_and_aliases() -> None:
    assert dtype_bits("bfloat16") == 16
    assert dtype_bits("fp8_e4m3") == 8
    assert dtype_bits("nf4") == 4
    with pytest.raises(InputError, match="Unknown data type") as err:
        dtype_bits("bf61")
    assert "bf16" in err.value.suggestions


def test_four_bit_bytes_are_exact() -> None:
    # 4-bit widths must never be integer-divided into zero bytes.
    assert bits_to_bytes(3, 4) == 2
    assert bits_to_bytes(1_000_000, 4) == 500_000


def test_format_bytes() -> None:
    assert format_bytes(16 * GIB) == "16.00 GiB"
    assert format_bytes(512) == "512 B"
