"""Model architecture: the normalised shape of a transformer and its exact parameter count.

``Architecture`` describes a model the way the memory and speed estimators need it, whatever
its Hugging Face ``model_type``; ``eksplain.hfconfig`` builds it from a ``config.json``.
Parameter counting is exact: it reproduces the tensors a checkpoint stores (embeddings,
projections with their biases, norms, routers, experts), so that totals equal published counts
(Llama-3.1-8B: 8,030,261,248). Counts are split into groups because they are stored and sharded
differently: embeddings and the LM head are vocabulary-parallel under tensor parallelism and
are not quantized by AWQ/GPTQ/bitsandbytes; projection matrices are; norms and biases stay in
16 bits and are replicated.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "Architecture",
    "Attention",
    "Experts",
    "FeedForward",
    "LayerParams",
    "ParamCount",
    "VisionTower",
    "count_parameters",
    "layer_params",
]


@dataclass(frozen=True)
class Attention:
    """Self-attention of one layer. GQA/MQA: ``num_kv_heads`` < ``num_heads``.

    Multi-head latent attention (DeepSeek-V2/V3) is on when ``kv_lora_rank`` > 0: keys and
    values are compressed into a ``kv_lora_rank`` latent plus a shared ``qk_rope_head_dim`` key
    part, which is what the KV cache stores.
    """

    num_heads: int
    num_kv_heads: int
    head_dim: int
    qkv_bias: bool = False
    out_bias: bool = False
    qk_norm: bool = False
    q_lora_rank: int = 0
    kv_lora_rank: int = 0
    qk_rope_head_dim: int = 0
    v_head_dim: int = 0

    @property
    def is_mla(self) -> bool:
        return self.kv_lora_rank > 0


@dataclass(frozen=True)
class FeedForward:
    """A dense MLP. ``gated``: SwiGLU/GeGLU with three matrices (gate, up, down), else two."""

    intermediate_size: int
    gated: bool = True
    bias: bool = False


@dataclass(frozen=True)
class Experts:
    """A mixture-of-experts block: routed experts, optional shared experts, a router."""

    num_experts: int
    experts_per_token: int
    intermediate_size: int
    gated: bool = True
    shared_intermediate_size: int = 0
    shared_gate: bool = False
    router_bias: bool = False


@dataclass(frozen=True)
class VisionTower:
    """A ViT image encoder of a multimodal model, counted approximately as a standard ViT."""

    hidden_size: int
    intermediate_size: int
    num_layers: int
    patch_size: int
    image_size: int
    num_channels: int = 3
    class_token: bool = False
    patch_bias: bool = True
    pre_norm: bool = False
    projector_params: int = 0  # adapter and projection into the text model


@dataclass(frozen=True)
class Architecture:
    """The parts of a transformer that decide its parameters, KV cache and FLOPs."""

    model_type: str
    hidden_size: int
    num_layers: int
    vocab_size: int
    max_context: int
    attention: Attention
    ffn: FeedForward
    experts: Experts | None = None
    moe_layers: tuple[int, ...] = ()
    norm: str = "rms"  # "rms" (weight) or "layer" (weight and bias)
    norms_per_layer: int = 2
    final_norm: bool = True
    tied_embeddings: bool = False
    lm_head: bool = True
    lm_head_bias: bool = False
    position_embeddings: int = 0
    token_type_embeddings: int = 0
    embedding_norm: bool = False
    pooler: bool = False
    causal: bool = True
    encoder_layers: int = 0
    relative_attention_buckets: int = 0
    layer_windows: tuple[int | None, ...] = ()
    extra_params: tuple[tuple[str, int], ...] = ()
    vision: VisionTower | None = None
    rope_scaling_factor: float | None = None

    @property
    def is_moe(self) -> bool:
        return self.experts is not None and bool(self.moe_layers)

    @property
    def is_encoder_only(self) -> bool:
        return not self.causal and self.encoder_layers == 0

    def window(self, layer: int) -> int | None:
        """Sliding-window size of a decoder layer, or None for full attention."""
        return self.layer_windows[layer] if self.layer_windows else None


@dataclass(frozen=True)
class LayerParams:
    """Parameters of one decoder layer, split by how they shard and quantize."""

    attn_q_o: int  # query (or MLA query path) and output projections: sharded by heads
    attn_kv: int  # key/value projections: sharded by KV heads, replicated when KV heads < TP
    attn_replicated: int  # MLA down-projections and their norms: replicated under TP
    mlp: int  # dense MLP matrices
    experts: int  # all routed experts' matrices
    expert_one: int  # one routed expert's matrices
    shared_experts: int  # shared experts' matrices
    small: int  # norms, biases, router: 16-bit, replicated

    @property
    def total(self) -> int:
        return (
            self.attn_q_o + self.attn_kv + self.attn_replicated + self.mlp + self.experts
            + self.shared_experts + self.small
        )

    @property
    def matrices(self) -> int:
        """Projection matrices that weight-only quantization (AWQ, GPTQ, NF4, FP8) converts."""
        return self.total - self.small


@dataclass(frozen=True)
class ParamCount:
    """Exact parameter counts of a model, total and active per token, by group."""

    total: int
    active: int
    embedding: int
    lm_head: int
    layers: tuple[LayerParams, ...]
    other: int  # final norm, pooler, encoder stack of enc-dec models, vision tower, extras
    layers_total: int = field(default=0)
    # Distinct layer shapes, and which one each layer is: per-layer sums run over the few kinds
    # (dense and MoE, say) instead of every layer.
    layer_kinds: tuple[LayerParams, ...] = ()
    layer_kind_of: tuple[int, ...] = ()
    # The encoder stack of an encoder-decoder model and a vision tower, inside ``other``: they run
    # once per request at prefill, never in a decode step. ``tower_matrices`` are their
    # projection matrices, which TP shards like the decoder's.
    tower: int = 0
    tower_matrices: int = 0

    def kinds_in(self, layers: range) -> list[tuple[LayerParams, int]]:
        """(layer shape, how many) for the layers of a range."""
        counts = [0] * len(self.layer_kinds)
        for i in layers:
            counts[self.layer_kind_of[i]] += 1
        return [(kind, n) for kind, n in zip(self.layer_kinds, counts, strict=True) if n]


def _norm_params(arch: Architecture, width: int) -> int:
    return width * (2 if arch.norm == "layer" else 1)


def _mla_params(a: Attention, h: int) -> tuple[int, int, int]:
    """(query+output, kv up-projection, replicated down-projections+norms) of an MLA layer."""
    qk_head = a.head_dim  # nope + rope
    if a.q_lora_rank:
        q_down = h * a.q_lora_rank + a.q_lora_rank  # q_a_proj + q_a_layernorm
        q_up = a.q_lora_rank * a.num_heads * qk_head
    else:
        q_down, q_up = 0, h * a.num_heads * qk_head
    kv_down = h * (a.kv_lora_rank + a.qk_rope_head_dim) + a.kv_lora_rank  # + kv_a_layernorm
    nope = qk_head - a.qk_rope_head_dim
    kv_up = a.kv_lora_rank * a.num_heads * (nope + a.v_head_dim)
    out = a.num_heads * a.v_head_dim * h
    return q_up + out, kv_up, q_down + kv_down


def _attention_params(arch: Architecture) -> tuple[int, int, int, int]:
    """(q+o matrices, k+v matrices, replicated matrices, small) for one self-attention."""
    a, h = arch.attention, arch.hidden_size
    if a.is_mla:
        q_o, kv, replicated = _mla_params(a, h)
        return q_o, kv, replicated, 0
    q_width, kv_width = a.num_heads * a.head_dim, a.num_kv_heads * a.head_dim
    small = (q_width + 2 * kv_width) * a.qkv_bias + h * a.out_bias + 2 * a.head_dim * a.qk_norm
    return 2 * h * q_width, 2 * h * kv_width, 0, small


def _mlp_params(h: int, width: int, gated: bool) -> int:
    return (3 if gated else 2) * h * width


def _ffn(arch: Architecture, layer: int) -> tuple[int, int, int, int, int]:
    """(dense mlp, experts, one expert, shared experts, small) for one layer's feed-forward."""
    h, e = arch.hidden_size, arch.experts
    if e is None or layer not in arch.moe_layers:
        f = arch.ffn
        small = (f.intermediate_size + h) * f.bias
        return _mlp_params(h, f.intermediate_size, f.gated), 0, 0, 0, small
    one = _mlp_params(h, e.intermediate_size, e.gated)
    shared = _mlp_params(h, e.shared_intermediate_size, e.gated)
    router = h * e.num_experts + e.num_experts * e.router_bias + h * e.shared_gate
    return 0, one * e.num_experts, one, shared, router


