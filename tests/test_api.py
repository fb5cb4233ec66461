"""The public Python API: a checked __all__, and the facade used the way the README shows."""

import inspect
import json
from pathlib import Path
from typing import Any

import pytest

import eksplain
from eksplain import api
from eksplain.catalog import resolve_model
from eksplain.compute import training_flops_per_token
from eksplain.estimate import EstimateRequest
from eksplain.memory import LORA_TARGETS, lora_parameters


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
    batch, _, decode_s = est.speed.serving.curve[-1]  # the decode step (TPOT adds prefill)
    assert batch == 8
    assert decode_s == pytest.approx(expected, rel=1e-9)


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


# Qwen2.5-7B's size fields as its config.json states them (catalogue entry Qwen/Qwen2.5-7B).
QWEN25_7B_CONFIG = {
    "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_act": "silu",
    "hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28,
    "num_attention_heads": 28, "num_key_value_heads": 4, "vocab_size": 152064,
    "max_position_embeddings": 32768, "use_sliding_window": False,
    "tie_word_embeddings": False, "torch_dtype": "bfloat16",
}
# Qwen2.5-7B: 7,615,616,512 parameters. Projection matrices per layer: q and o 3,584 x 3,584,
# k and v 3,584 x 512, MLP 3 x 3,584 x 18,944: 233,046,016; x 28 = 6,525,288,448.
# 16-bit rest: embeddings and the untied LM head 2 x 152,064 x 3,584 (152,064 is a multiple of
# 64, no padding) + norms and q/k/v biases 333,312 = 1,090,328,064 elements = 2,180,656,128 B.
QWEN25_7B_MATRICES = 6_525_288_448
QWEN25_7B_REST_BYTES = 2_180_656_128


def _prequantized_weights(tmp_path: Path, quantization: dict[str, Any]) -> tuple[str, int]:
    (tmp_path / "config.json").write_text(json.dumps(
        {**QWEN25_7B_CONFIG, "quantization_config": quantization}))
    est = eksplain.estimate(eksplain.EstimateRequest(model=str(tmp_path), hardware="l40s"))
    return est.weight_format, est.memory.weights_bytes


def test_gptq_and_awq_read_their_bits(tmp_path: Path) -> None:
    # GPTQ-Int8 (AutoGPTQ layout, vLLM gptq/gptq_marlin 8-bit): int8 weights with a 16-bit scale
    # and an 8-bit zero per group of 128: 8 + 24 / 128 = 8.1875 bits per weight.
    # 6,525,288,448 x 8.1875 / 8 = 6,678,224,896 B; + 2,180,656,128 = 8,858,881,024 B (8.86 GB),
    # not the 4-bit 5.57 GB.
    gptq8 = {"quant_method": "gptq", "bits": 8, "group_size": 128, "desc_act": False,
             "sym": True}
    assert _prequantized_weights(tmp_path, gptq8) == ("gptq-int8", 8_858_881_024)
    awq8 = {"quant_method": "awq", "bits": 8, "group_size": 128, "zero_point": True}
    assert _prequantized_weights(tmp_path, awq8) == ("awq-int8", 8_858_881_024)
    # 4-bit stays 4 + 20 / 128 = 4.15625 bits: 6,525,288,448 x 4.15625 / 8 = 3,390,091,264 B.
    gptq4 = {**gptq8, "bits": 4}
    assert _prequantized_weights(tmp_path, gptq4) == ("gptq", 3_390_091_264
                                                     + QWEN25_7B_REST_BYTES)


def test_compressed_tensors_fp8_is_8_bit(tmp_path: Path) -> None:
    # llm-compressor's FP8 scheme (compressed-tensors, float-quantized): e4m3 weights, 8 bits.
    # 6,525,288,448 + 2,180,656,128 = 8,705,944,576 B (8.71 GB), not bf16's 15.2 GB.
    fp8 = {"quant_method": "compressed-tensors", "format": "float-quantized",
           "config_groups": {"group_0": {"targets": ["Linear"],
                                         "weights": {"num_bits": 8, "type": "float",
                                                     "strategy": "channel"}}},
           "ignore": ["lm_head"]}
    assert _prequantized_weights(tmp_path, fp8) == (
        "fp8", QWEN25_7B_MATRICES + QWEN25_7B_REST_BYTES)


