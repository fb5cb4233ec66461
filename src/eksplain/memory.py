"""Memory per device for serving and training.

Every formula is written out in docs/methodology.md with its source. In short:

* weights: per-group element counts (``model.count_parameters``) times the storage width of the
  weight format; projection matrices shard over TP (experts over EP), embeddings and the LM head
  shard over the (padded) vocabulary, norms and biases replicate; PP keeps the largest stage.
* KV cache: ``2 x layers x kv_heads_per_device x head_dim x bytes`` per token (GQA/MQA; KV heads
  replicate when fewer than TP), ``layers x (kv_lora_rank + rope_dim) x bytes`` for MLA;
  sliding-window layers hold at most their window.
* serving engines (vLLM semantics): a pool of ``gpu_memory_utilization x device memory`` minus
  weights, non-torch memory and the profiled activation peak holds KV blocks of ``block_size``
  tokens; the rest comes from calibration data.
* training: weights, gradients and optimizer states by precision and optimizer, sharded by
  ZeRO/FSDP over the data-parallel group; activations per layer after Korthikanti et al. 2022
  (arXiv:2205.05198), adapted to gated MLPs, GQA and FlashAttention; LoRA/QLoRA adapters.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from eksplain.calibration import Calibration, EngineCalibration, QuantFormat
from eksplain.catalog import Model
from eksplain.errors import InputError
from eksplain.model import Architecture, LayerParams, ParamCount
from eksplain.parallel import Parallelism, stage_layers, validate_parallelism
from eksplain.units import bits_to_bytes, dtype_bits

__all__ = [
    "LORA_TARGETS",
    "KvCapacity",
    "MemoryBreakdown",
    "ServingConfig",
    "ServingMemory",
    "TrainingConfig",
    "TrainingMemory",
    "kv_bytes_for_sequence",
    "kv_bytes_per_context_token",
    "kv_bytes_per_token",
    "kv_element_bits",
    "largest_fitting",
    "serving_memory",
    "training_memory",
    "weight_bytes",
    "zero3_gather_bytes",
]

OPTIMIZERS = ("adamw", "adamw-8bit", "sgd", "adafactor")
RECOMPUTE = ("none", "selective", "full")
METHODS = ("full", "lora", "qlora")
LORA_TARGETS = ("q", "k", "v", "o", "gate", "up", "down")


@dataclass(frozen=True)
class MemoryBreakdown:
    """Bytes per device by category; ``capacity_bytes`` is what the device offers."""

    weights_bytes: int
    kv_cache_bytes: int
    activations_bytes: int
    gradients_bytes: int
    optimizer_states_bytes: int
    overhead_bytes: int
    capacity_bytes: int

    @property
    def total_bytes(self) -> int:
        return (
            self.weights_bytes + self.kv_cache_bytes + self.activations_bytes
            + self.gradients_bytes + self.optimizer_states_bytes + self.overhead_bytes
        )

    @property
    def headroom_bytes(self) -> int:
        return self.capacity_bytes - self.total_bytes

    @property
    def fits(self) -> bool:
        return self.headroom_bytes >= 0


@dataclass(frozen=True)
class ServingConfig:
    weight_format: str = "bf16"
    kv_dtype: str = "auto"
    batch: int = 1
    seq_len: int = 4096
    parallel: Parallelism = Parallelism()
    engine: str = "vllm"
    gpu_memory_utilization: float | None = None
    max_num_seqs: int | None = None
    max_num_batched_tokens: int | None = None


@dataclass(frozen=True)
class KvCapacity:
    bytes_per_token: int
    pool_bytes: int
    block_size: int
    blocks: int
    capacity_tokens: int
    max_concurrency: float
    max_batch: int
    max_seq_len: int


@dataclass(frozen=True)
class ServingMemory:
    breakdown: MemoryBreakdown
    kv: KvCapacity
    budget_bytes: int
    non_torch_bytes: int
    cuda_graph_bytes: int

    @property
    def fits(self) -> bool:
        """The workload's KV cache fits the engine's pool, and the whole fits the device."""
        return self.kv.pool_bytes >= self.breakdown.kv_cache_bytes and self.breakdown.fits


@dataclass(frozen=True)
class TrainingConfig:
    precision: str = "mixed"  # mixed (bf16 compute, fp32 master) | bf16 | fp32
    micro_batch: int = 1
    seq_len: int = 4096
    parallel: Parallelism = Parallelism()
    zero: int = 0
    fsdp: str = "none"  # none | full | hybrid
    devices_per_node: int = 8
    method: str = "full"
    lora_rank: int = 16
    lora_targets: tuple[str, ...] = LORA_TARGETS
    optimizer: str = "adamw"
    recompute: str = "none"
    flash_attention: bool = True
    microbatches: int = 1
    loss_chunks: int = 1  # chunked cross-entropy (torchtune CEWithChunkedOutputLoss: 8)


# ---------------------------------------------------------------------------------------------
# Weights


def _small_bits(fmt: QuantFormat) -> int:
    """Width of embeddings, norms and biases: the format's width, but never below 16 bits."""
    return max(fmt.weight_bits, 16)


