"""Memory per device: exact where the maths is exact, each value worked by hand in comments."""

from dataclasses import replace

import pytest

from eksplain.calibration import load_calibration
from eksplain.catalog import find_model, load_models
from eksplain.errors import InputError
from eksplain.memory import (
    ServingConfig,
    TrainingConfig,
    kv_bytes_for_sequence,
    kv_bytes_per_token,
    lora_parameters,
    serving_memory,
    training_memory,
    weight_bytes,
)
from eksplain.parallel import Parallelism, stage_layers
from eksplain.units import GIB

CAL = load_calibration()
ENTRIES = load_models()


def model(name: str):  # type: ignore[no-untyped-def]
    return find_model(ENTRIES, name).model


def test_issue_example_llama31_8b_h100() -> None:
    # Weights: 8,030,261,248 x 2 bytes = 16,060,522,496 B = 14.96 GiB.
    # KV: 32 layers x 2 (K, V) x 8 heads x 128 x 2 B = 131,072 B per token;
    #     x 4096 tokens x 32 sequences = 16 GiB exactly.
    m = model("meta-llama/Llama-3.1-8B")
    cfg = ServingConfig(batch=32, seq_len=4096)
    mem = serving_memory(m, 80 * GIB, cfg, CAL)
    assert mem.breakdown.weights_bytes == 16_060_522_496
    assert round(mem.breakdown.weights_bytes / GIB, 2) == 14.96
    assert mem.breakdown.kv_cache_bytes == 16 * GIB
    assert mem.kv.bytes_per_token == 131_072


def test_kv_per_token_gqa_mqa_mla() -> None:
    # Llama-3.1-70B: 80 layers x 2 x 8 KV heads x 128 x 2 B = 327,680 B (not 2.6 MB as MHA).
    assert kv_bytes_per_token(model("llama-3.1-70b").architecture, 16) == 327_680
    # DeepSeek-V3 MLA: 61 layers x (512 latent + 64 rope) x 2 B = 70,272 B.
    assert kv_bytes_per_token(model("deepseek-ai/DeepSeek-V3").architecture, 16) == 70_272
    # fp8 KV halves it.
    assert kv_bytes_per_token(model("llama-3.1-70b").architecture, 8) == 163_840


def test_kv_heads_replicate_when_tp_exceeds_them() -> None:
    arch = model("llama-3.1-70b").architecture  # 8 KV heads
    tp8 = kv_bytes_per_token(arch, 16, Parallelism(tp=8))
    tp16 = kv_bytes_per_token(arch, 16, Parallelism(tp=16))
    assert tp8 == 327_680 // 8  # one KV head per rank
    assert tp16 == tp8  # still one (replicated) head per rank, not half a head


def test_sliding_window_layers_keep_their_window() -> None:
    # Gemma-2-9B: 42 layers, half with a 4096-token window, 8 KV heads of 256.
    arch = model("google/gemma-2-9b-it").architecture
    per_layer_token = 2 * 8 * 256 * 2
    long = kv_bytes_for_sequence(arch, 16, 8192)
    assert long == 21 * 8192 * per_layer_token + 21 * 4096 * per_layer_token


def test_quantized_weight_formats() -> None:
    m = model("meta-llama/Llama-3.1-8B")
    bf16 = weight_bytes(m, CAL.format("bf16"))
    awq = weight_bytes(m, CAL.format("awq"))
    nf4 = weight_bytes(m, CAL.format("nf4"))
    # Projection matrices: 8,030,261,248 - 2 x 525,336,576 (embeddings) - 266,240 (norms)
    # = 6,979,321,856. AWQ: 4 bits + (16 + 4) bits per 128 = 4.15625 bits each.
    # Embedding and LM head stay bf16.
    matrices = 6_979_321_856
    small = 8_030_261_248 - matrices
    assert awq == small * 2 + matrices * 4.15625 / 8
    # NF4 with double quantisation: 4 + 8/64 + 32/(64 x 256) = 4.126953125 bits.
    assert nf4 == pytest.approx(small * 2 + matrices * 4.126953125 / 8, abs=8)
    assert bf16 == 8_030_261_248 * 2


