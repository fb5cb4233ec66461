"""Speed: the roofline worked by hand, and no estimate beyond what the hardware can do."""

import re
from dataclasses import replace
from pathlib import Path

import pytest

from eksplain.calibration import load_calibration
from eksplain.catalog import ModelEntry, find_model, load_models
from eksplain.comms import Link, all_gather_s, all_reduce_s
from eksplain.compute import (
    TrainingSetup,
    engine_step_s,
    rates,
    serving_shape,
    serving_speed,
    static_batch_tokens_per_s,
    step_times,
    training_flops_per_token,
    training_speed,
)
from eksplain.datafiles import read_yaml
from eksplain.hardware import find_accelerator, load_catalog
from eksplain.memory import kv_bytes_per_token, weight_bytes
from eksplain.parallel import Parallelism

CAL = load_calibration()
CATALOG = load_catalog()
ENTRIES = load_models()
ACCELERATORS = [a for a in CATALOG.accelerators if a.peak("bf16") or a.peak("fp16")]


def _speed(entry: ModelEntry, acc_name: str, load: tuple[int, int, int]):  # type: ignore[no-untyped-def]
    model, acc, par = entry.model, find_accelerator(CATALOG, acc_name), Parallelism()
    shape = serving_shape(model, weight_bytes(model, CAL.format("bf16"), par),
                          kv_bytes_per_token(model.architecture, 16, par), par, False)
    eff = CAL.speed.serving_for(acc.architecture)
    return serving_speed(model, shape, rates(acc, "bf16"), eff, load, par, None), shape, acc


def test_ring_collectives_by_hand() -> None:
    link = Link("test", bus_bytes_per_s=100e9, latency_s=10e-6)
    # all-reduce of 1 GB over 8 ranks moves 2 x 7/8 GB per rank: 17.5 ms + 10 us.
    assert all_reduce_s(1e9, 8, link) == pytest.approx(0.0175 + 10e-6)
    assert all_gather_s(1e9, 8, link) == pytest.approx(0.00875 + 10e-6)
    assert all_reduce_s(1e9, 1, link) == 0.0


def test_batch_one_decode_is_bandwidth_bound_by_hand() -> None:
    # Llama-3.1-8B bf16 on an H100: 16,060,522,496 weight bytes at 3,350 GB/s x 0.75, plus the
    # KV cache of a 1,152-token context, plus 0.5 ms of step overhead.
    entry = find_model(ENTRIES, "meta-llama/Llama-3.1-8B")
    speed, _, _ = _speed(entry, "h100", (1, 1024, 256))
    weights_s = 16_060_522_496 / (3350e9 * 0.75)
    kv_s = 1152 * 131_072 / (3350e9 * 0.75)
    assert speed.tpot_s == pytest.approx(weights_s + kv_s + 0.0005, rel=1e-6)
    assert speed.decode_bound == "memory"


def test_training_flops_per_token() -> None:
    # 6N + 12 L q s for Llama-3.1-8B at 8k: N = 7,504,924,672 matrix parameters (8.03B minus
    # the input embedding and norms), 12 x 32 x 4096 x 8192.
    entry = find_model(ENTRIES, "meta-llama/Llama-3.1-8B")
    model_flops, hw_flops = training_flops_per_token(entry.model, 8192, "full", "full")
    n = 8_030_261_248 - 128256 * 4096 - 266_240
    assert model_flops == pytest.approx(6 * n + 12 * 32 * 4096 * 8192)
    assert hw_flops == pytest.approx(model_flops + 2 * n + 4 * 32 * 4096 * 8192)