def _kv_heads_per_device(arch: Architecture, tp: int) -> float:
    """KV heads each TP rank holds: a share, or one whole head when TP exceeds the KV heads."""
    return max(arch.attention.num_kv_heads / tp, 1.0)


def _layer_matrix_elements(arch: Architecture, lp: LayerParams, par: Parallelism) -> float:
    """Elements of projection matrices of one layer held by one device."""
    tp = par.tp
    if arch.attention.is_mla:
        kv = lp.attn_kv / tp
    else:
        kv = lp.attn_kv * _kv_heads_per_device(arch, tp) / arch.attention.num_kv_heads
    experts = lp.experts / (par.ep if par.ep > 1 else tp)
    return (lp.attn_q_o + lp.mlp + lp.shared_experts) / tp + kv + lp.attn_replicated + experts


def _padded_vocab(vocab: int, padding: int, tp: int) -> int:
    step = padding * tp
    return math.ceil(vocab / step) * step


def _other_elements(params: ParamCount, par: Parallelism) -> int:
    """Elements of ``params.other`` one first-stage device holds, kept at the small width.

    The projection matrices of an encoder stack (T5) or a vision tower (Gemma 3, Llama 4) are
    split by TP like the decoder's. vLLM's SigLIP (Gemma 3), mllama and Llama 4 vision encoders
    build attention from QKVParallelLinear + RowParallelLinear and the MLP from
    ColumnParallelLinear + RowParallelLinear on the model's TP group (from memory of vLLM's
    source, not checked here: fairly sure; newer vLLM's ``--mm-encoder-tp-mode data`` replicates
    the tower instead, which this does not model). T5's encoder is assumed to follow the same
    Megatron split (less sure: vLLM serves T5 only through its encoder-decoder path). Norms,
    biases, patch and position embeddings, relative biases and the projector stay replicated.
    """
    return params.other - params.tower_matrices + math.ceil(params.tower_matrices / par.tp)


def _stage_bytes(
    model: Model, fmt: QuantFormat, par: Parallelism, layers: range, vocab_padding: int
) -> int:
    arch, params = model.architecture, model.params
    small = _small_bits(fmt)
    kinds = params.kinds_in(layers)
    matrix_bits = sum(
        n * fmt.matrix_bits(round(_layer_matrix_elements(arch, kind, par))) for kind, n in kinds
    )
    small_elements = sum(n * kind.small for kind, n in kinds)
    vocab_rows = _padded_vocab(arch.vocab_size, vocab_padding, par.tp) // par.tp
    first, last = layers.start == 0, layers.stop == arch.num_layers
    if first:
        extra_rows = params.embedding - arch.vocab_size * arch.hidden_size
        small_elements += vocab_rows * arch.hidden_size + extra_rows + _other_elements(params, par)
    if last and arch.lm_head and (not arch.tied_embeddings or not first):
        small_elements += vocab_rows * arch.hidden_size
    return bits_to_bytes(small_elements, small) + bits_to_bytes(matrix_bits, 1)


