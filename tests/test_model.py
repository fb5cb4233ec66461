"""Exact parameter counts from architecture, checked against hand arithmetic."""

import pytest

from eksplain import api
from eksplain.errors import InputError
from eksplain.estimate import EstimateRequest
from eksplain.hfconfig import architecture_from_config
from eksplain.memory import kv_bytes_for_sequence
from eksplain.model import count_parameters
from eksplain.parallel import Parallelism, validate_parallelism

from .conftest import LLAMA31_8B_CONFIG


def test_llama31_8b_is_exact() -> None:
    # 2 x 128256 x 4096 (untied embedding and LM head)
    # + 32 x [4096 x (4096 + 2 x 1024 + 4096)  q, k, v, o
    #        + 3 x 4096 x 14336                 gate, up, down
    #        + 2 x 4096]                        two RMSNorms
    # + 4096 final norm = 8,030,261,248 (HF safetensors total_size 16,060,522,496 / 2)
    params = count_parameters(architecture_from_config(LLAMA31_8B_CONFIG))
    assert params.total == 8_030_261_248
    assert params.active == params.total
    assert params.lm_head == 128256 * 4096


def test_tied_embeddings_are_counted_once() -> None:
    tied = {**LLAMA31_8B_CONFIG, "tie_word_embeddings": True}
    untied = count_parameters(architecture_from_config(LLAMA31_8B_CONFIG)).total
    assert untied - count_parameters(architecture_from_config(tied)).total == 128256 * 4096


def test_moe_active_parameters() -> None:
    # Mixtral 8x7B: each of 32 layers has 8 experts of 3 x 4096 x 14336; a token uses 2.
    # Idle: 32 x 6 x 176,160,768 = 33,822,867,456.
    config = {**LLAMA31_8B_CONFIG, "model_type": "mixtral", "vocab_size": 32000,
              "num_local_experts": 8, "num_experts_per_tok": 2}
    params = count_parameters(architecture_from_config(config))
    assert params.total == 46_702_792_704
    assert params.total - params.active == 33_822_867_456


def test_gpt2_and_bert_small_models() -> None:
    gpt2 = {"model_type": "gpt2", "n_embd": 768, "n_layer": 12, "n_head": 12,
            "n_positions": 1024, "vocab_size": 50257}
    # 50257 x 768 + 1024 x 768 + 12 x (4 x 768^2 + 4 x 768 + 2 x 768 x 3072 + 3072 + 768
    # + 4 x 768) + 2 x 768 = 124,439,808 (GPT2Model.num_parameters())
    assert count_parameters(architecture_from_config(gpt2)).total == 124_439_808
    bert = {"model_type": "bert", "hidden_size": 768, "num_hidden_layers": 12,
            "num_attention_heads": 12, "intermediate_size": 3072, "vocab_size": 30522,
            "max_position_embeddings": 512, "type_vocab_size": 2}
    assert count_parameters(architecture_from_config(bert)).total == 109_482_240


def test_mla_layer_counts() -> None:
    # DeepSeek-V3 attention per layer: q_a 7168 x 1536 + norm 1536 + q_b 1536 x 128 x 192
    # + kv_a 7168 x (512 + 64) + norm 512 + kv_b 512 x 128 x (128 + 128) + o 128 x 128 x 7168
    config = {"model_type": "deepseek_v3", "hidden_size": 7168, "intermediate_size": 18432,
              "num_hidden_layers": 1, "num_attention_heads": 128, "num_key_value_heads": 128,
              "vocab_size": 129280, "q_lora_rank": 1536, "kv_lora_rank": 512,
              "qk_rope_head_dim": 64, "qk_nope_head_dim": 128, "v_head_dim": 128,
              "moe_intermediate_size": 2048, "n_routed_experts": 256, "n_shared_experts": 1,
              "num_experts_per_tok": 8, "first_k_dense_replace": 3}
    arch = architecture_from_config(config)
    layer = count_parameters(arch).layers[0]
    attention = layer.attn_q_o + layer.attn_kv + layer.attn_replicated
    assert attention == (7168 * 1536 + 1536 + 1536 * 128 * 192 + 7168 * 576 + 512
                         + 512 * 128 * 256 + 128 * 128 * 7168)
    assert layer.mlp == 3 * 7168 * 18432  # layer 0 is one of the first three dense layers


def test_missing_field_is_named() -> None:
    config = {k: v for k, v in LLAMA31_8B_CONFIG.items() if k != "num_attention_heads"}
    with pytest.raises(InputError, match="num_attention_heads"):
        architecture_from_config(config)


def test_unsupported_model_type_suggests() -> None:
    with pytest.raises(InputError, match="Unsupported model_type") as err:
        architecture_from_config({**LLAMA31_8B_CONFIG, "model_type": "lama"})
    assert "llama" in err.value.suggestions


def test_wrong_field_type_is_an_input_error() -> None:
    with pytest.raises(InputError, match="wrong type"):
        architecture_from_config({**LLAMA31_8B_CONFIG, "hidden_size": "wide"})