def test_pipeline_bubble() -> None:
    entry = find_model(ENTRIES, "meta-llama/Llama-3.1-8B")
    setup = TrainingSetup(seq_len=4096, micro_batch=1, microbatches=12,
                          parallel=Parallelism(pp=4, dp=1), recompute="none", sharded=False,
                          trainable_fraction=1.0, intra_link=None, inter_link=None,
                          devices_per_node=8)
    speed = training_speed(entry.model, setup, rates(find_accelerator(CATALOG, "h100"), "bf16"),
                           0.5, 0.9)
    assert speed.bubble_fraction == pytest.approx(3 / 15)  # (p-1) / (m+p-1)


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.model.id)
def test_never_beyond_the_hardware(entry: ModelEntry) -> None:
    """No decode faster than the bandwidth allows, no FLOP rate above the peak, MFU <= 1."""
    experts = entry.model.architecture.experts
    # A step of 8 sequences must at least read the dense weights and the experts it routes to
    # (for MoE, the expected number of distinct experts 8 x k routings hit).
    touched = 1 - (1 - experts.experts_per_token / experts.num_experts) ** 8 if experts else 1.0
    for acc in ACCELERATORS:
        speed, shape, _ = _speed(entry, acc.id, (8, 512, 128))
        floor = shape.weight_bytes - shape.expert_bytes * (1 - touched)
        assert speed.tpot_s >= floor / acc.memory_bandwidth_bytes_per_s
        peak = rates(acc, "bf16").peak_flops
        assert speed.output_tokens_per_s * 2 * shape.matrix_params <= peak
        setup = TrainingSetup(seq_len=2048, micro_batch=1, microbatches=1,
                              parallel=Parallelism(), recompute="none", sharded=False,
                              trainable_fraction=1.0, intra_link=None, inter_link=None,
                              devices_per_node=8)
        eff = CAL.speed.training_efficiency(acc.architecture,
                                            entry.model.architecture.hidden_size, "bf16")
        train = training_speed(entry.model, setup, rates(acc, "bf16"), eff, 0.9)
        assert 0 < train.mfu <= 1


def _matrix_params(model_id: str, tp: int = 1) -> float:
    entry = find_model(ENTRIES, model_id)
    par = Parallelism(tp=tp)
    return serving_shape(entry.model, weight_bytes(entry.model, CAL.format("bf16"), par),
                         kv_bytes_per_token(entry.model.architecture, 16, par), par,
                         False).matrix_params


def test_tied_lm_head_still_costs_its_matmul() -> None:
    # Llama-3.2-1B ties its LM head to the embedding, but every token still multiplies by the
    # vocab x h matrix (Kaplan et al. 2020 count it; Megatron-LM 2021's FLOPs formula has the
    # V / (12 h l) term). 16 layers of q/o 2 x 2048 x 2048 + k/v 2 x 2048 x 512 + MLP
    # 3 x 2048 x 8192 = 60,817,408 each, 973,078,528 in all, + LM head 128,256 x 2048 =
    # 262,668,288: 1,235,746,816 = the published 1,235,814,400 less 33 RMSNorms of 2048.
    n = 16 * (2 * 2048 * 2048 + 2 * 2048 * 512 + 3 * 2048 * 8192) + 128_256 * 2048
    assert n == 1_235_814_400 - 33 * 2048
    model_flops, _ = training_flops_per_token(
        find_model(ENTRIES, "meta-llama/Llama-3.2-1B-Instruct").model, 4096, "none", "full")
    assert model_flops == pytest.approx(6 * n + 12 * 16 * 2048 * 4096)
    assert _matrix_params("meta-llama/Llama-3.2-1B-Instruct") == pytest.approx(n)
    assert _matrix_params("meta-llama/Llama-3.2-1B-Instruct", tp=2) == pytest.approx(n / 2)


def test_encoders_have_no_lm_head_matmul() -> None:
    # bge-base (BERT-base) has no LM head: its matrices are 12 layers of q/k/v/o 4 x 768 x 768
    # and a two-matrix MLP 2 x 768 x 3072 = 7,077,888 each; the embedding is a lookup.
    n = 12 * (4 * 768 * 768 + 2 * 768 * 3072)
    assert n == 84_934_656
    model_flops, _ = training_flops_per_token(
        find_model(ENTRIES, "BAAI/bge-base-en-v1.5").model, 512, "none", "full")
    assert model_flops == pytest.approx(6 * n + 12 * 12 * 768 * 512)
    assert _matrix_params("BAAI/bge-base-en-v1.5") == pytest.approx(n)