def weight_bytes(
    model: Model, fmt: QuantFormat, par: Parallelism = Parallelism(), vocab_padding: int = 1
) -> int:
    """Weight bytes on the most loaded device (largest pipeline stage)."""
    stages = stage_layers(model.architecture.num_layers, par.pp)
    return max(_stage_bytes(model, fmt, par, rng, vocab_padding) for rng in stages)


# ---------------------------------------------------------------------------------------------
# KV cache


def _kv_bytes_per_token_per_layer(arch: Architecture, kv_bits: int, tp: int) -> float:
    a = arch.attention
    if a.is_mla:  # the latent and the shared rope key; not split by TP in vLLM
        return (a.kv_lora_rank + a.qk_rope_head_dim) * kv_bits / 8
    per_layer = 2 * _kv_heads_per_device(arch, tp) * a.head_dim * kv_bits / 8
    return per_layer * (2 if arch.encoder_layers else 1)  # + cross-attention keys/values


def kv_bytes_per_token(arch: Architecture, kv_bits: int, par: Parallelism = Parallelism()) -> int:
    """KV-cache bytes one token occupies on one device, over the layers of the largest stage."""
    if arch.is_encoder_only:
        return 0
    layers = max(len(r) for r in stage_layers(arch.num_layers, par.pp))
    return round(layers * _kv_bytes_per_token_per_layer(arch, kv_bits, par.tp))


def kv_bytes_for_sequence(
    arch: Architecture, kv_bits: int, seq_len: int, par: Parallelism = Parallelism()
) -> int:
    """KV bytes for one sequence of ``seq_len`` tokens; sliding-window layers keep their window."""
    if arch.is_encoder_only:
        return 0
    per_layer = _kv_bytes_per_token_per_layer(arch, kv_bits, par.tp)
    stage = max(stage_layers(arch.num_layers, par.pp), key=len)
    if not arch.layer_windows:  # full attention everywhere: every layer keeps every token
        return round(len(stage) * seq_len * per_layer)
    tokens = sum(min(seq_len, arch.window(i) or seq_len) for i in stage)
    return round(tokens * per_layer)


def kv_bytes_per_context_token(
    arch: Architecture, kv_bits: int, context: float, par: Parallelism = Parallelism()
) -> float:
    """Mean KV bytes per token of a ``context``-token sequence: what a decode step reads for each
    token of its context. Below ``kv_bytes_per_token`` when sliding-window or chunked layers keep
    only their window (Gemma-3-27B at 100k tokens: 86 KB, not 508 KB)."""
    tokens = max(round(context), 1)
    return kv_bytes_for_sequence(arch, kv_bits, tokens, par) / tokens


def kv_element_bits(kv_dtype: str, fmt: QuantFormat) -> int:
    """Bits per cached K/V element: ``--kv-dtype``, or with ``auto`` the compute type's."""
    if kv_dtype == "auto":
        return 32 if fmt.compute == "fp32" else 16
    return dtype_bits(kv_dtype)


# ---------------------------------------------------------------------------------------------
# Serving


def _ffn_width(arch: Architecture) -> int:
    """Widest per-token MLP activation: a dense layer, or k routed experts plus shared ones."""
    width = arch.ffn.intermediate_size
    if arch.experts is not None:
        e = arch.experts
        width = max(width, e.experts_per_token * e.intermediate_size + e.shared_intermediate_size)
    return width