def test_tensor_and_pipeline_parallel_weights() -> None:
    m = model("meta-llama/Llama-3.1-8B")
    fmt = CAL.format("bf16")
    tp2 = weight_bytes(m, fmt, Parallelism(tp=2))
    # Everything shards over TP except the norms (266,240 elements) that every rank keeps.
    assert tp2 == (8_030_261_248 - 266_240) + 266_240 * 2
    # 32 layers over 3 stages: 10 each, the two extra layers go to the stages before the last
    # (which holds the LM head), as vLLM's get_pp_indices does.
    assert stage_layers(32, 3) == [range(0, 11), range(11, 22), range(22, 32)]


def test_engine_pool_and_capacity() -> None:
    # vLLM: pool = 0.9 x visible - weights - activation peak - non-torch memory.
    m = model("meta-llama/Llama-3.1-8B")
    mem = serving_memory(m, 80 * GIB, ServingConfig(seq_len=8192), CAL)
    expected_pool = round(80 * GIB * 0.9) - mem.breakdown.weights_bytes - (
        mem.breakdown.activations_bytes) - mem.non_torch_bytes
    assert mem.kv.pool_bytes == expected_pool
    assert mem.kv.blocks == expected_pool // (131_072 * 16)
    assert mem.kv.capacity_tokens == mem.kv.blocks * 16
    assert mem.kv.max_concurrency == pytest.approx(mem.kv.capacity_tokens / 8192)


def test_does_not_fit_is_reported() -> None:
    m = model("llama-3.1-70b")
    mem = serving_memory(m, 80 * GIB, ServingConfig(), CAL)
    assert not mem.fits
    assert mem.kv.pool_bytes == 0


def test_invalid_parallelism_lists_valid_choices() -> None:
    m = model("meta-llama/Llama-3.1-8B")
    with pytest.raises(InputError, match=r"valid --tp values: 1, 2, 4, 8"):
        serving_memory(m, 80 * GIB, ServingConfig(parallel=Parallelism(tp=3)), CAL, 8)
    with pytest.raises(InputError, match="needs more devices"):
        serving_memory(m, 80 * GIB, ServingConfig(parallel=Parallelism(tp=4)), CAL, 2)
    with pytest.raises(InputError, match="EP=3"):
        serving_memory(model("mixtral-8x7b"), 80 * GIB,
                       ServingConfig(parallel=Parallelism(ep=3)), CAL, 8)


def _states(cfg: TrainingConfig, devices: int) -> int:
    mem = training_memory(model("meta-llama/Llama-3.1-8B"), 80 * GIB, cfg, CAL, devices).breakdown
    return mem.weights_bytes + mem.gradients_bytes + mem.optimizer_states_bytes


def test_zero_stages_follow_deepspeed() -> None:
    p = 8_030_261_248
    par = Parallelism(dp=8)
    # ZeRO-2 (DeepSpeed estimator): 4 bytes/param on every rank + 16 bytes/param / N.
    assert _states(TrainingConfig(zero=2, parallel=par), 8) == pytest.approx(4 * p + 16 * p / 8)
    # ZeRO-3: 18 bytes/param / N.
    assert _states(TrainingConfig(zero=3, parallel=par), 8) == pytest.approx(18 * p / 8)
    # No sharding, PyTorch AMP: fp32 weights, fp32 grads, two fp32 moments = 16 bytes/param.
    assert _states(TrainingConfig(parallel=par), 8) == pytest.approx(16 * p)
    # FSDP full sharding: the same 16 bytes, all sharded.
    assert _states(TrainingConfig(fsdp="full", parallel=par), 8) == pytest.approx(16 * p / 8)


def test_hybrid_sharding_stays_inside_a_node() -> None:
    p = 8_030_261_248
    cfg = TrainingConfig(fsdp="hybrid", parallel=Parallelism(dp=32), devices_per_node=8)
    assert _states(cfg, 32) == pytest.approx(16 * p / 8)


