"""Speed: serving latency and throughput, and training step time, from a calibrated roofline.

Serving (one replica; docs/methodology.md section 7):

    engine step S(B, c, x) = max(t_mem(B, c), t_dec(B, c) + t_pre(x)) + comm(B + x) + overhead
      t_mem = (weights read (experts a batch touches) + B x KV bytes of a c-token sequence)
              / (bandwidth x eff_bw)
      t_dec = (2 x active matrix parameters x B + 4 x q_width x c x layers x B)
              / (peak x eff_step),  eff_step = eff_decode x FP8/INT8 share x width factor
      t_pre = FLOPs of x prompt tokens / (peak x eff_prefill)  (the rate the TTFT rows fit)
    prefill(T tokens) = weights / bandwidth + flops / (peak x eff_prefill) + all-reduces
    TTFT = prefill(prompt) + request overhead
    loaded step (continuous batching, chunked prefill; Sarathi-Serve, vLLM's scheduler):
      lambda = B x prompt / output prompt tokens arrive per step; a step carries a chunk
      c = min(max(prompt, lambda), budget - B) in a share p = lambda / c of the steps;
      E[step] = (1 - p) S(B, ctx, 0) + p S(B, ctx, c); output tokens/s = B / E[step];
      TPOT = E[step]. p > 1: prefill-bound, every step carries c: B / (p S(B, ctx, c)).
    static batching: B x output / (S(0, 0, B x prompt) + (output - 1) S(B, ctx, 0))

Training (Narayanan et al. 2021; PaLM, Chowdhery et al. 2022, appendix B for MFU):

    model FLOPs per token = 6 x N + 12 x layers x q_width x seq     (N: active matrix params)
                            LoRA / QLoRA: 4 x N + 6 x adapters + the same attention
    hardware FLOPs add the recomputed forward pass (2 N + 4 x layers x q_width x seq for full)
    step = compute / (1 - pipeline bubble) + TP all-reduces + exposed data-parallel traffic
    MFU = model FLOPs per second per device / peak

Every efficiency comes from ``data/calibration.yaml`` (``speed``), fitted to the reference set.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TypeVar

from eksplain.catalog import Model
from eksplain.comms import Link, all_gather_s, all_reduce_s, all_to_all_s
from eksplain.hardware import Accelerator
from eksplain.model import Architecture
from eksplain.parallel import Parallelism, stage_layers

__all__ = [
    "DeviceRates",
    "ServingEfficiency",
    "ServingSpeed",
    "SpeedCalibration",
    "TrainingSetup",
    "TrainingSpeed",
    "compute_dtype",
    "encode_flops",
    "engine_step_s",
    "serving_speed",
    "static_batch_tokens_per_s",
    "step_times",
    "tp_comm_s",
    "training_flops_per_token",
    "training_speed",
]

ACTIVATION_BYTES = 2  # activations travel in 16 bits


@dataclass(frozen=True)
class ServingEfficiency:
    """Fractions of peak that serving kernels reach on one family of accelerators."""

    decode_bandwidth_efficiency: float
    quantized_bandwidth_efficiency: float  # weight-only 4-bit formats dequantize on the fly
    decode_compute_efficiency: float
    prefill_compute_efficiency: float
    step_overhead_s: float  # per decode step: scheduling, launches, sampling
    ttft_overhead_s: float  # per request before its first token: admission, tokenizing, launch
    low_precision_step_scale: float  # share of the FP8/INT8 (doubled) peak batched steps realize
    step_width_half: float  # batched-step efficiency grows as h / (h + this) ...
    step_width_reference: float  # ... normalised to 1 at this width (where it was fitted)


def _width_factor(hidden: int, half: float, reference: float) -> float:
    """How much better (or worse) a model's matmuls run than a ``reference``-wide one's."""
    if half <= 0:
        return 1.0
    return (hidden / (hidden + half)) / (reference / (reference + half))


@dataclass(frozen=True)
class SpeedCalibration:
    """Serving and training efficiencies by accelerator family (data/calibration.yaml)."""

    serving: tuple[tuple[str, ServingEfficiency], ...]
    training_compute_efficiency: tuple[tuple[str, float], ...]
    width_half: float  # hidden size at which matmuls reach half of their large-size efficiency
    training_low_precision_scale: float  # share of FP8's doubled peak that training realizes
    dp_overlap: float  # share of data-parallel traffic hidden behind compute

    def serving_for(self, architecture: str) -> ServingEfficiency:
        return _by_family(self.serving, architecture)

    def training_efficiency(self, architecture: str, hidden: int, dtype: str) -> float:
        """Family efficiency x h / (h + width_half): small matmuls reach less of the peak."""
        eff = _by_family(self.training_compute_efficiency, architecture)
        eff *= hidden / (hidden + self.width_half)
        return eff * (self.training_low_precision_scale if dtype in ("fp8", "int8") else 1.0)


T = TypeVar("T")


def _by_family(table: tuple[tuple[str, T], ...], architecture: str) -> T:
    """The entry whose family prefixes the accelerator's architecture, else ``default``."""
    rows = dict(table)
    for family, value in rows.items():
        if architecture.lower().startswith(family):
            return value
    return rows["default"]