# A small Llama 4 text model: 8 layers, 2 KV heads of 16, chunks of 16 tokens.
LLAMA4_TINY_TEXT = {
    "model_type": "llama4_text", "hidden_size": 64, "num_hidden_layers": 8,
    "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16,
    "intermediate_size": 32, "intermediate_size_mlp": 64, "vocab_size": 100,
    "num_local_experts": 2, "num_experts_per_tok": 1, "attention_chunk_size": 16,
}


def _llama4(**text: object) -> dict[str, object]:
    return {"model_type": "llama4", "text_config": {**LLAMA4_TINY_TEXT, **text}}


@pytest.mark.parametrize("listed", [None, []], ids=["absent", "empty"])
def test_llama4_no_rope_layers_default_from_interval(listed: list[int] | None) -> None:
    # transformers v5.24.0 Llama4TextConfig.__post_init__: an absent or empty no_rope_layers
    # becomes [int((i + 1) % no_rope_layer_interval != 0) for i in range(layers)], interval 4
    # by default: layers 3 and 7 (0-based) are NoPE and attend globally, the rest use RoPE and
    # attend within chunks of attention_chunk_size (16) tokens.
    arch = architecture_from_config(_llama4(no_rope_layers=listed))
    assert arch.layer_windows == (16, 16, 16, None, 16, 16, 16, None)
    # KV of a 64-token sequence: 2 (K, V) x 2 heads x 16 x 2 bytes = 128 B per token per layer;
    # 6 chunked layers keep 16 tokens, 2 NoPE layers 64: (6 x 16 + 2 x 64) x 128 = 28,672 B.
    assert kv_bytes_for_sequence(arch, 16, 64) == 28_672


def test_llama4_no_rope_layer_interval_is_read() -> None:
    # no_rope_layer_interval 2: (i + 1) % 2 == 0 for i = 1, 3, 5, 7, which are NoPE.
    arch = architecture_from_config(_llama4(no_rope_layer_interval=2))
    assert arch.layer_windows == (16, None) * 4
    # An explicit list wins over the interval, as in transformers.
    listed = _llama4(no_rope_layer_interval=2, no_rope_layers=[1, 1, 1, 1, 1, 1, 1, 0])
    assert architecture_from_config(listed).layer_windows == (16,) * 7 + (None,)


MOE_8 = {**LLAMA31_8B_CONFIG, "model_type": "mixtral", "vocab_size": 32000,
         "num_local_experts": 8, "num_experts_per_tok": 2}


@pytest.mark.parametrize(("tp", "dp", "ep", "devices"), [
    (8, 1, 8, 8),  # TP x DP = 8 x 1 = 8 ranks: EP=8 puts one of the 8 experts on each
    (4, 2, 8, 8),  # 4 x 2 = 8 ranks
    (2, 4, 4, 8),  # 2 x 4 = 8 ranks; 8 / 4 = 2 EP groups
    (4, 1, 2, 4),  # 4 ranks; 4 / 2 = 2
])
def test_expert_parallelism_over_tp_x_dp_ranks(tp: int, dp: int, ep: int, devices: int) -> None:
    arch = architecture_from_config(MOE_8)
    validate_parallelism(arch, Parallelism(tp=tp, dp=dp, ep=ep), devices)


@pytest.mark.parametrize(("tp", "dp", "ep", "devices", "message"), [
    # One device cannot hold 8 expert-parallel ranks: EP=8 > 1 device.
    (1, 1, 8, 1, "EP=8 needs 8 devices"),
    # vLLM's expert parallelism runs over the TP x DP ranks: 2 x 1 = 2, and 4 does not divide 2.
    (2, 1, 4, 8, "TP x DP = 2"),
    # 4 x 1 = 4 ranks; 8 does not divide 4, although 8 devices are given.
    (4, 1, 8, 8, "TP x DP = 4"),
])
def test_expert_parallelism_must_fit_the_ranks(tp: int, dp: int, ep: int, devices: int,
                                               message: str) -> None:
    arch = architecture_from_config(MOE_8)
    with pytest.raises(InputError, match=message) as err:
        validate_parallelism(arch, Parallelism(tp=tp, dp=dp, ep=ep), devices)
    assert "--ep" in err.value.hint


def test_expert_parallelism_on_one_gpu_is_refused() -> None:
    # Qwen3-30B-A3B has 128 experts, so EP=8 divides them; but one H100 is one rank, and EP=8
    # over it used to report 9.6 GiB of weights: 30.5B x 2 bytes = 56.9 GiB split 8 ways.
    request = EstimateRequest(model="Qwen/Qwen3-30B-A3B", hardware="h100", ep=8)
    with pytest.raises(InputError, match="EP=8"):
        api.estimate(request)
    # On 8 H100s (DP=8 replicas by default, 1 x 8 = 8 ranks) the same EP is accepted.
    est = api.estimate(EstimateRequest(model="Qwen/Qwen3-30B-A3B", hardware="h100",
                                       devices=8, ep=8))
    assert est.parallel.ep == 8