def test_lora_adapter_parameters() -> None:
    # Llama-3.1-8B, r=16, all seven projections: per layer
    # 16 x [(4096+4096) + 2 x (4096+1024) + (4096+4096) + 2 x (4096+14336) + (14336+4096)]
    # = 16 x 81,920 = 1,310,720; x 32 layers = 41,943,040.
    arch = model("meta-llama/Llama-3.1-8B").architecture
    assert lora_parameters(arch, 16, ("q", "k", "v", "o", "gate", "up", "down")) == 41_943_040


def test_recomputation_lowers_activations() -> None:
    m = model("meta-llama/Llama-3.1-8B")
    acts = {
        mode: training_memory(m, 80 * GIB, TrainingConfig(recompute=mode, seq_len=4096), CAL)
        .breakdown.activations_bytes
        for mode in ("none", "selective", "full")
    }
    assert acts["none"] > acts["selective"] > acts["full"]
    # Full recomputation keeps each layer's input: 32 layers x 4096 tokens x 4096 x 2 B = 1 GiB,
    # plus one layer rebuilt and the logits (4096 x 128256 x 14 B).
    logits = 4096 * 128256 * 14
    assert acts["full"] - logits > 1 * GIB


def test_flash_attention_removes_the_quadratic_term() -> None:
    m = model("meta-llama/Llama-3.1-8B")
    flash = training_memory(m, 80 * GIB, TrainingConfig(seq_len=8192), CAL).breakdown
    eager = training_memory(m, 80 * GIB, TrainingConfig(seq_len=8192, flash_attention=False),
                            CAL).breakdown
    # 32 layers x 8192 tokens x 4 x 32 heads x 8192 B = 256 GiB of attention scores.
    assert eager.activations_bytes - flash.activations_bytes == 32 * 8192 * 4 * 32 * 8192