@dataclass(frozen=True)
class DeviceRates:
    """What one device can do for one workload: peak FLOP/s in the compute type, bandwidth."""

    peak_flops: float
    bandwidth_bytes_per_s: float
    compute_dtype: str


def compute_dtype(acc: Accelerator, weight_format: str) -> str:
    """The data type the matrix units run in: FP8/INT8 where the format and hardware allow it,
    else 16-bit (weight-only formats dequantize to 16 bits). Falls back to fp16 when no bf16
    peak is published (T4, V100)."""
    if weight_format in ("fp8", "int8") and acc.peak(weight_format):
        return weight_format
    return "bf16" if acc.peak("bf16") else "fp16"


def rates(acc: Accelerator, weight_format: str, proxy: Accelerator | None = None) -> DeviceRates:
    """Peak and bandwidth of a device; ``proxy`` supplies peaks a datasheet does not publish."""
    dtype = compute_dtype(proxy or acc, weight_format)
    peak = acc.peak(dtype) or (proxy.peak(dtype) if proxy else None) or 0.0
    return DeviceRates(peak * 1e12, float(acc.memory_bandwidth_bytes_per_s), dtype)


# ---------------------------------------------------------------------------------------------
# Serving


@dataclass(frozen=True)
class ServingShape:
    """Per-device sizes of one replica that the speed model reads."""

    weight_bytes: int  # weights on the most loaded device
    expert_bytes: int  # the routed-expert part of weight_bytes
    kv_bytes_per_token: float  # KV cache per token per device (all layers of the stage)
    matrix_params: float  # active matrix parameters per token per device, LM head included
    attention_width: float  # q_width x layers per device (attention FLOPs per context token)
    layers: int  # layers on the device's stage
    quantized_weights: bool
    tower_bytes: int = 0  # encoder stack / vision tower in weight_bytes: no decode step reads it
    encoder_params: float = 0.0  # encoder matrix parameters per prompt token per device


@dataclass(frozen=True)
class ServingSpeed:
    """Latency and throughput of one replica at one concurrency."""

    batch: int
    ttft_s: float
    tpot_s: float
    decode_tokens_per_s: float  # all sequences of the batch together
    prefill_tokens_per_s: float
    requests_per_s: float
    output_tokens_per_s: float
    decode_bound: str  # "memory" or "compute"
    critical_batch: int | None  # batch from which decode is compute-bound
    curve: tuple[tuple[int, float, float], ...]  # (batch, decode tokens/s, TPOT s)


def serving_shape(model: Model, weight_bytes: int, kv_bytes_per_token: float,
                  par: Parallelism, quantized: bool) -> ServingShape:
    arch, params = model.architecture, model.params
    stage = max(stage_layers(arch.num_layers, par.pp), key=len)
    per_token = 0.0
    experts = 0
    matrices = 0
    k = arch.experts.experts_per_token if arch.experts else 0
    for lp, n in params.kinds_in(stage):
        dense = lp.attn_q_o + lp.attn_kv + lp.attn_replicated + lp.mlp + lp.shared_experts
        # Each token's k experts are computed once across the TP ranks that share its batch:
        # EP only moves that work between ranks (to where the experts live), and with EP over
        # the DP ranks every rank computes other ranks' tokens, so balanced per-rank work stays
        # k experts / TP per token (EP > TP does not shrink it further).
        per_token += n * (dense + lp.expert_one * k) / par.tp
        experts += n * lp.experts
        matrices += n * lp.matrices
    per_token += _lm_head_matmul(arch) / par.tp
    a = arch.attention
    width = (a.num_heads * (a.head_dim + (a.v_head_dim or a.head_dim)) / 2) / par.tp
    expert_share = experts / max(matrices, 1)
    tower_bytes, encoder = _tower(model, par) if stage.start == 0 else (0, 0.0)
    return ServingShape(
        weight_bytes=weight_bytes,
        expert_bytes=round(weight_bytes * expert_share),
        kv_bytes_per_token=kv_bytes_per_token,
        matrix_params=per_token,
        attention_width=width * len(stage),
        layers=len(stage),
        quantized_weights=quantized,
        tower_bytes=tower_bytes,
        encoder_params=encoder,
    )


