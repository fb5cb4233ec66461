"""Read a Hugging Face ``config.json`` into an ``Architecture``.

One small builder per family of ``model_type``; each reads the fields that family's modelling code
in ``transformers`` reads, with the same defaults, and names the missing field when a required one
is absent. Nothing here executes model code (never ``trust_remote_code``) or downloads anything.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from eksplain.datafiles import read_yaml
from eksplain.errors import InputError, suggest
from eksplain.model import Architecture, Attention, Experts, FeedForward, VisionTower

__all__ = ["SUPPORTED_MODEL_TYPES", "architecture_from_config", "read_config_dir"]

Config = Mapping[str, Any]


class _Fields:
    """Field access that names the missing field and the model type in its error."""

    def __init__(self, config: Config, model_type: str) -> None:
        self.config = config
        self.model_type = model_type

    def req(self, *names: str) -> Any:
        for name in names:
            if self.config.get(name) is not None:
                return self.config[name]
        raise InputError(
            f"config.json for model_type {self.model_type!r} has no {names[0]!r} field.",
            hint="check that the file is the model's complete config.json",
        )

    def opt(self, name: str, default: Any) -> Any:
        value = self.config.get(name)
        return default if value is None else value


def _rope_factor(f: _Fields) -> float | None:
    scaling = f.opt("rope_scaling", None)
    if isinstance(scaling, Mapping) and scaling.get("factor") is not None:
        return float(scaling["factor"])
    return None


def _attention(f: _Fields, heads: int, kv: int | None = None, **extra: Any) -> Attention:
    hidden = int(f.req("hidden_size"))
    kv_heads = int(kv if kv is not None else f.opt("num_key_value_heads", heads))
    head_dim = int(f.opt("head_dim", hidden // heads))
    return Attention(num_heads=heads, num_kv_heads=kv_heads, head_dim=head_dim, **extra)


def _windows(f: _Fields, layers: int) -> tuple[int | None, ...]:
    """Per-layer sliding windows: ``layer_types``, ``sliding_window_pattern`` or one window."""
    window = f.opt("sliding_window", None)
    types = f.opt("layer_types", None)
    if types:
        return tuple(window if t == "sliding_attention" else None for t in types)
    if window is None or f.opt("use_sliding_window", True) is False:
        return ()
    pattern = f.opt("sliding_window_pattern", None)
    if pattern:  # Gemma 3: every pattern-th layer is global
        return tuple(None if (i + 1) % int(pattern) == 0 else window for i in range(layers))
    if f.model_type == "gemma2":  # even layers slide, odd layers are global
        return tuple(window if i % 2 == 0 else None for i in range(layers))
    if f.model_type == "qwen2" and f.opt("use_sliding_window", False) is False:
        return ()
    return tuple(int(window) for _ in range(layers))


def _llama_like(f: _Fields) -> Architecture:
    """llama, mistral, qwen2, qwen3, phi3, gemma*, starcoder2 and relatives."""
    mt = f.model_type
    layers = int(f.req("num_hidden_layers"))
    heads = int(f.req("num_attention_heads"))
    bias = bool(f.opt("attention_bias", mt == "qwen2" or bool(f.opt("use_bias", False))))
    gemma = mt.startswith("gemma")
    return Architecture(
        model_type=mt,
        hidden_size=int(f.req("hidden_size")),
        num_layers=layers,
        vocab_size=int(f.req("vocab_size")),
        max_context=int(f.opt("max_position_embeddings", 2048)),
        attention=_attention(
            f, heads, qkv_bias=bias, out_bias=bias and mt not in ("qwen2",),
            qk_norm=mt in ("qwen3", "qwen3_moe", "gemma3_text", "olmo2"),
        ),
        ffn=FeedForward(
            int(f.req("intermediate_size")), gated=mt != "starcoder2",
            bias=bool(f.opt("mlp_bias", mt == "starcoder2" and bool(f.opt("use_bias", True)))),
        ),
        norm="layer" if mt == "starcoder2" else "rms",
        norms_per_layer=4 if mt in ("gemma2", "gemma3_text") else 2,
        tied_embeddings=bool(f.opt("tie_word_embeddings", gemma or mt == "starcoder2")),
        layer_windows=_windows(f, layers),
        rope_scaling_factor=_rope_factor(f),
    )


def _mixtral(f: _Fields) -> Architecture:
    base = _llama_like(f)
    experts = Experts(
        num_experts=int(f.req("num_local_experts")),
        experts_per_token=int(f.req("num_experts_per_tok")),
        intermediate_size=int(f.req("intermediate_size")),
    )
    return _replace(base, experts=experts, moe_layers=tuple(range(base.num_layers)))


def _qwen_moe(f: _Fields) -> Architecture:
    base = _llama_like(f)
    step = int(f.opt("decoder_sparse_step", 1))
    dense = set(f.opt("mlp_only_layers", []))
    moe = tuple(i for i in range(base.num_layers) if i not in dense and (i + 1) % step == 0)
    shared = int(f.opt("shared_expert_intermediate_size", 0))
    experts = Experts(
        num_experts=int(f.req("num_experts")),
        experts_per_token=int(f.req("num_experts_per_tok")),
        intermediate_size=int(f.req("moe_intermediate_size")),
        shared_intermediate_size=shared,
        shared_gate=shared > 0,
    )
    return _replace(base, experts=experts, moe_layers=moe)


def _deepseek(f: _Fields) -> Architecture:
    base = _llama_like(f)
    rope, nope = int(f.req("qk_rope_head_dim")), int(f.req("qk_nope_head_dim"))
    attention = Attention(
        num_heads=base.attention.num_heads,
        num_kv_heads=base.attention.num_heads,
        head_dim=rope + nope,
        q_lora_rank=int(f.opt("q_lora_rank", 0) or 0),
        kv_lora_rank=int(f.req("kv_lora_rank")),
        qk_rope_head_dim=rope,
        v_head_dim=int(f.req("v_head_dim")),
    )
    first_dense, freq = int(f.opt("first_k_dense_replace", 0)), int(f.opt("moe_layer_freq", 1))
    moe = tuple(i for i in range(base.num_layers) if i >= first_dense and i % freq == 0)
    mi = int(f.req("moe_intermediate_size"))
    experts = Experts(
        num_experts=int(f.req("n_routed_experts")),
        experts_per_token=int(f.req("num_experts_per_tok")),
        intermediate_size=mi,
        shared_intermediate_size=mi * int(f.opt("n_shared_experts", 0) or 0),
        router_bias=f.opt("topk_method", "") == "noaux_tc",
    )
    return _replace(base, attention=attention, experts=experts, moe_layers=moe)


def _llama4(f: _Fields) -> Architecture:
    # The class defaults apply even to a text_config that does not name its model_type.
    text = _Fields(_with_defaults({"model_type": "llama4_text", **f.req("text_config")}),
                   "llama4_text")
    base = _llama_like(text)
    step = int(text.opt("interleave_moe_layer_step", 1))
    moe = tuple(i for i in range(base.num_layers) if (i + 1) % step == 0)
    inter = int(text.req("intermediate_size"))
    experts = Experts(
        num_experts=int(text.req("num_local_experts")),
        experts_per_token=int(text.opt("num_experts_per_tok", 1)),
        intermediate_size=inter,
        shared_intermediate_size=inter,
    )
    ffn = FeedForward(int(text.opt("intermediate_size_mlp", inter)))
    # Layers with RoPE attend within chunks of attention_chunk_size tokens; NoPE layers globally.
    chunk = text.opt("attention_chunk_size", None)
    windows = tuple(chunk if chunk and flag else None for flag in _llama4_rope_layers(text, base))
    return _replace(
        base, model_type="llama4", experts=experts, moe_layers=moe, ffn=ffn,
        vision=_vision(f, "llama4"), layer_windows=windows or base.layer_windows,
    )


def _llama4_rope_layers(text: _Fields, base: Architecture) -> list[int]:
    """1 for a RoPE (chunked) layer, 0 for a NoPE (global) one, as Llama4TextConfig sets them.

    An absent or empty ``no_rope_layers`` is filled from ``no_rope_layer_interval``: every
    interval-th layer is NoPE, i.e. ``int((i + 1) % interval != 0)`` (transformers v5.24.0,
    models/llama4/configuration_llama4.py, ``Llama4TextConfig.__post_init__``). Maverick's
    config.json has no list, so without this its 48 layers would all attend globally.
    """
    listed = text.opt("no_rope_layers", None)
    if listed:
        return [int(flag) for flag in listed]
    interval = int(text.req("no_rope_layer_interval"))
    return [int((i + 1) % interval != 0) for i in range(base.num_layers)]


def _vision_projector(kind: str, vf: _Fields, text_hidden: int) -> int:
    """Parameters between the vision tower and the text model.

    Gemma 3: an input projection (vision -> text width) and an RMSNorm on the vision side.
    Llama 4: the pixel-shuffle adapter MLP (intermediate -> projector in -> projector out, no
    bias) and the projection of ``vision_output_dim`` into the text width.
    """
    vh = int(vf.req("hidden_size"))
    if kind == "gemma3":
        return vh * text_hidden + vh
    inner = int(vf.req("intermediate_size"))
    p_in, p_out = int(vf.req("projector_input_dim")), int(vf.req("projector_output_dim"))
    return inner * p_in + p_in * p_out + int(vf.opt("vision_output_dim", p_out)) * text_hidden


def _vision(f: _Fields, kind: str) -> VisionTower | None:
    v = f.opt("vision_config", None)
    if not isinstance(v, Mapping):
        return None
    vf = _Fields(v, f"{kind} vision_config")
    text_hidden = int(_Fields(f.req("text_config"), kind).req("hidden_size"))
    llama4 = kind == "llama4"
    return VisionTower(
        hidden_size=int(vf.req("hidden_size")),
        intermediate_size=int(vf.req("intermediate_size")),
        num_layers=int(vf.req("num_hidden_layers")),
        patch_size=int(vf.req("patch_size")),
        image_size=int(vf.req("image_size")),
        num_channels=int(vf.opt("num_channels", 3)),
        class_token=llama4,
        patch_bias=not llama4,
        pre_norm=llama4,
        projector_params=_vision_projector(kind, vf, text_hidden),
    )


def _gemma3(f: _Fields) -> Architecture:
    text = _Fields(f.req("text_config"), "gemma3_text")
    base = _llama_like(text)
    return _replace(base, model_type="gemma3", vision=_vision(f, "gemma3"))


def _gpt2(f: _Fields) -> Architecture:
    h, heads = int(f.req("n_embd")), int(f.req("n_head"))
    return Architecture(
        model_type="gpt2", hidden_size=h, num_layers=int(f.req("n_layer")),
        vocab_size=int(f.req("vocab_size")), max_context=int(f.req("n_positions")),
        attention=Attention(heads, heads, h // heads, qkv_bias=True, out_bias=True),
        ffn=FeedForward(int(f.opt("n_inner", 4 * h)), gated=False, bias=True),
        norm="layer", tied_embeddings=True, position_embeddings=int(f.req("n_positions")),
    )


def _gpt_bigcode(f: _Fields) -> Architecture:
    """StarCoder / SantaCoder: GPT-2 layout with multi-query attention."""
    h, heads = int(f.req("n_embd")), int(f.req("n_head"))
    kv = 1 if f.opt("multi_query", True) else heads
    return Architecture(
        model_type="gpt_bigcode", hidden_size=h, num_layers=int(f.req("n_layer")),
        vocab_size=int(f.req("vocab_size")), max_context=int(f.req("n_positions")),
        attention=Attention(heads, kv, h // heads, qkv_bias=True, out_bias=True),
        ffn=FeedForward(int(f.opt("n_inner", 4 * h)), gated=False, bias=True),
        norm="layer", tied_embeddings=True, position_embeddings=int(f.req("n_positions")),
    )


def _gptj(f: _Fields) -> Architecture:
    h, heads = int(f.req("n_embd")), int(f.req("n_head"))
    return Architecture(
        model_type="gptj", hidden_size=h, num_layers=int(f.req("n_layer")),
        vocab_size=int(f.req("vocab_size")), max_context=int(f.req("n_positions")),
        attention=Attention(heads, heads, h // heads),
        ffn=FeedForward(int(f.opt("n_inner", 4 * h)), gated=False, bias=True),
        norm="layer", norms_per_layer=1, lm_head_bias=True,
        tied_embeddings=bool(f.opt("tie_word_embeddings", False)),
    )


def _gpt_neox(f: _Fields) -> Architecture:
    h, heads = int(f.req("hidden_size")), int(f.req("num_attention_heads"))
    bias = bool(f.opt("attention_bias", True))
    return Architecture(
        model_type="gpt_neox", hidden_size=h, num_layers=int(f.req("num_hidden_layers")),
        vocab_size=int(f.req("vocab_size")), max_context=int(f.req("max_position_embeddings")),
        attention=Attention(heads, heads, h // heads, qkv_bias=bias, out_bias=bias),
        ffn=FeedForward(int(f.req("intermediate_size")), gated=False, bias=True),
        norm="layer", tied_embeddings=bool(f.opt("tie_word_embeddings", False)),
    )


def _opt(f: _Fields) -> Architecture:
    h, heads = int(f.req("hidden_size")), int(f.req("num_attention_heads"))
    proj = int(f.opt("word_embed_proj_dim", h))
    extra = (("project_in_out", 2 * proj * h),) if proj != h else ()
    # OPT's learned positions have an offset of 2 rows (OPTLearnedPositionalEmbedding).
    arch = Architecture(
        model_type="opt", hidden_size=h, num_layers=int(f.req("num_hidden_layers")),
        vocab_size=int(f.req("vocab_size")), max_context=int(f.req("max_position_embeddings")),
        attention=Attention(heads, heads, h // heads, qkv_bias=True, out_bias=True),
        ffn=FeedForward(int(f.req("ffn_dim")), gated=False, bias=True),
        norm="layer", tied_embeddings=bool(f.opt("tie_word_embeddings", True)),
        position_embeddings=int(f.req("max_position_embeddings")) + 2,
        final_norm=bool(f.opt("do_layer_norm_before", True)) and proj == h,
        extra_params=extra,
    )
    if proj != h:  # opt-350m: embeddings live in the projected width
        emb_fix = (f.req("vocab_size")) * (proj - h)
        return _replace(arch, extra_params=(*extra, ("projected_embedding", emb_fix)))
    return arch


def _bloom(f: _Fields) -> Architecture:
    """BLOOM: ALiBi positions, LayerNorm after the embedding, 4h GeLU MLP, tied head.

    Hub configs spell the width ``n_embed`` and the heads ``num_attention_heads``; configs that
    transformers saves use ``hidden_size`` and ``n_head``; both are read.
    """
    h = int(f.req("hidden_size", "n_embed"))
    heads = int(f.req("n_head", "num_attention_heads"))
    return Architecture(
        model_type="bloom", hidden_size=h, num_layers=int(f.req("n_layer", "num_hidden_layers")),
        vocab_size=int(f.req("vocab_size")), max_context=int(f.opt("seq_length", 2048)),
        attention=Attention(heads, heads, h // heads, qkv_bias=True, out_bias=True),
        ffn=FeedForward(4 * h, gated=False, bias=True),
        norm="layer", tied_embeddings=True, embedding_norm=True,
    )


def _falcon(f: _Fields) -> Architecture:
    h, heads = int(f.req("hidden_size")), int(f.req("num_attention_heads"))
    new_arch = bool(f.opt("new_decoder_architecture", False))
    if new_arch:
        kv = int(f.opt("num_kv_heads", f.opt("n_head_kv", heads)))
    else:
        kv = 1 if f.opt("multi_query", True) else heads
    bias = bool(f.opt("bias", False))
    parallel = bool(f.opt("parallel_attn", True))
    norms = 2 if new_arch or not parallel else 1
    return Architecture(
        model_type="falcon", hidden_size=h, num_layers=int(f.req("num_hidden_layers")),
        vocab_size=int(f.req("vocab_size")),
        max_context=int(f.opt("max_position_embeddings", 2048)),
        attention=Attention(heads, kv, h // heads, qkv_bias=bias, out_bias=bias),
        ffn=FeedForward(int(f.opt("ffn_hidden_size", 4 * h)), gated=False, bias=bias),
        norm="layer", norms_per_layer=norms,
        tied_embeddings=bool(f.opt("tie_word_embeddings", True)),
    )


def _bert_like(f: _Fields) -> Architecture:
    """bert, roberta, xlm-roberta: encoder with learned positions, token types and a pooler."""
    h, heads = int(f.req("hidden_size")), int(f.req("num_attention_heads"))
    return Architecture(
        model_type=f.model_type, hidden_size=h, num_layers=int(f.req("num_hidden_layers")),
        vocab_size=int(f.req("vocab_size")), max_context=int(f.req("max_position_embeddings")),
        attention=Attention(heads, heads, h // heads, qkv_bias=True, out_bias=True),
        ffn=FeedForward(int(f.req("intermediate_size")), gated=False, bias=True),
        norm="layer", final_norm=False, lm_head=False, causal=False,
        position_embeddings=int(f.req("max_position_embeddings")),
        token_type_embeddings=int(f.opt("type_vocab_size", 2)), embedding_norm=True,
        pooler=True,
    )


def _distilbert(f: _Fields) -> Architecture:
    h, heads = int(f.req("dim")), int(f.req("n_heads"))
    return Architecture(
        model_type="distilbert", hidden_size=h, num_layers=int(f.req("n_layers")),
        vocab_size=int(f.req("vocab_size")), max_context=int(f.req("max_position_embeddings")),
        attention=Attention(heads, heads, h // heads, qkv_bias=True, out_bias=True),
        ffn=FeedForward(int(f.req("hidden_dim")), gated=False, bias=True),
        norm="layer", final_norm=False, lm_head=False, causal=False,
        position_embeddings=int(f.req("max_position_embeddings")), embedding_norm=True,
    )


def _mpnet(f: _Fields) -> Architecture:
    base = _bert_like(f)
    return _replace(
        base, model_type="mpnet", token_type_embeddings=0,
        relative_attention_buckets=int(f.opt("relative_attention_num_buckets", 32)),
    )


def _t5(f: _Fields) -> Architecture:
    d, heads, d_kv = int(f.req("d_model")), int(f.req("num_heads")), int(f.req("d_kv"))
    gated = str(f.opt("feed_forward_proj", "relu")).startswith("gated") or bool(
        f.opt("is_gated_act", False))
    enc = int(f.req("num_layers"))
    return Architecture(
        model_type="t5", hidden_size=d, num_layers=int(f.opt("num_decoder_layers", enc)),
        vocab_size=int(f.req("vocab_size")), max_context=int(f.opt("n_positions", 512)),
        attention=Attention(heads, heads, d_kv),
        ffn=FeedForward(int(f.req("d_ff")), gated=gated),
        norms_per_layer=2, encoder_layers=enc,
        relative_attention_buckets=int(f.opt("relative_attention_num_buckets", 32)),
        tied_embeddings=bool(f.opt("tie_word_embeddings", True)),
    )


def _replace(arch: Architecture, **changes: Any) -> Architecture:
    return dataclasses.replace(arch, **changes)


_BUILDERS: dict[str, Callable[[_Fields], Architecture]] = {
    **{
        t: _llama_like
        for t in (
            "llama", "mistral", "qwen2", "qwen3", "phi3", "gemma", "gemma2", "gemma3_text",
            "starcoder2", "olmo2",
        )
    },
    "mixtral": _mixtral,
    "qwen2_moe": _qwen_moe,
    "qwen3_moe": _qwen_moe,
    "deepseek_v2": _deepseek,
    "deepseek_v3": _deepseek,
    "llama4": _llama4,
    "gemma3": _gemma3,
    "gpt2": _gpt2,
    "gptj": _gptj,
    "gpt_bigcode": _gpt_bigcode,
    "gpt_neox": _gpt_neox,
    "opt": _opt,
    "bloom": _bloom,
    "falcon": _falcon,
    "bert": _bert_like,
    "roberta": _bert_like,
    "xlm-roberta": _bert_like,
    "distilbert": _distilbert,
    "mpnet": _mpnet,
    "t5": _t5,
}

SUPPORTED_MODEL_TYPES: tuple[str, ...] = tuple(sorted(_BUILDERS))


@functools.cache
def _class_defaults() -> dict[str, dict[str, Any]]:
    return {k: v["defaults"] for k, v in read_yaml("config_defaults.yaml").items()}


def _with_defaults(config: Config) -> dict[str, Any]:
    """Fill the fields a sparse config leaves to its transformers class (data/config_defaults)."""
    out = dict(config)
    for key in ("text_config", "vision_config"):
        if isinstance(out.get(key), Mapping):
            out[key] = _with_defaults(out[key])
    defaults = _class_defaults().get(str(out.get("model_type", "")), {})
    return {**defaults, **{k: v for k, v in out.items() if v is not None}}


def architecture_from_config(config: Config) -> Architecture:
    """Build the ``Architecture`` of a model from its parsed ``config.json``."""
    config = _with_defaults(config)
    model_type = config.get("model_type")
    if not model_type:
        raise InputError("config.json has no 'model_type' field.", hint="is this an HF config?")
    builder = _BUILDERS.get(str(model_type))
    if builder is None:
        raise InputError(
            f"Unsupported model_type {model_type!r}.",
            hint="supported: " + ", ".join(SUPPORTED_MODEL_TYPES),
            suggestions=suggest(str(model_type), SUPPORTED_MODEL_TYPES),
        )
    try:
        arch = builder(_Fields(config, str(model_type)))
    except (TypeError, ValueError, ArithmeticError) as exc:
        raise InputError(
            f"config.json for model_type {model_type!r} has a field of the wrong type or out of "
            f"range ({exc}).",
            hint="sizes and counts must be positive integers",
        ) from exc
    if arch.num_layers < 1 or arch.hidden_size < 1:
        raise InputError(f"config.json for model_type {model_type!r} has {arch.num_layers} "
                         f"layers of width {arch.hidden_size}; both must be positive.")
    negative = [f.name for f in dataclasses.fields(arch)
                if isinstance(getattr(arch, f.name), int) and getattr(arch, f.name) < 0]
    if negative:
        raise InputError(f"config.json for model_type {model_type!r} gives negative sizes: "
                         + ", ".join(negative) + ".")
    return arch


def read_config_dir(path: Path) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Read ``config.json`` (a file, or a directory holding one) and, when present beside it,
    ``model.safetensors.index.json``. Returns (config, index or None)."""
    config_path = path / "config.json" if path.is_dir() else path
    if not config_path.is_file():
        raise InputError(f"No config.json at {path}.", hint="pass a config.json or its directory")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{config_path} is not valid JSON: {exc}.") from exc
    if not isinstance(config, dict):
        raise InputError(f"{config_path} does not hold a JSON object.")
    index_path = config_path.parent / "model.safetensors.index.json"
    index = json.loads(index_path.read_text(encoding="utf-8")) if index_path.is_file() else None
    return config, index