def layer_params(arch: Architecture, layer: int) -> LayerParams:
    """Parameters of decoder layer ``layer`` (0-based)."""
    q_o, kv, replicated, attn_small = _attention_params(arch)
    mlp, experts, one, shared, ffn_small = _ffn(arch, layer)
    norms = arch.norms_per_layer * _norm_params(arch, arch.hidden_size)
    if arch.encoder_layers:  # encoder-decoder: decoder layers also have cross-attention
        q_o, kv = 2 * q_o, 2 * kv
        norms += _norm_params(arch, arch.hidden_size)
        attn_small *= 2
    return LayerParams(
        attn_q_o=q_o,
        attn_kv=kv,
        attn_replicated=replicated,
        mlp=mlp,
        experts=experts,
        expert_one=one,
        shared_experts=shared,
        small=attn_small + ffn_small + norms,
    )


def _encoder_stack(arch: Architecture) -> int:
    """Encoder of an encoder-decoder model: self-attention + MLP + two norms per layer."""
    if not arch.encoder_layers:
        return 0
    q_o, kv, _, small = _attention_params(arch)
    mlp, _, _, _, mlp_small = _ffn(arch, -1)
    per_layer = q_o + kv + small + mlp + mlp_small + 2 * _norm_params(arch, arch.hidden_size)
    stack = arch.encoder_layers * per_layer + _norm_params(arch, arch.hidden_size)
    return stack + arch.relative_attention_buckets * arch.attention.num_heads