def _tower(model: Model, par: Parallelism) -> tuple[int, float]:
    """(bytes, encoder matrix parameters) per first-stage device of the encoder stack or vision
    tower. An encoder-decoder encodes the prompt, and a vision tower the images, once per request
    at prefill; decode steps read only the decoder. The tower is held at 16 bits, as memory.py
    holds it for every format but FP32 (whose decode steps this undercounts by half the tower).
    Image tokens are not modelled (requests carry no images), so a vision tower adds no FLOPs."""
    p = model.params
    elements = p.tower - p.tower_matrices + p.tower_matrices / par.tp
    encoder = p.tower_matrices / par.tp if model.architecture.encoder_layers else 0.0
    return round(elements * 2), encoder


def _lm_head_matmul(arch: Architecture) -> int:
    """Parameters of the LM head's vocab x h matmul: every generated token pays for it, tied to
    the embedding or not (Kaplan et al. 2020, arXiv:2001.08361, Table 1 counts it; Megatron-LM
    2021's FLOPs formula has its V / (12 h l) term). Encoders have none: their embedding is a
    lookup and nothing projects back onto the vocabulary."""
    return arch.vocab_size * arch.hidden_size if arch.lm_head else 0


def _experts_touched(arch: Architecture, batch: int) -> float:
    """Expected share of routed experts a batch reads, with uniform routing."""
    if arch.experts is None:
        return 1.0
    e, k = arch.experts.num_experts, arch.experts.experts_per_token
    return 1 - (1 - k / e) ** batch


def tp_comm_s(tokens: float, arch: Architecture, shape: ServingShape, par: Parallelism,
               link: Link | None) -> float:
    """Two all-reduces of the hidden states per layer under tensor parallelism, and, with
    expert parallelism, two all-to-alls per MoE layer (dispatch to the experts and back)."""
    if link is None:
        return 0.0
    buffer = tokens * arch.hidden_size * ACTIVATION_BYTES
    time = 2 * shape.layers * all_reduce_s(buffer, par.tp, link) if par.tp > 1 else 0.0
    if par.ep > 1 and arch.experts is not None:
        moe_layers = len(arch.moe_layers) * shape.layers / arch.num_layers
        routed = buffer * arch.experts.experts_per_token
        time += 2 * moe_layers * all_to_all_s(routed, par.ep, link)
    return time


def _prompt_context(arch: Architecture, tokens: int) -> float:
    """Mean tokens each prompt token attends to: tokens / 2 under a causal mask, all of them in a
    bidirectional encoder (BERT, Devlin et al. 2019: every token attends to every token)."""
    return tokens / 2 if arch.causal else float(tokens)


def _prefill_flops(arch: Architecture, shape: ServingShape, tokens: float, prompt: int) -> float:
    """FLOPs of ``tokens`` prompt tokens of ``prompt``-token prompts: 2 per matrix (and encoder)
    parameter, and 4 x attention width per attended token (``_prompt_context``)."""
    return tokens * (2 * shape.matrix_params + 2 * shape.encoder_params
                     + 4 * shape.attention_width * _prompt_context(arch, prompt))