def test_encoders_attend_to_the_whole_prompt() -> None:
    # bge-base is bidirectional: each of 512 tokens attends to all 512, not to 256 on average as
    # in a causal prefill. Attention FLOPs per token = 2 x heads x (q + v head width) x context
    # per layer = 2 x 12 x 128 x 512 x 12 layers; matrices 2 x 84,934,656 (test above). Batch 4
    # of 512-token prompts on an H100 (989.4 TFLOP/s bf16 at prefill efficiency 0.6; weights
    # 2 x 109,482,240 bytes read at 3,350 GB/s x 0.75; 0.5 ms step overhead).
    entry = find_model(ENTRIES, "BAAI/bge-base-en-v1.5")
    speed, shape, _ = _speed(entry, "h100", (4, 512, 0))
    assert shape.weight_bytes == 2 * 109_482_240
    per_token = 2 * 84_934_656 + 2 * 12 * 128 * 512 * 12
    compute_s = 4 * 512 * per_token / (989.4e12 * 0.6)
    step_s = compute_s + 2 * 109_482_240 / (3350e9 * 0.75) + 0.0005
    assert speed.requests_per_s == pytest.approx(4 / step_s, rel=1e-9)
    one_s = 512 * per_token / (989.4e12 * 0.6) + 2 * 109_482_240 / (3350e9 * 0.75)
    assert speed.ttft_s == pytest.approx(one_s + 0.001, rel=1e-9)


def _405b_fp8_tp8(load: tuple[int, int, int]):  # type: ignore[no-untyped-def]
    model = find_model(ENTRIES, "meta-llama/Llama-3.1-405B-Instruct").model
    acc, par = find_accelerator(CATALOG, "h100"), Parallelism(tp=8)
    shape = serving_shape(model, weight_bytes(model, CAL.format("fp8"), par),
                          kv_bytes_per_token(model.architecture, 16, par), par, False)
    eff = CAL.speed.serving_for(acc.architecture)
    return serving_speed(model, shape, rates(acc, "fp8"), eff, load, par, None)


def test_compute_bound_decode_uses_the_throughput_compute_model() -> None:
    # Llama-3.1-405B in FP8 at TP=8 on H100s, 256 sequences of 128 + 128 tokens (context
    # 128 + 64). Per device: 126 layers x (q/o 2 x 16384^2 + k/v 2 x 16384 x 1024 + MLP
    # 3 x 16384 x 53248) + LM head 128,256 x 16384 = 403,747,897,344 / 8 matrix parameters;
    # attention width 128 heads x 128 / 8 x 126 layers = 258,048. Compute at the FP8 peak
    # 1,978.9 TFLOP/s x decode efficiency 0.45 x FP8 share 0.4 x width factor
    # (16384 / 24576) / (4096 / 12288) = 2 (data/calibration.yaml, speed.serving.default).
    # The pure decode step (decode tokens/s = 256 / step); TPOT under load adds prefill chunks.
    n = 126 * (2 * 16384**2 + 2 * 16384 * 1024 + 3 * 16384 * 53248) + 128_256 * 16384
    assert n == 403_747_897_344
    flops = 256 * (2 * n / 8 + 4 * 258_048 * 192)
    compute_s = flops / (1978.9e12 * 0.45 * 0.4 * 2)
    speed = _405b_fp8_tp8((256, 128, 128))
    assert speed.decode_bound == "compute"
    assert 256 / speed.decode_tokens_per_s == pytest.approx(compute_s + 0.0005, rel=1e-9)
    assert speed.curve[-1] == (256, speed.decode_tokens_per_s, 256 / speed.decode_tokens_per_s)
    assert speed.tpot_s > 256 / speed.decode_tokens_per_s


@pytest.mark.parametrize("load", [(256, 128, 128), (256, 128, 2048), (64, 2048, 2048),
                                  (128, 512, 512)])