def _encoder_matrices(arch: Architecture) -> int:
    """Projection matrices of the encoder stack (attention and MLP of every encoder layer)."""
    q_o, kv, _, _ = _attention_params(arch)
    mlp, _, _, _, _ = _ffn(arch, -1)
    return arch.encoder_layers * (q_o + kv + mlp)


def _vision_matrices(v: VisionTower | None) -> int:
    """Projection matrices of a ViT's layers (q, k, v, o and the two MLP matrices)."""
    return 0 if v is None else v.num_layers * (4 * v.hidden_size**2 + 2 * v.hidden_size
                                               * v.intermediate_size)


def _vision_params(v: VisionTower | None) -> int:
    if v is None:
        return 0
    h, i = v.hidden_size, v.intermediate_size
    positions = (v.image_size // v.patch_size) ** 2 + v.class_token
    embed = v.num_channels * v.patch_size**2 * h + h * v.patch_bias + positions * h
    embed += h * v.class_token
    per_layer = 4 * (h * h + h) + 2 * h * i + i + h + 2 * 2 * h
    norms = 2 * h * (2 if v.pre_norm else 1)
    return embed + v.num_layers * per_layer + norms + v.projector_params


def _other_params(arch: Architecture) -> int:
    h = arch.hidden_size
    other = _norm_params(arch, h) if arch.final_norm else 0
    other += (h * h + h) if arch.pooler else 0
    if (arch.relative_attention_buckets and not arch.encoder_layers) or arch.encoder_layers:
        other += arch.relative_attention_buckets * arch.attention.num_heads
    other += _encoder_stack(arch) + _vision_params(arch.vision)
    return other + sum(count for _, count in arch.extra_params)


def count_parameters(arch: Architecture) -> ParamCount:
    """Exact total and active (per token) parameter counts.

    Active parameters replace each MoE layer's routed experts by the ``experts_per_token`` that a
    token visits; everything else (embeddings, attention, shared experts) is active.
    """
    h = arch.hidden_size
    embedding = arch.vocab_size * h + (arch.position_embeddings + arch.token_type_embeddings) * h
    embedding += _norm_params(arch, h) if arch.embedding_norm else 0
    lm_head = 0
    if arch.lm_head and not arch.tied_embeddings:
        lm_head = arch.vocab_size * h + arch.vocab_size * arch.lm_head_bias
    layers = tuple(layer_params(arch, i) for i in range(arch.num_layers))
    layers_total = sum(lp.total for lp in layers)
    total = embedding + lm_head + layers_total + _other_params(arch)
    inactive = 0
    if arch.experts is not None:
        idle = arch.experts.num_experts - arch.experts.experts_per_token
        inactive = sum(lp.expert_one * idle for lp in layers if lp.experts)
    kinds = tuple(dict.fromkeys(layers))
    index = {kind: i for i, kind in enumerate(kinds)}
    return ParamCount(
        total=total,
        active=total - inactive,
        embedding=embedding,
        lm_head=lm_head,
        layers=layers,
        other=total - embedding - lm_head - layers_total,
        layers_total=layers_total,
        layer_kinds=kinds,
        layer_kind_of=tuple(index[lp] for lp in layers),
        tower=_encoder_stack(arch) + _vision_params(arch.vision),
        tower_matrices=_encoder_matrices(arch) + _vision_matrices(arch.vision),
    )