def step_times(model: Model, shape: ServingShape, r: DeviceRates, cal: ServingEfficiency,
                batch: int, context: float, prefill: tuple[float, int]) -> tuple[float, float]:
    """(memory seconds, compute seconds) of one engine step that decodes a token for each of
    ``batch`` sequences of ``context`` tokens and prefills ``prefill`` = (tokens, prompt length).

    Decode work runs at the batched-step rate: the decode efficiency, times the share of the
    FP8/INT8 peak that batched steps realize, times the width factor. Prompt tokens in the same
    step run at the prefill rate (``prefill_compute_efficiency`` of the full peak, the rate the
    TTFT rows fit): a chunk of hundreds of tokens is a large matmul whatever shares its step.
    The two add: t_comp = t_dec + t_pre (Sarathi-Serve, Agrawal et al. 2024, arXiv:2403.02310,
    section 3: a hybrid batch's prefill chunk is compute-bound and the decodes piggyback on
    it). Values in data/calibration.yaml, speed.serving.
    """
    arch = model.architecture
    weights = shape.weight_bytes - shape.tower_bytes - shape.expert_bytes * (
        1 - _experts_touched(arch, batch))
    bw = r.bandwidth_bytes_per_s
    bw_eff = cal.quantized_bandwidth_efficiency if shape.quantized_weights else (
        cal.decode_bandwidth_efficiency)
    t_mem = weights / (bw * bw_eff) + batch * context * shape.kv_bytes_per_token / (
        bw * cal.decode_bandwidth_efficiency)
    tokens, prompt = prefill
    flops = batch * (2 * shape.matrix_params + 4 * shape.attention_width * context)
    scale = cal.low_precision_step_scale if r.compute_dtype in ("fp8", "int8") else 1.0
    scale *= _width_factor(arch.hidden_size, cal.step_width_half, cal.step_width_reference)
    t_dec = flops / (r.peak_flops * cal.decode_compute_efficiency * scale)
    t_pre = _prefill_flops(arch, shape, tokens, prompt) / (
        r.peak_flops * cal.prefill_compute_efficiency) if tokens else 0.0
    return t_mem, t_dec + t_pre


def engine_step_s(model: Model, shape: ServingShape, r: DeviceRates, cal: ServingEfficiency,
                  work: tuple[int, float, float, int], par: Parallelism,
                  link: Link | None) -> float:
    """Seconds of one engine step doing ``work`` = (decoding sequences, their mean context,
    prompt tokens, prompt length): max(memory, compute) (``step_times``) + TP all-reduces of
    every token of the step + the step overhead, times the pipeline stages."""
    batch, context, tokens, prompt = work
    t_mem, t_comp = step_times(model, shape, r, cal, batch, context, (tokens, prompt))
    comm = tp_comm_s(batch + tokens, model.architecture, shape, par, link)
    return (max(t_mem, t_comp) + comm + cal.step_overhead_s) * par.pp


def _decode_step(model: Model, shape: ServingShape, r: DeviceRates, cal: ServingEfficiency,
                 batch: int, context: float, par: Parallelism,
                 link: Link | None) -> tuple[float, float, float]:
    """(step seconds, memory seconds, compute seconds) of one decode step for ``batch``."""
    t_mem, t_comp = step_times(model, shape, r, cal, batch, context, (0.0, 0))
    step = engine_step_s(model, shape, r, cal, (batch, context, 0.0, 0), par, link)
    return step, t_mem, t_comp


def prefill_s(model: Model, shape: ServingShape, r: DeviceRates, cal: ServingEfficiency,
              tokens: int, par: Parallelism, link: Link | None) -> float:
    """Seconds to prefill one prompt of ``tokens`` tokens (``_prompt_context`` for attention).

    Reading the weights and computing on a short prompt do not overlap well, so the two add.
    """
    flops = _prefill_flops(model.architecture, shape, tokens, tokens)
    # Prefill's large matmuls reach the full FP8/INT8 peak: the FP8 TTFT rows (TensorRT-LLM,
    # NIM) fit it, and the batched-step share (low_precision_step_scale) would put four of them
    # 37-48 % over (tried; docs/methodology.md section 7).
    t_comp = flops / (r.peak_flops * cal.prefill_compute_efficiency)
    t_mem = shape.weight_bytes / (r.bandwidth_bytes_per_s * cal.decode_bandwidth_efficiency)
    comm = tp_comm_s(tokens, model.architecture, shape, par, link)
    return (t_comp + t_mem + comm) * par.pp


def _critical_batch(model: Model, shape: ServingShape, r: DeviceRates, cal: ServingEfficiency,
                    context: float, par: Parallelism) -> int | None:
    """Smallest power-of-two batch at which a decode step is compute-bound, or None when reading
    the KV cache keeps it memory-bound up to 4,096 sequences (long contexts)."""
    batch = 1
    while batch <= 4096:
        _, t_mem, t_comp = _decode_step(model, shape, r, cal, batch, context, par, None)
        if t_comp >= t_mem:
            return batch
        batch *= 2
    return None