def test_steady_state_never_beats_pure_decode(load: tuple[int, int, int]) -> None:
    # A steady-state step decodes the same batch and prefills new prompts besides, so it cannot
    # produce output tokens faster than decoding alone.
    speed = _405b_fp8_tp8(load)
    assert speed.output_tokens_per_s <= speed.decode_tokens_per_s * (1 + 1e-12)


# Llama-3.1-8B: N = 7,504,924,672 matrix parameters (test_training_flops_per_token); LoRA of rank
# 16 on q, k, v, o: 32 layers x 16 x ((4096 + 4096) x 2 + (4096 + 1024) x 2) = 13,631,488.
LLAMA_8B_N = 8_030_261_248 - 128256 * 4096 - 266_240
LLAMA_8B_LORA = 32 * 16 * ((4096 + 4096) * 2 + (4096 + 1024) * 2)


@pytest.mark.parametrize("method", ["lora", "qlora"])
def test_lora_flops_skip_the_frozen_weights_gradients(method: str) -> None:
    # A frozen base needs the forward pass (2N) and the activation gradients (2N) but no weight
    # gradients (the other 2N of 6N; Narayanan et al. 2021, arXiv:2104.04473, appendix on FLOPs:
    # backward = 2 x forward, half for input gradients, half for weight gradients). Adapters
    # are trained: 6 per adapter parameter. Attention has no weights: 12 L q s as for full
    # training. Full recomputation runs the forward again: 2N + 2A + 4 L q s.
    entry = find_model(ENTRIES, "meta-llama/Llama-3.1-8B")
    n, a, attention = LLAMA_8B_N, LLAMA_8B_LORA, 12 * 32 * 4096 * 8192
    model_flops, hw_flops = training_flops_per_token(entry.model, 8192, "full", method, a)
    assert model_flops == pytest.approx(4 * n + 6 * a + attention)
    assert hw_flops == pytest.approx(model_flops + 2 * n + 2 * a + attention / 3)


def _lora_setup(sharded: bool, method: str = "lora") -> TrainingSetup:
    total = 8_030_261_248
    return TrainingSetup(seq_len=4096, micro_batch=1, microbatches=1,
                         parallel=Parallelism(dp=8), recompute="none", sharded=sharded,
                         trainable_fraction=LLAMA_8B_LORA / total, method=method,
                         frozen_bits=16 if method == "lora" else 4,
                         intra_link=Link("test", bus_bytes_per_s=100e9, latency_s=10e-6),
                         inter_link=None, devices_per_node=8)


def test_lora_training_step_by_hand() -> None:
    # 4,096 tokens per device at (4N + 6A + 12 L q s) FLOPs each, on an H100's 989.4 TFLOP/s
    # at efficiency 0.5; with no overlap, the DDP all-reduce of the 16-bit adapter gradients
    # (2 x 7/8 of 2A bytes over 100 GB/s, + 10 us) is all exposed.
    entry = find_model(ENTRIES, "meta-llama/Llama-3.1-8B")
    flops = 4096 * (4 * LLAMA_8B_N + 6 * LLAMA_8B_LORA + 12 * 32 * 4096 * 4096)
    speed = training_speed(entry.model, _lora_setup(False),
                           rates(find_accelerator(CATALOG, "h100"), "bf16"), 0.5, 0.0)
    assert speed.compute_s == pytest.approx(flops / (989.4e12 * 0.5))
    assert speed.communication_s == pytest.approx(2 * 7 / 8 * 2 * LLAMA_8B_LORA / 100e9 + 10e-6)


@pytest.mark.parametrize(("method", "base_bytes"), [("lora", 2 * 8_030_261_248),
                                                    ("qlora", 8_030_261_248 / 2)])