def test_windowed_capacity_counts_the_window_only() -> None:
    # Gemma-3-27B: 62 layers, 10 global and 52 with a 1,024-token window; 16 KV heads of 128.
    # Per layer per token 2 x 16 x 128 x 2 B = 8,192 B; a full-attention token on every layer
    # 62 x 8,192 = 507,904 B (vLLM's page size, so capacity_tokens stays in these tokens).
    # One 101,000-token sequence: 8,192 x (10 x 101,000 + 52 x 1,024) = 8,710,127,616 B.
    # vLLM's max concurrency counts a sliding-window layer's window only
    # (v1/core/kv_cache_utils.py, get_max_concurrency_for_kv_cache_config), so concurrency =
    # capacity_tokens x 507,904 / 8,710,127,616, and the max batch is its whole part.
    m = model("google/gemma-3-27b-it")
    cfg = ServingConfig(batch=8, seq_len=101_000)
    kv = serving_memory(m, 140 * GIB, cfg, CAL).kv
    assert kv.bytes_per_token == 507_904
    usable = kv.capacity_tokens * 507_904
    assert kv.max_concurrency == pytest.approx(usable / 8_710_127_616)
    assert kv.max_batch == int(usable // 8_710_127_616)
    assert kv.max_batch >= 8  # the 8 sequences asked for fit, and concurrency says so
    # Longest sequence at batch 8: 8 x 8,192 x (10 s + 53,248) <= usable bytes,
    # s <= (usable / 65,536 - 53,248) / 10, capped by the 131,072-token context.
    assert kv.max_seq_len == min(int((usable / 65_536 - 53_248) // 10), 131_072)


def test_full_attention_capacity_unchanged() -> None:
    # Llama-3.1-8B (no windows): concurrency is capacity_tokens / seq_len and the longest
    # sequence capacity_tokens // batch, as before: 131,072 B per token on every layer.
    m = model("meta-llama/Llama-3.1-8B")
    kv = serving_memory(m, 80 * GIB, ServingConfig(batch=4, seq_len=8192), CAL).kv
    assert kv.max_concurrency == pytest.approx(kv.capacity_tokens / 8192)
    assert kv.max_batch == kv.capacity_tokens // 8192
    assert kv.max_seq_len == kv.capacity_tokens // 4


def test_encoders_are_limited_by_the_engine_not_a_kv_cache() -> None:
    # BAAI/bge-large-en-v1.5 (BERT-large: h 1,024, MLP 4,096, 512 positions) keeps no KV cache.
    m = model("BAAI/bge-large-en-v1.5")
    l4 = 23_807_809_028  # visible L4 memory: 23,999,807,488 B x 0.992
    # vLLM profiles a fixed 8,192-token step, so memory does not bound the batch: the scheduler's
    # max_num_seqs (256) does, and any sequence up to the model's 512 positions fits.
    kv = serving_memory(m, l4, ServingConfig(batch=64, seq_len=512), CAL).kv
    assert (kv.max_batch, kv.max_seq_len) == (256, 512)
    # transformers runs the whole batch in one pass: activations 8h + 6i = 32,768 B per token.
    # Free: 23,807,809,028 - 670,283,776 (weights, 335,141,888 x 2 B) - 1,406,601,789 (CUDA
    # context, 1.31 GiB) = 21,730,923,463 B = 663,175 tokens; 1,295 sequences of 512, and at
    # batch 64 up to 10,362 tokens each, capped by the 512 positions.
    hf = serving_memory(m, l4, ServingConfig(batch=64, seq_len=512, engine="hf"), CAL).kv
    assert (hf.max_batch, hf.max_seq_len) == (1_295, 512)
    # Too little memory for the weights: nothing fits.
    small = serving_memory(m, 600_000_000, ServingConfig(batch=64, seq_len=512), CAL).kv
    assert (small.max_batch, small.max_seq_len) == (0, 0)


def test_t5_encoder_shards_over_tp() -> None:
    # flan-t5-xl: h 2048, 24 encoder and 24 decoder layers, 32 heads of 64, gated MLP of 5120.
    # Encoder matrices: 24 x (4 x 2048 x 2048 + 3 x 2048 x 5120) = 24 x 48,234,496
    # = 1,157,627,904 of other's 1,157,732,352 (the rest: norms and relative-position biases).
    m = model("google/flan-t5-xl")
    assert m.params.tower_matrices == 24 * (4 * 2048 * 2048 + 3 * 2048 * 5120) == 1_157_627_904
    fmt = CAL.format("bf16")
    # TP=1: every parameter at 2 bytes (32,128 rows are already a multiple of 64).
    assert weight_bytes(m, fmt, Parallelism(), 64) == 2 * 2_849_757_184
    # TP=4: decoder matrices 24 x (2 x 4 x 2048^2 (self + cross) + 3 x 2048 x 5120) / 4
    # = 390,070,272; decoder norms 24 x 3 x 2048 = 147,456; embedding and LM head 32,256 / 4
    # rows x 2048 = 16,515,072 each; other: 104,448 replicated + 1,157,627,904 / 4. In all
    # 712,759,296 elements = 1,425,518,592 B = 1.328 GiB (2.945 GiB with the encoder unsharded).
    elements = 390_070_272 + 147_456 + 2 * 16_515_072 + 104_448 + 1_157_627_904 // 4
    assert weight_bytes(m, fmt, Parallelism(tp=4), 64) == 2 * elements == 1_425_518_592


def test_vision_tower_matrices_shard_over_tp() -> None:
    # Gemma 3 27B's SigLIP tower: 27 layers of q/k/v/o 4 x 1152^2 and MLP 2 x 1152 x 4304
    # = 411,070,464 matrix elements; at TP=4 each rank keeps a quarter of them, so 3/4 x
    # 411,070,464 x 2 bytes fewer than with the tower replicated. Its patch and position
    # embeddings, norms, biases and projector stay replicated.
    m = model("google/gemma-3-27b-it")
    assert m.params.tower_matrices == 27 * (4 * 1152**2 + 2 * 1152 * 4304) == 411_070_464
    replicated = replace(m, params=replace(m.params, tower_matrices=0))
    fmt, par = CAL.format("bf16"), Parallelism(tp=4)
    saved = weight_bytes(replicated, fmt, par) - weight_bytes(m, fmt, par)
    assert saved == 2 * 411_070_464 * 3 // 4