def _loaded_step(model: Model, shape: ServingShape, r: DeviceRates, cal: ServingEfficiency,
                 load: tuple[int, int, int], par: Parallelism, link: Link | None,
                 token_budget: int | None) -> tuple[float, float]:
    """(output tokens/s, TPOT seconds) of a replica in steady state under continuous batching.

    Finished sequences are replaced, so lambda = B x prompt / output prompt tokens arrive per
    step. The engine does not spread them evenly: vLLM's V1 scheduler (``Scheduler.schedule``,
    vllm/v1/core/sched/scheduler.py: running requests first, each
    ``num_new_tokens = min(num_new_tokens, token_budget)``, then waiting ones while budget is
    left; ``long_prefill_token_threshold`` is off by default) and TensorRT-LLM's in-flight
    batching put a waiting prompt, up to the token budget left after the decodes (budget - B),
    into the next step. So a step carries a chunk of
    c = min(max(prompt, lambda), budget - B) tokens in a share p = lambda / c of the steps, the
    others decode only, and the mean step is E = (1 - p) S(0) + p S(c) (``engine_step_s``);
    every running sequence waits for it, so it is both the TPOT under load and B / throughput.
    When p > 1 prompts arrive faster than one chunk a step prefills them: every step carries c
    and throughput is B / (p S(c)). ``token_budget`` None: no budget (c = max(prompt, lambda)).
    """
    batch, prompt, output = load
    context = prompt + output / 2
    arrivals = batch * prompt / max(output, 1)
    room = max(token_budget - batch, 1) if token_budget is not None else math.inf
    chunk = min(max(prompt, arrivals), room)
    share = arrivals / chunk if chunk else 0.0

    def step(tokens: float) -> float:
        return engine_step_s(model, shape, r, cal, (batch, context, tokens, prompt), par, link)

    if share <= 1:
        mean = (1 - share) * step(0.0) + share * step(chunk)
        return batch / mean, mean
    full = step(chunk)
    return batch / (share * full), full


def static_batch_tokens_per_s(model: Model, shape: ServingShape, r: DeviceRates,
                              cal: ServingEfficiency, load: tuple[int, int, int],
                              par: Parallelism, link: Link | None) -> float:
    """Output tokens/s of static batching (one batch at a time, as TensorRT-LLM 0.9's
    gptSessionBenchmark runs): one step prefills all B x prompt tokens and yields each
    sequence's first token, then output - 1 decode steps at the mean context; the batch
    finishes together. B x output / (S(0, 0, B x prompt) + (output - 1) S(B, ctx, 0))."""
    batch, prompt, output = load
    first = engine_step_s(model, shape, r, cal, (0, 0.0, float(batch * prompt), prompt), par,
                          link)
    decode = engine_step_s(model, shape, r, cal, (batch, prompt + output / 2, 0.0, 0), par, link)
    return batch * output / (first + max(output - 1, 0) * decode)


def encode_flops(model: Model, shape: ServingShape, batch: int, prompt: int) -> float:
    """FLOPs of one encoder forward pass over ``batch`` prompts of ``prompt`` tokens (no
    generation): 2 per matrix parameter per token, and 4 x attention width per attended token
    (``_prompt_context``: every token in a bidirectional encoder). The GPU speed model and the
    CPU one (``eksplain.cpu``) share it."""
    context = _prompt_context(model.architecture, prompt)
    return batch * prompt * (2 * shape.matrix_params + 4 * shape.attention_width * context)