def test_sharded_lora_gathers_the_frozen_base(method: str, base_bytes: float) -> None:
    # FSDP all-gathers every parameter before forward and again before backward, the frozen
    # base (16-bit for LoRA; 4-bit for QLoRA, gathered packed) with the adapters, but
    # reduce-scatters gradients of the adapters only: 2 gathers of base + 2A bytes and one
    # reduce-scatter of 2A bytes, each 7/8 of the buffer over 100 GB/s + 10 us on 8 ranks.
    entry = find_model(ENTRIES, "meta-llama/Llama-3.1-8B")
    speed = training_speed(entry.model, _lora_setup(True, method),
                           rates(find_accelerator(CATALOG, "h100"), "bf16"), 0.5, 0.0)
    adapters = 2 * LLAMA_8B_LORA
    gathers = 2 * (7 / 8 * (base_bytes + adapters) / 100e9 + 10e-6)
    assert speed.communication_s == pytest.approx(gathers + 7 / 8 * adapters / 100e9 + 10e-6)


def test_fp8_step_share_agrees_in_data_source_and_docs() -> None:
    # The share of the FP8/INT8 peak that batched serving steps realize is one fitted number: the
    # calibration value, its own source text and docs/methodology.md section 7 must state it alike.
    share = CAL.speed.serving_for("hopper").low_precision_step_scale
    raw = read_yaml("calibration.yaml")["speed"]["serving"]["source"]
    assert f"low_precision_step_scale {share:g} " in raw
    docs = (Path(__file__).parent.parent / "docs" / "methodology.md").read_text()
    stated = re.search(r"batched\s+steps\s+realize\s+(\d+) % of", docs)
    assert stated is not None
    assert int(stated.group(1)) == round(share * 100)


def test_expert_parallelism_over_dp_ranks_does_not_shrink_per_rank_flops() -> None:
    # Qwen3-30B-A3B on 8 ranks with EP=8 over DP=8: each rank receives the tokens of the other
    # ranks routed to its 16 experts, so its expert work per own token is still k experts (8 of
    # 128), as without EP; dividing by EP would claim 8x less compute.
    model = find_model(ENTRIES, "Qwen/Qwen3-30B-A3B").model
    plain = serving_shape(model, 1, 1.0, Parallelism(dp=8), quantized=False)
    spread = serving_shape(model, 1, 1.0, Parallelism(dp=8, ep=8), quantized=False)
    assert spread.matrix_params == plain.matrix_params
    # with EP = TP the experts' work splits over the TP ranks as the dense layers' does
    tp8 = serving_shape(model, 1, 1.0, Parallelism(tp=8, ep=8), quantized=False)
    assert tp8.matrix_params == pytest.approx(plain.matrix_params / 8)


def test_encoder_decoder_decode_reads_only_the_decoder() -> None:
    # flan-t5-xl bf16 on an H100 at TP=1: 5,699,514,368 weight bytes, of which the encoder stack
    # (1,157,729,280 parameters with its norms and relative biases) is 2,315,458,560 B that only
    # prefill reads. Decode at batch 1: 3,384,055,808 B of weights plus the self- and
    # cross-attention cache, 24 layers x 2 x 2 x 32 x 64 x 2 B = 393,216 B per token, of a
    # 1,152-token context, at 3,350 GB/s x 0.75, plus 0.5 ms of step overhead.
    entry = find_model(ENTRIES, "google/flan-t5-xl")
    speed, shape, _ = _speed(entry, "h100", (1, 1024, 256))
    assert shape.weight_bytes - shape.tower_bytes == 5_699_514_368 - 2 * 1_157_729_280
    weights_s = 3_384_055_808 / (3350e9 * 0.75)
    kv_s = 1152 * 393_216 / (3350e9 * 0.75)
    assert speed.tpot_s == pytest.approx(weights_s + kv_s + 0.0005, rel=1e-6)
    # Prefill runs the encoder once: 2 x 1,157,627,904 encoder matrix FLOPs per prompt token
    # at 989.4 TFLOP/s x 0.6.
    assert shape.encoder_params == 1_157_627_904
    par, acc = Parallelism(), find_accelerator(CATALOG, "h100")
    no_encoder = replace(shape, encoder_params=0.0)
    eff = CAL.speed.serving_for(acc.architecture)
    bare = serving_speed(entry.model, no_encoder, rates(acc, "bf16"), eff, (1, 1024, 256), par,
                         None)
    extra_s = 1024 * 2 * 1_157_627_904 / (989.4e12 * 0.6)
    assert speed.ttft_s - bare.ttft_s == pytest.approx(extra_s, rel=1e-9)