def _activation_per_token(arch: Architecture, eng: EngineCalibration, tp: int) -> float:
    """Activation bytes per token of a forward pass, the logits apart (see methodology)."""
    return (
        eng.act_bytes_per_token_hidden * arch.hidden_size
        + eng.act_bytes_per_token_intermediate * _ffn_width(arch) / tp
    )


def _activation_peak(
    arch: Architecture, eng: EngineCalibration, cfg: ServingConfig, tokens: int, seqs: int
) -> int:
    """Profiled activation peak of one forward pass over ``tokens`` tokens (see methodology)."""
    per_token = _activation_per_token(arch, eng, cfg.parallel.tp)
    vocab = _padded_vocab(arch.vocab_size, eng.vocab_padding, 1)  # gathered for sampling
    logit_rows = tokens if eng.full_sequence_logits else seqs
    if arch.is_encoder_only:
        logit_rows = 0
    return round(tokens * per_token + logit_rows * vocab * eng.logits_bytes_per_vocab_entry)


def _check_serving(model: Model, cfg: ServingConfig, devices: int) -> None:
    if cfg.batch < 1 or cfg.seq_len < 1:
        raise InputError("--batch and --seq-len must be positive.")
    util = cfg.gpu_memory_utilization
    if util is not None and not 0 < util <= 1:
        raise InputError(f"--gpu-memory-utilization must be in (0, 1], not {util}.")
    validate_parallelism(model.architecture, cfg.parallel, devices)


def serving_memory(
    model: Model, capacity: int, cfg: ServingConfig, cal: Calibration, devices: int = 1,
) -> ServingMemory:
    """Per-device memory of one serving replica under the engine's allocation rules.

    ``capacity`` is the memory a process sees on one device (``Calibration.visible_bytes``).
    """
    _check_serving(model, cfg, devices)
    arch, eng, fmt = model.architecture, cal.engine(cfg.engine), cal.format(cfg.weight_format)
    util = cfg.gpu_memory_utilization or eng.gpu_memory_utilization
    seqs = cfg.max_num_seqs or eng.max_num_seqs
    tokens = cfg.max_num_batched_tokens or eng.max_num_batched_tokens
    if eng.full_sequence_logits:
        tokens, seqs = cfg.batch * cfg.seq_len, cfg.batch
    weights = weight_bytes(model, fmt, cfg.parallel, eng.vocab_padding)
    activations = _activation_peak(arch, eng, cfg, tokens, seqs)
    non_torch = eng.non_torch_bytes_tp if cfg.parallel.tp * cfg.parallel.pp > 1 else (
        eng.non_torch_bytes
    )
    kv_bits = kv_element_bits(cfg.kv_dtype, fmt)
    kv_needed = cfg.batch * kv_bytes_for_sequence(arch, kv_bits, cfg.seq_len, cfg.parallel)
    budget = round(capacity * util)
    pool = max(budget - weights - activations - non_torch, 0)
    if kv_bytes_per_token(arch, kv_bits, cfg.parallel):
        kv = _kv_capacity(arch, kv_bits, cfg, pool, eng.block_size)
    else:
        kv = _no_cache_capacity(arch, eng, cfg, pool, budget - weights - non_torch)
    breakdown = MemoryBreakdown(
        weights_bytes=weights,
        kv_cache_bytes=kv_needed,
        activations_bytes=activations,
        gradients_bytes=0,
        optimizer_states_bytes=0,
        overhead_bytes=non_torch + eng.cuda_graph_bytes,
        capacity_bytes=capacity,
    )
    return ServingMemory(breakdown, kv, budget, non_torch, eng.cuda_graph_bytes)