def _encode_only(model: Model, shape: ServingShape, r: DeviceRates, cal: ServingEfficiency,
                 load: tuple[int, int, int], par: Parallelism, link: Link | None,
                 ) -> ServingSpeed:
    """Embeddings and encoders: no generation; a batch of prompts is one forward pass."""
    batch, prompt, _ = load
    one = prefill_s(model, shape, r, cal, prompt, par, link)
    flops = encode_flops(model, shape, batch, prompt)
    # Prefill's large matmuls reach the full FP8/INT8 peak: the FP8 TTFT rows (TensorRT-LLM,
    # NIM) fit it, and the batched-step share (low_precision_step_scale) would put four of them
    # 37-48 % over (tried; docs/methodology.md section 7).
    t_comp = flops / (r.peak_flops * cal.prefill_compute_efficiency)
    t_mem = shape.weight_bytes / (r.bandwidth_bytes_per_s * cal.decode_bandwidth_efficiency)
    step = (t_comp + t_mem + cal.step_overhead_s) * par.pp
    return ServingSpeed(
        batch=batch, ttft_s=one + cal.ttft_overhead_s, tpot_s=0.0, decode_tokens_per_s=0.0,
        prefill_tokens_per_s=batch * prompt / step, requests_per_s=batch / step,
        output_tokens_per_s=0.0, decode_bound="compute" if t_comp > t_mem else "memory",
        critical_batch=None, curve=(),
    )


def serving_speed(model: Model, shape: ServingShape, r: DeviceRates, cal: ServingEfficiency,
                  load: tuple[int, int, int], par: Parallelism, link: Link | None,
                  token_budget: int | None = None) -> ServingSpeed:
    """Speed of one replica serving ``load`` = (concurrent sequences, prompt, output tokens).

    TTFT is that of a request's own prefill; TPOT and throughput are those of the steady state
    of continuous batching at that concurrency (``_loaded_step``), whose prefill chunks are
    bounded by the engine's ``token_budget`` (``Calibration.token_budget``). One sequence
    alone prefills, then decodes: its TPOT is the decode step. ``curve`` holds decode steps.
    """
    batch, prompt, output = load
    if output == 0:
        return _encode_only(model, shape, r, cal, load, par, link)
    context = prompt + output / 2
    step, t_mem, t_comp = _decode_step(model, shape, r, cal, batch, context, par, link)
    first = prefill_s(model, shape, r, cal, prompt, par, link)
    if batch > 1:
        out_rate, tpot = _loaded_step(model, shape, r, cal, load, par, link, token_budget)
    else:
        out_rate, tpot = 1 / (step + first / max(output, 1)), step
    curve = []
    b = 1
    while b <= max(batch, 1):
        t, _, _ = _decode_step(model, shape, r, cal, b, context, par, link)
        curve.append((b, b / t, t))
        b *= 2
    return ServingSpeed(
        batch=batch,
        ttft_s=first + cal.ttft_overhead_s,
        tpot_s=tpot,
        decode_tokens_per_s=batch / step,
        prefill_tokens_per_s=prompt / first if first else 0.0,
        requests_per_s=out_rate / output,
        output_tokens_per_s=out_rate,
        decode_bound="compute" if t_comp > t_mem else "memory",
        critical_batch=_critical_batch(model, shape, r, cal, context, par),
        curve=tuple(curve),
    )


# ---------------------------------------------------------------------------------------------
# Training


@dataclass(frozen=True)
class TrainingSetup:
    """A training step: sizes per device and how the devices talk."""

    seq_len: int
    micro_batch: int
    microbatches: int  # gradient-accumulation steps (pipeline micro-batches)
    parallel: Parallelism
    recompute: str
    sharded: bool  # FSDP / ZeRO-3: parameters are gathered every step
    trainable_fraction: float  # 1 for full fine-tuning; LoRA: adapter parameters / total
    intra_link: Link | None
    inter_link: Link | None
    devices_per_node: int
    method: str = "full"  # "full", or "lora" / "qlora": a frozen base with trained adapters
    frozen_bits: float = 16.0  # bits per frozen base parameter as FSDP gathers it (QLoRA: NF4)


@dataclass(frozen=True)
class TrainingSpeed:
    step_time_s: float
    tokens_per_step: int
    tokens_per_s_per_device: float
    tflops_per_device: float  # model FLOPs achieved per device
    mfu: float
    compute_s: float
    communication_s: float  # exposed (not hidden behind compute)
    bubble_fraction: float


def _active_matrix_params(model: Model) -> float:
    arch, params = model.architecture, model.params
    k = arch.experts.experts_per_token if arch.experts else 0
    total = 0.0
    for lp, n in params.kinds_in(range(arch.num_layers)):
        dense = lp.attn_q_o + lp.attn_kv + lp.attn_replicated + lp.mlp + lp.shared_experts
        total += n * (dense + lp.expert_one * k)
    return total + _lm_head_matmul(arch)


