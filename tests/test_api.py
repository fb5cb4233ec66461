"""The public Python API: a checked __all__, and the facade used the way the README shows."""

import inspect

import pytest

import eksplain
from eksplain import api


def test_all_is_complete_and_importable() -> None:
    for name in eksplain.__all__:
        assert hasattr(eksplain, name), name
    public = {n for n in dir(eksplain)
              if not n.startswith("_") and not inspect.ismodule(getattr(eksplain, n))}
    assert public <= set(eksplain.__all__)
    for name in api.__all__:
        assert hasattr(api, name), name


def test_readme_snippet() -> None:
    est = eksplain.estimate(eksplain.EstimateRequest(
        model="meta-llama/Llama-3.1-8B", hardware="l40s", batch=16, seq_len=8192,
    ))
    assert est.fits
    assert est.kv is not None
    assert est.kv.max_concurrency > 16
    assert est.memory.total_bytes < est.memory.capacity_bytes


def test_decode_reads_only_the_window_of_sliding_layers() -> None:
    # Mistral-7B-v0.1: 32 layers, every one with a 4,096-token window; 8 KV heads of 128, bf16.
    # A 30,000-token prompt and 1,000 output tokens decode at a mean context of
    # 30,000 + 1,000 / 2 = 30,500 tokens, of which each sequence holds (and reads) only the
    # window: 4,096 x 32 x 2 x 8 x 128 x 2 B = 536,870,912 B (not 30,500 x 131,072 B).
    # Batch 8 on an H100 is memory-bound (methodology section 7):
    # TPOT = (weights + 8 x 536,870,912) / (3,350 GB/s x 0.75) + 0.5 ms, with weights
    # 7,241,732,096 params x 2 B = 14,483,464,192 B (vocabulary 32,000 is a multiple of 64).
    est = eksplain.estimate(eksplain.EstimateRequest(
        model="mistralai/Mistral-7B-v0.1", hardware="h100", batch=8, input_tokens=30_000,
        output_tokens=1_000,
    ))
    assert est.speed.serving is not None
    assert est.speed.serving.decode_bound == "memory"
    expected = (14_483_464_192 + 8 * 536_870_912) / (3350e9 * 0.75) + 0.0005  # 7.97 ms
    assert est.speed.serving.tpot_s == pytest.approx(expected, rel=1e-9)