def test_vision_tower_is_not_read_by_decode() -> None:
    # Llama 4 Scout at TP=8: its vision tower keeps 63,087,104 replicated parameters (patch and
    # position embeddings, norms, biases, projector) and 808,845,312 matrix elements
    # (34 x (4 x 1408^2 + 2 x 1408 x 5632)) split 8 ways: 164,192,768 x 2 B per rank that no
    # decode step reads. Requests carry no images, so the tower adds no prefill FLOPs.
    model = find_model(ENTRIES, "meta-llama/Llama-4-Scout-17B-16E-Instruct").model
    assert model.params.tower_matrices == 34 * (4 * 1408**2 + 2 * 1408 * 5632)
    par = Parallelism(tp=8)
    shape = serving_shape(model, 1, 1.0, par, quantized=False)
    assert shape.tower_bytes == 2 * (63_087_104 + 808_845_312 // 8) == 328_385_536
    assert shape.encoder_params == 0.0


# Llama-3.1-8B in bf16 on one H100 (no TP): the pieces of the loaded-step model by hand.
def _llama_8b_h100():  # type: ignore[no-untyped-def]
    model = find_model(ENTRIES, "meta-llama/Llama-3.1-8B").model
    acc, par = find_accelerator(CATALOG, "h100"), Parallelism()
    shape = serving_shape(model, weight_bytes(model, CAL.format("bf16"), par),
                          kv_bytes_per_token(model.architecture, 16, par), par, False)
    return model, shape, rates(acc, "bf16"), CAL.speed.serving_for(acc.architecture), par


def test_mixed_step_runs_prompt_tokens_at_the_prefill_rate() -> None:
    # t_comp(B, c, x) = decode FLOPs / (peak x e_decode x width factor) + prefill FLOPs /
    # (peak x e_prefill): 1,000 prompt tokens of 1,000-token prompts add 1,000 x (2 N + 4 x
    # attention width x 500) FLOPs at 0.6 of the 989.4 TFLOP/s bf16 peak.
    model, shape, r, eff, _ = _llama_8b_h100()
    _, decode = step_times(model, shape, r, eff, 64, 1500.0, (0.0, 0))
    t_mem, mixed = step_times(model, shape, r, eff, 64, 1500.0, (1000.0, 1000))
    flops = 1000 * (2 * shape.matrix_params + 4 * shape.attention_width * 500)
    assert mixed - decode == pytest.approx(flops / (989.4e12 * 0.6), rel=1e-9)
    assert t_mem == step_times(model, shape, r, eff, 64, 1500.0, (0.0, 0))[0]


def _by_hand(load: tuple[int, int, int], budget: int) -> tuple[float, float]:
    """(output tokens/s, TPOT) from the formula of docs/methodology.md section 7."""
    model, shape, r, eff, par = _llama_8b_h100()
    batch, prompt, output = load
    ctx = prompt + output / 2
    arrivals = batch * prompt / output
    chunk = min(max(prompt, arrivals), budget - batch)
    p = arrivals / chunk

    def s(x: float) -> float:
        return engine_step_s(model, shape, r, eff, (batch, ctx, x, prompt), par, None)

    if p <= 1:
        mean = (1 - p) * s(0) + p * s(chunk)
        return batch / mean, mean
    return batch / (p * s(chunk)), s(chunk)


@pytest.mark.parametrize(("load", "budget"), [((64, 1024, 256), 8192), ((64, 1024, 256), 512),
                                              ((32, 20000, 200), 8192)])
def test_loaded_step_is_the_mean_over_chunk_steps(load: tuple[int, int, int],
                                                   budget: int) -> None:
    # 64 x 1,024 / 256 = 256 prompt tokens a step: whole 1,024-token prompts in a quarter of
    # the steps (budget 8,192), or 448-token chunks in 256 / 448 of them (budget 512); 32 x
    # 20,000 / 200 = 3,200 a step in 8,160-token chunks (budget 8,192 - 32), p = 0.39.
    model, shape, r, eff, par = _llama_8b_h100()
    speed = serving_speed(model, shape, r, eff, load, par, None, budget)
    rate, tpot = _by_hand(load, budget)
    assert speed.output_tokens_per_s == pytest.approx(rate, rel=1e-12)
    assert speed.tpot_s == pytest.approx(tpot, rel=1e-12)
    assert speed.tpot_s > load[0] / speed.decode_tokens_per_s  # slower than a decode step
    assert speed.requests_per_s == pytest.approx(rate / load[2], rel=1e-12)


def test_prefill_bound_replica_is_limited_by_its_chunks() -> None:
    # 64 sequences of 4,000 prompt and 10 output tokens: 25,600 prompt tokens arrive a step,
    # chunks hold 2,048 - 64 = 1,984: p = 12.9 > 1, every step carries a chunk and throughput
    # is B / (p x S(c)).
    model, shape, r, eff, par = _llama_8b_h100()
    load = (64, 4000, 10)
    speed = serving_speed(model, shape, r, eff, load, par, None, 2048)
    chunk = engine_step_s(model, shape, r, eff, (64, 4005.0, 1984.0, 4000), par, None)
    assert speed.tpot_s == pytest.approx(chunk, rel=1e-12)
    assert speed.output_tokens_per_s == pytest.approx(64 / (64 * 4000 / 10 / 1984 * chunk))


def test_one_sequence_decodes_without_interference() -> None:
    model, shape, r, eff, par = _llama_8b_h100()
    speed = serving_speed(model, shape, r, eff, (1, 1024, 256), par, None, 2048)
    assert speed.tpot_s == speed.curve[0][2]


def test_static_batch_prefills_once_then_decodes() -> None:
    # B x output / (S(0, 0, B x prompt) + (output - 1) x S(B, ctx, 0)).
    model, shape, r, eff, par = _llama_8b_h100()
    first = engine_step_s(model, shape, r, eff, (0, 0.0, 256 * 128.0, 128), par, None)
    decode = engine_step_s(model, shape, r, eff, (256, 192.0, 0.0, 0), par, None)
    rate = static_batch_tokens_per_s(model, shape, r, eff, (256, 128, 128), par, None)
    assert rate == pytest.approx(256 * 128 / (first + 127 * decode), rel=1e-12)


@pytest.mark.parametrize(("accelerator", "tokens"), [
    ("h100", 8192), ("h200", 8192), ("nvidia-a100-sxm4-80gb", 2048), ("a100", 2048),
    ("nvidia-l40s", 2048), ("a10g", 2048), ("l4", 2048),
])
def test_vllm_token_budget_follows_get_batch_defaults(accelerator: str, tokens: int) -> None:
    # vLLM V1's API server: 8,192 on devices of 70 GiB or more that are not A100s, else 2,048
    # (EngineArgs.get_batch_defaults; data/calibration.yaml token_budgets).
    assert CAL.token_budget(accelerator) == tokens


def test_token_budget_rule_reads_visible_memory_and_names() -> None:
    vllm = next(b for b in CAL.token_budgets if b.engine == "vllm")
    gib = 1 << 30
    assert vllm.for_device("x-gpu", 70 * gib) == 8192
    assert vllm.for_device("x-gpu", 70 * gib - 1) == 2048
    assert vllm.for_device("nvidia-a100-sxm4-80gb", 79 * gib) == 2048
    assert CAL.token_budget("h100", "trtllm") == 8192
    assert CAL.token_budget("l40s", "sglang") == 2048  # no row: vLLM's stands in