def training_flops_per_token(model: Model, seq_len: int, recompute: str, method: str,
                             adapter_params: float = 0.0) -> tuple[float, float]:
    """(model FLOPs, hardware FLOPs) per token, plus the recomputed forward for hardware FLOPs.

    Full training: 6N + 12·L·q·s: forward 2N, backward 4N, half of it the activations'
    gradients and half the weights' (Narayanan et al. 2021, arXiv:2104.04473, appendix on
    FLOPs). LoRA / QLoRA freeze the base, whose weights need no gradients: 4N, plus 6 per
    trained adapter parameter (Hu et al. 2021). Attention has no weights: 12·L·q·s stays.
    """
    arch = model.architecture
    n = _active_matrix_params(model)
    q = arch.attention.num_heads * arch.attention.head_dim
    attention = 12 * arch.num_layers * q * seq_len
    frozen = method != "full"
    adapters = adapter_params if frozen else 0.0
    model_flops = (4 if frozen else 6) * n + 6 * adapters + attention
    forward = 2 * (n + adapters)
    extra = {"full": forward + attention / 3, "selective": attention / 3}.get(recompute, 0.0)
    return model_flops, model_flops + extra


def _adapter_params(model: Model, s: TrainingSetup) -> float:
    return 0.0 if s.method == "full" else s.trainable_fraction * model.params.total


def _dp_traffic_s(model: Model, s: TrainingSetup) -> float:
    """Gradient reduction (and FSDP/ZeRO-3 parameter gathers) per optimizer step.

    Gradients are reduced in 16 bits. Sharded, every parameter is all-gathered before forward
    and again before backward, and the gradients reduce-scattered (an all-gather's cost), once
    per step; a LoRA / QLoRA base is gathered at ``frozen_bits`` but has no gradients.
    """
    par = s.parallel
    ranks = par.dp * par.cp
    if ranks <= 1:
        return 0.0
    link = s.inter_link if par.devices > s.devices_per_node and s.inter_link else s.intra_link
    if link is None:
        return 0.0
    split = par.tp * par.pp
    grad_bytes = model.params.total * s.trainable_fraction * 2 / split
    gathered = grad_bytes
    if s.method != "full":
        gathered += model.params.total * s.frozen_bits / 8 / split
    if s.sharded:
        return 2 * all_gather_s(gathered, ranks, link) + all_gather_s(grad_bytes, ranks, link)
    return all_reduce_s(grad_bytes, ranks, link)


def training_speed(model: Model, setup: TrainingSetup, rates_: DeviceRates,
                   efficiency: float, dp_overlap: float) -> TrainingSpeed:
    """One optimizer step: compute at a calibrated efficiency plus exposed communication."""
    par = setup.parallel
    tokens_device = setup.micro_batch * setup.seq_len * setup.microbatches / par.cp
    model_flops, hw_flops = training_flops_per_token(
        model, setup.seq_len, setup.recompute, setup.method, _adapter_params(model, setup))
    per_device = hw_flops * tokens_device / (par.tp * par.pp)
    compute = per_device / (rates_.peak_flops * efficiency)
    bubble = (par.pp - 1) / (setup.microbatches + par.pp - 1)
    compute /= 1 - bubble
    tp = 0.0
    if par.tp > 1 and setup.intra_link is not None:
        arch = model.architecture
        buffer = setup.micro_batch * setup.seq_len / par.cp * arch.hidden_size * ACTIVATION_BYTES
        layers = max(len(r) for r in stage_layers(arch.num_layers, par.pp))
        tp = 4 * layers * setup.microbatches * all_reduce_s(buffer, par.tp, setup.intra_link)
    dp = max(0.0, _dp_traffic_s(model, setup) - dp_overlap * compute)
    step = compute + tp + dp
    tokens_step = round(setup.micro_batch * setup.seq_len * setup.microbatches * par.dp)
    model_rate = model_flops * tokens_device / (par.tp * par.pp) / step
    return TrainingSpeed(
        step_time_s=step,
        tokens_per_step=tokens_step,
        tokens_per_s_per_device=tokens_step / step / par.devices,
        tflops_per_device=model_rate / 1e12,
        mfu=model_rate / rates_.peak_flops,
        compute_s=compute,
        communication_s=tp + dp,
        bubble_fraction=bubble,
    )
