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


def _step_s(**kwargs: str) -> float:
    est = eksplain.estimate(eksplain.EstimateRequest(
        model="meta-llama/Llama-3.1-8B", hardware="h100", task="training", batch=1,
        seq_len=4096, **kwargs,  # type: ignore[arg-type]
    ))
    assert est.speed.training is not None
    return est.speed.training.step_time_s


def test_training_peak_follows_precision_and_dtype() -> None:
    # Llama-3.1-8B, one H100, one 4,096-token sequence (methodology section 8, PaLM appendix B):
    # matrices a token passes through N = 8,030,261,248 - 525,336,576 (input embedding)
    # - 266,240 (norms) = 7,504,658,432; FLOPs per token 6N + 12 x 32 x 4,096 x 4,096
    # = 45,027,950,592 + 6,442,450,944 = 51,470,401,536; x 4,096 tokens.
    # e_train = 0.5 (Hopper) x 4,096 / (4,096 + 512) = 0.4444.
    flops = 51_470_401_536 * 4096
    eff = 0.5 * 4096 / 4608
    # mixed: bf16 peak 989.4 TFLOP/s -> 0.4795 s.
    assert _step_s() == pytest.approx(flops / (989.4e12 * eff), rel=1e-9)
    # --dtype fp8 (float8 linears): FP8 peak 1,978.9 at 64 % (torchtitan 1.28x) -> 0.3746 s.
    assert _step_s(dtype="fp8") == pytest.approx(flops / (1978.9e12 * eff * 0.64), rel=1e-9)
    # --precision fp32: PyTorch keeps fp32 matmuls in fp32 (TF32 off by default since 1.12),
    # the FP32 peak of 67 TFLOP/s -> 7.08 s.
    assert _step_s(precision="fp32") == pytest.approx(flops / (67e12 * eff), rel=1e-9)