def _kv_capacity(
    arch: Architecture, kv_bits: int, cfg: ServingConfig, pool: int, block_size: int
) -> KvCapacity:
    """Blocks of full-attention tokens (what vLLM logs as the KV cache size), and how many
    sequences they hold when windowed layers keep only their window: vLLM's maximum concurrency
    is blocks / blocks per request, counting a sliding-window layer's window only
    (v1/core/kv_cache_utils.py, ``get_max_concurrency_for_kv_cache_config``)."""
    per_token = kv_bytes_per_token(arch, kv_bits, cfg.parallel)
    blocks = pool // (per_token * block_size)
    capacity_tokens = blocks * block_size
    usable = capacity_tokens * per_token  # the bytes of whole blocks
    per_seq = kv_bytes_for_sequence(arch, kv_bits, cfg.seq_len, cfg.parallel)
    return KvCapacity(
        bytes_per_token=per_token,
        pool_bytes=pool,
        block_size=block_size,
        blocks=blocks,
        capacity_tokens=capacity_tokens,
        max_concurrency=usable / per_seq,
        max_batch=usable // per_seq,
        max_seq_len=_longest_sequence(arch, kv_bits, cfg, usable),
    )


def _no_cache_capacity(
    arch: Architecture, eng: EngineCalibration, cfg: ServingConfig, pool: int, free: int
) -> KvCapacity:
    """Limits of a model without a KV cache (encoders): nothing stays between steps.

    vLLM profiles a fixed token budget, so once that step fits (``pool`` > 0) the scheduler's
    ``max_num_seqs`` bounds the batch and the model's positions the sequence. Plain transformers
    runs the whole batch in one pass: ``free`` bytes (after weights and the CUDA context) hold
    that many tokens of activations.
    """
    if eng.full_sequence_logits:
        tokens = max(math.floor(free / _activation_per_token(arch, eng, cfg.parallel.tp)), 0)
        batch, longest = tokens // cfg.seq_len, min(tokens // cfg.batch, arch.max_context)
    elif pool > 0:
        batch, longest = cfg.max_num_seqs or eng.max_num_seqs, arch.max_context
    else:
        batch, longest = 0, 0
    return KvCapacity(0, pool, eng.block_size, 0, 0, float(batch), batch, longest)


def _longest_sequence(arch: Architecture, kv_bits: int, cfg: ServingConfig, usable: int) -> int:
    """Longest sequence (up to the model's context) of which ``cfg.batch`` fit ``usable`` bytes;
    KV bytes grow with the length, so bisect."""
    def fits(tokens: int) -> bool:
        return cfg.batch * kv_bytes_for_sequence(arch, kv_bits, tokens, cfg.parallel) <= usable

    return largest_fitting(fits, arch.max_context)


def largest_fitting(fits: Callable[[int], bool], limit: int) -> int:
    """Largest n in [1, limit] with fits(n), for a monotone ``fits``; 0 when even 1 does not.
    Doubles from 1, then bisects: O(log n) calls whatever the limit."""
    if not fits(1):
        return 0
    low, high = 1, 2
    while high <= limit and fits(high):
        low, high = high, high * 2
    high = min(high, limit + 1)  # fits(low); not fits(high), or high beyond the limit
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if fits(mid) else (low, mid)
    return low


# ---------------------------------------------------------------------------------------------
# Training


@dataclass(frozen=True)
class _StateWidths:
    """Bytes per parameter of each model state, before sharding."""

    weights: float
    grads_replicated: float  # 16-bit gradient buffer that ZeRO-1/2 keep whole
    grads_sharded: float  # gradients that ZeRO-2/3 or FSDP partition
    optimizer: float


def _optimizer_bytes(optimizer: str, state_bytes: int, hidden: int) -> float:
    """Optimizer state bytes per parameter (``state_bytes``: 4 for fp32 states, 2 for bf16)."""
    if optimizer == "adamw":
        return 2.0 * state_bytes  # first and second moments
    if optimizer == "adamw-8bit":
        return 2.0  # two 8-bit moments (bitsandbytes; block scales are < 1%)
    if optimizer == "sgd":
        return float(state_bytes)  # momentum
    if optimizer == "adafactor":
        return 2.0 * state_bytes / hidden  # row and column factors of each matrix
    raise InputError(f"Unknown optimizer {optimizer!r}.", hint="use " + ", ".join(OPTIMIZERS))