def test_compressed_tensors_schemes_are_read_from_config_groups(tmp_path: Path) -> None:
    # W8A8 int8 (weights and input_activations quantized): 8 bits, the same bytes as FP8.
    int8 = {"quant_method": "compressed-tensors", "format": "int-quantized",
            "config_groups": {"group_0": {
                "targets": ["Linear"], "weights": {"num_bits": 8, "type": "int"},
                "input_activations": {"num_bits": 8, "type": "int", "dynamic": True}}}}
    assert _prequantized_weights(tmp_path, int8) == (
        "int8", QWEN25_7B_MATRICES + QWEN25_7B_REST_BYTES)
    # W4A16 groups of 128, stored as GPTQ's 4 + 20 / 128 = 4.15625 bits per weight:
    # 6,525,288,448 x 4.15625 / 8 = 3,390,091,264 B, half of the 8-bit guess.
    w4a16 = {"quant_method": "compressed-tensors", "format": "pack-quantized",
             "config_groups": {"group_0": {"targets": ["Linear"], "weights": {
                 "num_bits": 4, "type": "int", "group_size": 128, "strategy": "group"}}}}
    assert _prequantized_weights(tmp_path, w4a16) == ("gptq", 3_390_091_264
                                                      + QWEN25_7B_REST_BYTES)


def test_fp8_training_where_fp8_is_no_faster_keeps_the_bf16_step() -> None:
    # Trainium (trn1) lists 190 TFLOP/s for both bf16 and FP8 (accelerators.csv), so float8
    # linears gain nothing; the 64 % FP8 scale (calibration) must not make the step 1 / 0.64 =
    # 1.56x slower than bf16's.
    def step(dtype: str) -> float:
        est = eksplain.estimate(eksplain.EstimateRequest(
            model="meta-llama/Llama-3.1-8B", hardware="trn1.32xlarge", task="training",
            fsdp="full", dtype=dtype))
        assert est.speed.training is not None
        return est.speed.training.step_time_s

    assert step("fp8") == step("bf16")


def test_lora_steps_cost_four_n_not_six() -> None:
    # A frozen base needs no weight gradients: 4N + 6 x adapters + attention FLOPs per token
    # against 6N + attention (Hu et al. 2021); on one device (no communication) the step times
    # keep that ratio, and QLoRA's compute is LoRA's (its NF4 base only changes what FSDP moves).
    def step(method: str) -> float:
        est = api.estimate(EstimateRequest(model="meta-llama/Llama-3.1-8B", hardware="h100",
                                           task="training", method=method, seq_len=4096))
        assert est.speed.training is not None
        return est.speed.training.step_time_s

    model = resolve_model("meta-llama/Llama-3.1-8B")
    full_flops = training_flops_per_token(model, 4096, "none", "full")[1]
    adapters = lora_parameters(model.architecture, 16, LORA_TARGETS)  # rank 16, all 7 matrices
    lora_flops = training_flops_per_token(model, 4096, "none", "lora", adapters)[1]
    assert step("lora") / step("full") == pytest.approx(lora_flops / full_flops, rel=0.01)
    assert step("qlora") == pytest.approx(step("lora"), rel=0.001)


def test_training_precision_decides_the_arithmetic_the_gpu_needs() -> None:
    # Training computes in what --precision says: fp32 runs on a T4 (compute capability 7.5)
    # whatever --dtype is, pure bf16 does not run on a V100 (7.0) even with --dtype fp16.
    est = api.estimate(EstimateRequest(model="meta-llama/Llama-3.2-1B", hardware="t4",
                                       task="training", precision="fp32"))
    assert est.memory.total_bytes > 0
    with pytest.raises(eksplain.InputError, match="use --precision mixed"):
        api.estimate(EstimateRequest(model="meta-llama/Llama-3.2-1B", hardware="v100",
                                     task="training", precision="bf16", dtype="fp16"))


def test_decode_reads_the_kv_width_memory_caches() -> None:
    # With --dtype fp32 and --kv-dtype auto, the cache holds 32-bit K/V (Llama-3.2-1B: 2 x 8
    # heads x 64 x 16 layers x 4 bytes = 64 KiB per token), and decode must read that width,
    # not 16 bits: at 16k-token contexts the KV reads dominate, so the step is slower than with
    # an explicit fp16 cache (32 KiB per token).
    def run(kv: str) -> tuple[float, int]:
        est = api.estimate(EstimateRequest(model="meta-llama/Llama-3.2-1B", hardware="h100",
                                           dtype="fp32", kv_dtype=kv, batch=16,
                                           input_tokens=16_000, output_tokens=256))
        assert est.speed.serving is not None
        assert est.kv is not None
        assert est.speed.serving.curve[-1][0] == 16
        return est.speed.serving.curve[-1][2], est.kv.bytes_per_token  # the decode step

    (tpot32, kv32), (tpot16, kv16) = run("auto"), run("fp16")
    assert (kv32, kv16) == (65_536, 32_768)
    assert tpot32 > 1.4 * tpot16