def _state_widths(cfg: TrainingConfig, hidden: int) -> _StateWidths:
    """Model-state widths for the precision regime (docs/methodology.md, "Training states").

    * mixed + ZeRO 1-3 (DeepSpeed): 16-bit weights, a 16-bit gradient buffer (not kept under
      ZeRO-3), and fp32 master weights, fp32 gradients and the moments in the optimizer partition
      (Rajbhandari et al. 2020; DeepSpeed memory estimators: 4P + 16P/N for ZeRO-2, 18P/N for
      ZeRO-3).
    * mixed + FSDP, or mixed without ZeRO (PyTorch AMP): fp32 weights and gradients, fp32 moments.
    * bf16 (pure, torchtune-style) and fp32: every state in that width.
    """
    if cfg.precision == "mixed" and cfg.zero > 0 and cfg.fsdp == "none":
        opt = 4 + 4 + _optimizer_bytes(cfg.optimizer, 4, hidden)  # master + fp32 grads + moments
        return _StateWidths(2, 0 if cfg.zero == 3 else 2, 0, opt)
    width = {"mixed": 4, "fp32": 4, "bf16": 2}.get(cfg.precision)
    if width is None:
        raise InputError(f"Unknown precision {cfg.precision!r}.", hint="use mixed, bf16 or fp32")
    return _StateWidths(width, 0, width, _optimizer_bytes(cfg.optimizer, width, hidden))


def _shard_group(cfg: TrainingConfig) -> int:
    """Devices the model states are sharded over (ZeRO/FSDP over data-parallel ranks)."""
    dp = cfg.parallel.dp * cfg.parallel.cp  # FSDP shards over DP x CP ranks (torchtitan)
    if cfg.fsdp == "hybrid":
        per_node = max(cfg.devices_per_node // (cfg.parallel.tp * cfg.parallel.pp), 1)
        return min(dp, per_node)
    return dp


def _trainable_elements(model: Model, par: Parallelism) -> tuple[int, int]:
    """(elements per device on the largest stage, largest single layer per device)."""
    arch = model.architecture
    fmt16 = QuantFormat("bf16", 16, 0, 0, 0, 0, 0, "bf16", ())
    per_device = weight_bytes(model, fmt16, par) // 2
    largest = max(
        round(_layer_matrix_elements(arch, lp, par)) + lp.small for lp in model.params.layer_kinds
    )
    return per_device, largest


def _lora_shape(arch: Architecture, target: str) -> tuple[int, int]:
    """(input width, output width) of an adaptable projection."""
    h, a = arch.hidden_size, arch.attention
    q, kv, i = a.num_heads * a.head_dim, a.num_kv_heads * a.head_dim, arch.ffn.intermediate_size
    shapes = {"q": (h, q), "k": (h, kv), "v": (h, kv), "o": (q, h), "gate": (h, i), "up": (h, i),
              "down": (i, h)}
    return shapes[target]


def lora_parameters(arch: Architecture, rank: int, targets: tuple[str, ...]) -> int:
    """Adapter parameters: ``rank x (in + out)`` per adapted matrix per layer (Hu et al. 2021)."""
    unknown = [t for t in targets if t not in LORA_TARGETS]
    if unknown:
        raise InputError(
            f"Unknown LoRA target(s) {unknown}.", hint="use " + ", ".join(LORA_TARGETS)
        )
    per_layer = sum(rank * sum(_lora_shape(arch, t)) for t in targets)
    return per_layer * arch.num_layers


def _activation_bytes_per_token_layer(arch: Architecture, cfg: TrainingConfig) -> float:
    """Stored activation bytes per token per layer in 16-bit.

    Korthikanti et al. 2022 (arXiv:2205.05198) count 34·h + 5·a·s bytes for GPT (4h GeLU MLP,
    dropout). Without dropout, with RMSNorm, GQA and a gated MLP, the tensors autograd keeps are:
    the two norm inputs and outputs (8h), q, k, v and the attention output (2·(2·q + 2·kv)), and
    the MLP's gate, up, activation and product (8i; 4i for a two-matrix MLP). Without
    FlashAttention the softmax output adds 4·a·s (scores and probabilities in 16 bits).

    ``selective`` is PyTorch's op-level selective checkpointing as torchtitan applies it: keep the
    layer input, the attention output and every second matmul output, recompute the rest; this
    also drops the attention scores (Korthikanti's selective recomputation).
    """
    a, h = arch.attention, arch.hidden_size
    q, kv = a.num_heads * a.head_dim, a.num_kv_heads * a.head_dim
    width = _ffn_width(arch)
    if cfg.recompute == "selective":
        matmul_outputs = 2 * (q + 2 * kv + 2 * h + (2 if arch.ffn.gated else 1) * width)
        return 2 * h + 2 * q + matmul_outputs / 2
    mlp = (8 if arch.ffn.gated else 4) * width
    attn_scores = 0 if cfg.flash_attention else 4 * a.num_heads * cfg.seq_len / cfg.parallel.cp
    return 8 * h + 2 * (2 * q + 2 * kv) + mlp + attn_scores


def _logits_bytes(
    arch: Architecture, cfg: TrainingConfig, tokens: float, cal: Calibration
) -> float:
    """The LM head's logits and the loss's fp32 copies, at the start of backward.

    16-bit logits exist whole; the fp32 copies, log-softmax and gradient exist one chunk at a time
    when the loss is computed in chunks.
    """
    if not arch.lm_head:
        return 0.0
    per_element = cal.training.logits_bytes_per_element
    per_element = 2 + (per_element - 2) / max(cfg.loss_chunks, 1)
    return tokens * arch.vocab_size / cfg.parallel.tp * per_element


def _training_activations(model: Model, cfg: TrainingConfig, cal: Calibration) -> int:
    arch, par = model.architecture, cfg.parallel
    tokens = cfg.micro_batch * cfg.seq_len / par.cp
    width = 2 if cfg.precision == "fp32" else 1  # the per-layer formulas count 16-bit tensors
    per_layer = _activation_bytes_per_token_layer(arch, cfg) * tokens / par.tp * width
    layers = max(len(r) for r in stage_layers(arch.num_layers, par.pp))
    in_flight = min(cfg.microbatches, par.pp)  # 1F1B keeps up to PP micro-batches per stage
    if cfg.recompute == "full":  # keep each layer's input; rebuild one layer at a time
        full = TrainingConfig(**{**cfg.__dict__, "recompute": "none"})
        one_layer = _activation_bytes_per_token_layer(arch, full) * tokens / par.tp * width
        stored = 2 * width * arch.hidden_size * tokens / par.tp * layers * in_flight + one_layer
    else:
        stored = per_layer * layers * in_flight
    return round(stored + _logits_bytes(arch, cfg, tokens, cal))


def zero3_gather_bytes(model: Model, cfg: TrainingConfig, cal: Calibration) -> int:
    """Unsharded 16-bit copies of the layers ZeRO-3/FSDP gathers at once (0 when unsharded)."""
    sharded = cfg.zero == 3 or cfg.fsdp != "none"
    if not sharded or _shard_group(cfg) <= 1:
        return 0
    _, largest_layer = _trainable_elements(model, cfg.parallel)
    return largest_layer * 2 * cal.training.zero3_prefetch_layers


def _check_training(model: Model, cfg: TrainingConfig, devices: int) -> None:
    if cfg.micro_batch < 1 or cfg.seq_len < 1:
        raise InputError("--batch and --seq-len must be positive.")
    if cfg.zero not in (0, 1, 2, 3):
        raise InputError(f"--zero must be 0, 1, 2 or 3, not {cfg.zero}.")
    for value, allowed, flag in (
        (cfg.fsdp, ("none", "full", "hybrid"), "--fsdp"),
        (cfg.method, METHODS, "--method"),
        (cfg.recompute, RECOMPUTE, "--recompute"),
        (cfg.optimizer, OPTIMIZERS, "--optimizer"),
    ):
        if value not in allowed:
            raise InputError(f"{flag} {value!r} is not one of {', '.join(allowed)}.")
    validate_parallelism(model.architecture, cfg.parallel, devices)


@dataclass(frozen=True)
class TrainingMemory:
    """A training step's peak per device, with the overhead split by where it lives.

    ``cuda_context_bytes`` and ``nccl_bytes`` are outside PyTorch's allocator (nvidia-smi shows
    them, ``torch.cuda.max_memory_reserved`` does not); ``allocator_headroom_bytes`` is reserved
    but not allocated (``max_memory_reserved`` shows it, ``max_memory_allocated`` does not).
    """

    breakdown: MemoryBreakdown
    cuda_context_bytes: int
    nccl_bytes: int
    gather_bytes: int
    allocator_headroom_bytes: int

    def measured_as(self, metric: str) -> int:
        """The peak a tool would report: ``nvml`` (nvidia-smi), ``reserved`` or ``allocated``."""
        total = self.breakdown.total_bytes
        if metric == "nvml":
            return total
        total -= self.cuda_context_bytes + self.nccl_bytes
        return total if metric == "reserved" else total - self.allocator_headroom_bytes


def training_memory(
    model: Model, capacity: int, cfg: TrainingConfig, cal: Calibration, devices: int = 1,
) -> TrainingMemory:
    """Peak per-device memory of a training step (full fine-tuning, LoRA or QLoRA).

    ``capacity`` is the memory a process sees on one device (``Calibration.visible_bytes``).
    """
    _check_training(model, cfg, devices)
    arch, tc = model.architecture, cal.training
    elements, _ = _trainable_elements(model, cfg.parallel)
    group = _shard_group(cfg)
    sharded = cfg.zero == 3 or cfg.fsdp != "none"
    if cfg.method == "full":
        w = _state_widths(cfg, arch.hidden_size)
        weights = elements * w.weights / (group if sharded else 1)
        grads = elements * (w.grads_replicated + w.grads_sharded / (
            group if (cfg.zero >= 2 or sharded) else 1))
        optimizer = elements * w.optimizer / (group if (cfg.zero >= 1 or sharded) else 1)
    else:
        base = cal.format("nf4" if cfg.method == "qlora" else "bf16")
        weights = weight_bytes(model, base, cfg.parallel) / (group if sharded else 1)
        adapters = lora_parameters(arch, cfg.lora_rank, cfg.lora_targets) / (
            cfg.parallel.tp * cfg.parallel.pp)
        weights += adapters * 4  # fp32 adapters (PEFT default autocast_adapter_dtype)
        grads = adapters * 4
        optimizer = adapters * _optimizer_bytes(cfg.optimizer, 4, arch.hidden_size)
    activations = _training_activations(model, cfg, cal)
    gather = zero3_gather_bytes(model, cfg, cal)
    nccl = tc.nccl_bytes if devices > 1 else 0
    headroom = round(tc.allocator_headroom_fraction * (weights + grads + optimizer + activations))
    breakdown = MemoryBreakdown(
        weights_bytes=round(weights),
        kv_cache_bytes=0,
        activations_bytes=activations,
        gradients_bytes=round(grads),
        optimizer_states_bytes=round(optimizer),
        overhead_bytes=round(tc.cuda_context_bytes + nccl + gather + headroom),
        capacity_bytes=capacity,
    )
    return TrainingMemory(breakdown, tc.cuda_context_bytes, nccl, gather, headroom)
