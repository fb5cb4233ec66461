"""The estimate use case: memory, speed and cost of one model on one hardware choice.

enumerate nothing, decide nothing: take one configuration (``EstimateRequest``), run the memory,
speed and cost estimators on it, and return an ``Estimate`` whose ``to_dict()`` is the JSON
contract of docs/json.md.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from eksplain.calibration import Calibration, load_calibration
from eksplain.catalog import Model, resolve_model
from eksplain.checkpoint import (
    Checkpoint,
    checkpoint_plan,
    failure_rate,
    find_storage,
    load_storage,
)
from eksplain.comms import inter_node_link, intra_node_link
from eksplain.compute import (
    DeviceRates,
    ServingSpeed,
    TrainingSetup,
    TrainingSpeed,
    rates,
    serving_shape,
    serving_speed,
    training_speed,
)
from eksplain.cost import Cost, NodePlan, Throughput, cost, node_plan
from eksplain.cpu import (
    CpuProcessor,
    cpu_calibration,
    cpu_compute_dtype,
    cpu_device,
    cpu_encode_speed,
    host_memory_bytes,
    pod_cores,
    processor_of,
    unsupported_cpu_format,
)
from eksplain.datafiles import read_yaml
from eksplain.errors import InputError
from eksplain.hardware import (
    Accelerator,
    HardwareCatalog,
    HardwareChoice,
    InstanceType,
    find_accelerator,
    find_instance,
    resolve_hardware,
)
from eksplain.memory import (
    LORA_TARGETS,
    KvCapacity,
    MemoryBreakdown,
    ServingConfig,
    TrainingConfig,
    kv_bytes_per_context_token,
    kv_element_bits,
    largest_fitting,
    lora_parameters,
    serving_memory,
    training_memory,
    weight_bytes,
)
from eksplain.parallel import Parallelism
from eksplain.units import normalise_dtype, parse_count

__all__ = ["Estimate", "EstimateRequest", "Speed", "check_context", "run_estimate",
           "unsupported_format", "weight_format"]

_WEIGHT_FORMATS = {"awq", "gptq", "nf4", "int8-wo", "awq-int8", "gptq-int8"}

# A pre-quantized checkpoint's (quant_method, bits) -> its weight format (data/quantization.yaml).
_PRE_QUANTIZED = {
    ("awq", 4): "awq", ("awq", 8): "awq-int8", ("gptq", 4): "gptq", ("gptq", 8): "gptq-int8",
    ("bitsandbytes", 4): "nf4", ("bitsandbytes", 8): "int8-wo", ("fp8", 8): "fp8",
    ("int8", 8): "int8", ("int8-wo", 8): "int8-wo",
}


class EstimateRequest(BaseModel):
    """Inputs of ``eksplain estimate``: model and hardware, and defaults for everything else."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(min_length=1, description="catalogue id/alias, path to a config.json, "
                       "or a config.json inline as a JSON object")
    hardware: str = Field(min_length=1, description="accelerator name or EC2 instance type")
    devices: int | None = Field(default=None, ge=1)
    task: Literal["inference", "training", "embedding"] = Field(
        default="inference", description="embedding: inference with no output tokens")
    dtype: str = "bf16"
    kv_dtype: str = "auto"
    batch: int = Field(default=1, ge=1)
    seq_len: int = Field(default=4096, ge=1)
    tp: int = Field(default=1, ge=1)
    pp: int = Field(default=1, ge=1)
    dp: int | None = Field(default=None, ge=1)
    cp: int = Field(default=1, ge=1)
    ep: int = Field(default=1, ge=1)
    zero: int = Field(default=0, ge=0, le=3)
    fsdp: Literal["none", "full", "hybrid"] = "none"
    method: Literal["full", "lora", "qlora"] = "full"
    lora_rank: int = Field(default=16, ge=1)
    optimizer: Literal["adamw", "adamw-8bit", "sgd", "adafactor"] = "adamw"
    recompute: Literal["none", "selective", "full"] = "none"
    precision: Literal["mixed", "bf16", "fp32"] = "mixed"
    engine: Literal["vllm", "sglang", "trtllm", "hf", "neuron"] = "vllm"
    gpu_memory_utilization: float | None = Field(default=None, gt=0, le=1)
    max_num_seqs: int | None = Field(default=None, ge=1)
    max_num_batched_tokens: int | None = Field(default=None, ge=1)
    flash_attention: bool = True
    # speed and cost
    input_tokens: int | None = Field(default=None, ge=1)
    output_tokens: int | None = Field(default=None, ge=0, description="0: embeddings")
    tpot_target_s: float | None = Field(default=None, gt=0)
    tokens: str | None = Field(default=None, description="training data size, e.g. 300B")
    global_batch: int | None = Field(default=None, ge=1, description="sequences per step")
    region: str = "us-east-1"
    capacity_type: Literal["on-demand", "spot"] = "on-demand"
    utilization: float = Field(default=1.0, gt=0, le=1)
    storage: str = "fsx-lustre"


@dataclass(frozen=True)
class Storage:
    """Where the model's weights (serving) or checkpoints (training) are kept, and its price."""

    storage: str
    stored_bytes: int
    usd_per_month: float | None


@dataclass(frozen=True)
class Speed:
    serving: ServingSpeed | None
    max_batch_for_tpot: int | None
    training: TrainingSpeed | None
    time_to_train_s: float | None


@dataclass(frozen=True)
class Estimate:
    """The answer of ``estimate``: memory per device, fit, limits, speed and cost."""

    request: EstimateRequest
    model: Model
    choice: HardwareChoice
    parallel: Parallelism
    memory: MemoryBreakdown
    kv: KvCapacity | None
    fits: bool
    max_batch: int
    max_seq_len: int
    seq_len: int  # tokens per sequence the estimate is for (prompt + output when given)
    weight_format: str
    speed: Speed
    cost: Cost
    storage: Storage
    checkpoint: Checkpoint | None
    notes: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """The JSON contract (docs/json.md); keys and types are stable."""
        from eksplain.serialize import estimate_dict

        return estimate_dict(self)


# ---------------------------------------------------------------------------------------------


def weight_format(dtype: str, model: Model) -> str:
    """The storage format of the weights: a pre-quantized checkpoint's, else ``--dtype``."""
    q = model.quantization
    if q is not None and dtype in ("bf16", "auto"):
        if q.method == "compressed-tensors":
            # no config_groups to read the scheme from: taken as 8-bit FP8, llm-compressor's
            # most common one; W8A8 int8 stores as many bytes, W4A16 half as many (a note says so)
            return "fp8"
        known = _PRE_QUANTIZED.get((q.method, q.bits))
        if known is not None:
            return known
        return q.method if q.method in _WEIGHT_FORMATS | {"fp8"} else "bf16"
    if dtype.lower() in _WEIGHT_FORMATS:
        return dtype.lower()
    return normalise_dtype(dtype)


@functools.cache
def _min_compute_capabilities() -> dict[tuple[str, str], tuple[int, int]]:
    """(format, task) -> the oldest NVIDIA compute capability that runs it (quantization.yaml)."""
    out = {}
    for name, row in read_yaml("quantization.yaml")["formats"].items():
        for task, key in (("inference", "min_compute_capability"),
                          ("training", "min_compute_capability_training")):
            value = row.get(key) or row.get("min_compute_capability")
            if value:
                major, minor = str(value).split(".")
                out[(name, task)] = (int(major), int(minor))
    return out


def _cc(capability: tuple[int, int]) -> str:
    return f"{capability[0]}.{capability[1]}"


def unsupported_format(fmt: str, accelerator: Accelerator, cal: Calibration,
                       task: str = "inference") -> str | None:
    """Why ``fmt`` cannot run on ``accelerator``, or None: no engine kernels for its vendor, or
    an NVIDIA GPU older than the format's minimum compute capability."""
    if not cal.format(fmt).runs_on(accelerator.vendor):
        vendors = [f.name for f in cal.formats if f.runs_on(accelerator.vendor)]
        return (f"{fmt} weights have no kernels on {accelerator.vendor} accelerators "
                f"({accelerator.name}); formats that run there: {', '.join(vendors)}")
    need = _min_compute_capabilities().get((fmt, task))
    have = accelerator.compute_capability
    if need is None or have is None or have >= need:
        return None
    what = "training in" if task == "training" else "serving"
    return (f"{what} {fmt} needs NVIDIA compute capability {_cc(need)} or newer; "
            f"{accelerator.name} has {_cc(have)}")


def _check_format(req: EstimateRequest, fmt: str, accelerator: Accelerator,
                  cal: Calibration) -> None:
    used = fmt
    if req.task == "training":  # what training computes in: --precision, QLoRA's NF4 base
        used = "nf4" if req.method == "qlora" else {"fp32": "fp32", "bf16": "bf16"}.get(
            req.precision, fmt)
    why = unsupported_format(used, accelerator, cal, req.task)
    if why is None:
        return
    if used == "nf4" and fmt != "nf4":
        hint = "QLoRA needs bitsandbytes (NVIDIA); use --method lora"
    elif used != fmt:
        hint = f"--precision {req.precision} needs {used} arithmetic; use --precision mixed"
    elif accelerator.vendor != "NVIDIA" or accelerator.compute_capability is None:
        hint = "pick another --dtype, or an NVIDIA GPU"
    elif used == "bf16":
        hint = "use --dtype fp16; GPUs before Ampere have no bf16 arithmetic"
    else:
        hint = "pick another --dtype (fp16 runs on every NVIDIA GPU), or a newer GPU"
    raise InputError(why + ".", hint=hint)


def _parallelism(req: EstimateRequest, devices: int) -> Parallelism:
    """DP: serving replicas that the devices hold, or the data-parallel degree of training."""
    dp = req.dp or max(devices // (req.tp * req.pp * req.cp), 1)
    return Parallelism(tp=req.tp, pp=req.pp, dp=dp, cp=req.cp, ep=req.ep)


def check_context(model: Model, tokens: int) -> None:
    """InputError when ``tokens`` per sequence exceed the model's maximum context."""
    limit = model.architecture.max_context
    if tokens > limit:
        arch = model.architecture
        scaling = arch.rope_scaling_factor
        rope = arch.position_embeddings == 0 and arch.causal and not arch.encoder_layers
        note = f"; its config already applies rope scaling x{scaling:g}" if scaling else (
            "; rope scaling can extend it when the engine supports it" if rope else "")
        raise InputError(
            f"{tokens:,} tokens per sequence is more than the model's maximum context of "
            f"{limit:,}{note}.",
            hint="lower --seq-len or --input-tokens/--output-tokens",
        )


def _serving_config(req: EstimateRequest, fmt: str, par: Parallelism, batch: int,
                    seq_len: int, budget: int) -> ServingConfig:
    """``budget``: the step's token budget (``_token_budget``), which vLLM's memory profiling
    runs a batch of."""
    return ServingConfig(
        weight_format=fmt, kv_dtype=req.kv_dtype, batch=batch, seq_len=seq_len, parallel=par,
        engine="hf" if req.engine == "hf" else "vllm",
        gpu_memory_utilization=req.gpu_memory_utilization, max_num_seqs=req.max_num_seqs,
        max_num_batched_tokens=budget,
    )


def _training_config(req: EstimateRequest, par: Parallelism, batch: int, seq_len: int,
                     devices_per_node: int) -> TrainingConfig:
    return TrainingConfig(
        precision=req.precision, micro_batch=batch, seq_len=seq_len, parallel=par,
        zero=req.zero, fsdp=req.fsdp, devices_per_node=devices_per_node,
        method=req.method, lora_rank=req.lora_rank,
        lora_targets=LORA_TARGETS, optimizer=req.optimizer, recompute=req.recompute,
        flash_attention=req.flash_attention, microbatches=_microbatches(req, par),
    )


def _microbatches(req: EstimateRequest, par: Parallelism) -> int:
    if req.global_batch is None:
        return 1
    per_step = req.batch * par.dp
    if req.global_batch % per_step:
        raise InputError(
            f"--global-batch {req.global_batch} is not a multiple of --batch x DP = {per_step}.",
            hint=f"use a multiple of {per_step}",
        )
    return req.global_batch // per_step




@dataclass(frozen=True)
class _Context:
    req: EstimateRequest
    model: Model
    choice: HardwareChoice
    catalog: HardwareCatalog
    cal: Calibration
    par: Parallelism
    fmt: str
    capacity: int


def _plan(ctx: _Context) -> NodePlan:
    return node_plan(ctx.catalog, ctx.choice.accelerator.id, ctx.choice.devices,
                     ctx.choice.instance, ctx.req.region, ctx.req.capacity_type)


def _rates(ctx: _Context, fmt: str) -> DeviceRates:
    """Peaks and bandwidth; unpublished peaks come from the calibration's stand-in part."""
    acc = ctx.choice.accelerator
    stand_in = ctx.cal.peak_proxy(acc.id)
    proxy = find_accelerator(ctx.catalog, stand_in) if stand_in else None
    r = _fp32_rates(acc, proxy) if fmt == "fp32" else rates(acc, fmt, proxy)
    if r.peak_flops <= 0:
        raise InputError(f"No published {r.compute_dtype} peak for {acc.id}.",
                         hint="pick an accelerator with datasheet peaks")
    return r


def _fp32_rates(acc: Accelerator, proxy: Accelerator | None) -> DeviceRates:
    """FP32 matmuls run at the FP32 peak, not on 16-bit tensor cores: PyTorch leaves TF32 off
    for matmuls by default since 1.12 (``torch.backends.cuda.matmul.allow_tf32 = False``,
    pytorch.org/docs/stable/notes/cuda.html, "TensorFloat-32 (TF32) on Ampere devices")."""
    peak = acc.peak("fp32") or (proxy.peak("fp32") if proxy else None) or 0.0
    return DeviceRates(peak * 1e12, float(acc.memory_bandwidth_bytes_per_s), "fp32")


def _training_compute(req: EstimateRequest, fmt: str, acc: Accelerator) -> str:
    """The matmul format of a training step: fp32 for ``--precision fp32``; FP8 for ``--dtype
    fp8`` (float8 linears, as torchao/torchtitan train) where FP8 outruns bf16 (trn1 lists 190
    TFLOP/s for both); else 16-bit (mixed, bf16, LoRA and QLoRA, whose frozen 4-bit base
    dequantizes to 16 bits)."""
    if req.precision == "fp32":
        return "fp32"
    faster = (acc.peak("fp8") or 0.0) > (acc.peak("bf16") or 0.0)
    return "fp8" if fmt == "fp8" and faster else "bf16"


def _token_budget(ctx: _Context) -> int:
    """Tokens one engine step may compute: ``--max-num-batched-tokens``, else the engine's
    default on the device (the same value the speed model, ``render`` and ``simulate`` use)."""
    acc = ctx.choice.accelerator
    return ctx.req.max_num_batched_tokens or ctx.cal.token_budget_for(
        acc.id, acc.memory_bytes, ctx.req.engine)


def _serving_speed(ctx: _Context, max_batch: int,
                   budget: int) -> tuple[ServingSpeed | None, int | None]:
    req, acc = ctx.req, ctx.choice.accelerator
    if req.input_tokens is None or req.output_tokens is None:
        return None, None
    prompt, output = req.input_tokens, req.output_tokens
    fmt = ctx.cal.format(ctx.fmt)
    kv_bits = kv_element_bits(req.kv_dtype, fmt)  # the same width the memory model caches
    # A decode step reads each sequence's cache at the mean context prompt + output / 2 (the
    # context compute.serving_speed uses); windowed layers hold, and so read, only their window.
    kv_per_token = kv_bytes_per_context_token(ctx.model.architecture, kv_bits,
                                              prompt + output / 2, ctx.par)
    shape = serving_shape(
        ctx.model, weight_bytes(ctx.model, fmt, ctx.par, ctx.cal.engine("vllm").vocab_padding),
        kv_per_token, ctx.par, fmt.weight_only)
    r = _rates(ctx, ctx.fmt)
    eff = ctx.cal.speed.serving_for(acc.architecture)
    link = intra_node_link(acc, ctx.cal.links) if ctx.par.model_devices * ctx.par.ep > 1 else None

    def run(batch: int) -> ServingSpeed:
        return serving_speed(ctx.model, shape, r, eff, (batch, prompt, output), ctx.par, link,
                             budget)

    best = None
    if req.tpot_target_s is not None and max_batch and output:
        best = largest_fitting(lambda b: run(b).tpot_s <= (req.tpot_target_s or 0), max_batch)
    return run(req.batch), best


def _frozen_bits(req: EstimateRequest, cal: Calibration) -> float:
    """Bits per frozen base parameter as FSDP gathers it: NF4 with its scales for QLoRA."""
    if req.method != "qlora":
        return 16.0
    elements = 1 << 24  # a large matrix: scales and double quantisation at their average
    return cal.format("nf4").matrix_bits(elements) / elements


def _training_speed(ctx: _Context, plan: NodePlan) -> TrainingSpeed:
    req, acc, par = ctx.req, ctx.choice.accelerator, ctx.par
    setup = TrainingSetup(
        seq_len=req.seq_len, micro_batch=req.batch, microbatches=_microbatches(req, par),
        parallel=par, recompute=req.recompute, sharded=req.fsdp != "none" or req.zero == 3,
        trainable_fraction=1.0 if req.method == "full" else _lora_fraction(ctx),
        intra_link=intra_node_link(acc, ctx.cal.links),
        inter_link=inter_node_link(plan.instance, ctx.cal.links),
        devices_per_node=max(plan.instance.accelerator_count, 1),
        method=req.method, frozen_bits=_frozen_bits(req, ctx.cal),
    )
    r = _rates(ctx, _training_compute(req, ctx.fmt, acc))
    eff = ctx.cal.speed.training_efficiency(acc.architecture, ctx.model.architecture.hidden_size,
                                            r.compute_dtype)
    return training_speed(ctx.model, setup, r, eff, ctx.cal.speed.dp_overlap)


def _lora_fraction(ctx: _Context) -> float:
    adapters = lora_parameters(ctx.model.architecture, ctx.req.lora_rank, LORA_TARGETS)
    return adapters / ctx.model.params.total


def _checkpoint_bytes(ctx: _Context) -> int:
    """Weights in 16 bits and fp32 master weights with two moments (AdamW): 14 bytes/param;
    LoRA saves its adapters with their fp32 states only (16 bytes each)."""
    if ctx.req.method != "full":
        return lora_parameters(ctx.model.architecture, ctx.req.lora_rank, LORA_TARGETS) * 16
    return ctx.model.params.total * 14


def _storage(req: EstimateRequest, stored: int) -> Storage:
    option = find_storage(load_storage(), req.storage)
    price = option.price_usd_per_gb_month
    return Storage(option.id, stored, stored / 1e9 * price if price is not None else None)


def _serving(ctx: _Context) -> Estimate:
    req = ctx.req
    seq = req.input_tokens + req.output_tokens if (
        req.input_tokens is not None and req.output_tokens is not None) else req.seq_len
    check_context(ctx.model, seq)
    budget = _token_budget(ctx)
    mem = serving_memory(ctx.model, ctx.capacity,
                         _serving_config(req, ctx.fmt, ctx.par, req.batch, seq, budget),
                         ctx.cal, ctx.choice.devices)
    speed, best = _serving_speed(ctx, mem.kv.max_batch, budget)
    plan = _plan(ctx)
    replicas = ctx.par.dp
    out_rate = speed.output_tokens_per_s * replicas if speed else 0.0
    # Input tokens/s = requests/s x prompt, which also prices embeddings (no output tokens).
    in_rate = speed.requests_per_s * replicas * (req.input_tokens or 0) if speed else 0.0
    money = cost(plan, Throughput(out_rate, in_rate), req.utilization,
                 ctx.cal.eks_control_plane_usd_per_hour, req.region, req.capacity_type)
    return Estimate(
        request=req, model=ctx.model, choice=ctx.choice, parallel=ctx.par,
        memory=mem.breakdown, kv=mem.kv, fits=mem.fits, max_batch=mem.kv.max_batch,
        max_seq_len=mem.kv.max_seq_len, seq_len=seq, weight_format=ctx.fmt,
        speed=Speed(speed, best, None, None), cost=money,
        storage=_storage(req, weight_bytes(ctx.model, ctx.cal.format(ctx.fmt), Parallelism())),
        checkpoint=None, notes=_notes(ctx, plan),
    )


def _training(ctx: _Context, limits: bool) -> Estimate:
    req, cal, model = ctx.req, ctx.cal, ctx.model
    check_context(model, req.seq_len)
    devices = ctx.choice.devices
    plan = _plan(ctx)
    per_node = max(plan.instance.accelerator_count, 1)  # hybrid FSDP shards inside a node

    def memory(batch: int, seq: int) -> MemoryBreakdown:
        cfg = _training_config(req, ctx.par, batch, seq, per_node)
        return training_memory(model, ctx.capacity, cfg, cal, devices).breakdown

    mem = memory(req.batch, req.seq_len)
    speed = _training_speed(ctx, plan)
    tokens = parse_count(req.tokens) if req.tokens else None
    seconds = tokens / (speed.tokens_per_s_per_device * ctx.par.devices) if tokens else None
    money = cost(plan, Throughput(hours=(seconds or 0) / 3600), req.utilization,
                 cal.eks_control_plane_usd_per_hour, req.region, req.capacity_type)
    check = checkpoint_plan(_checkpoint_bytes(ctx), ctx.par.devices, plan.nodes,
                            find_storage(load_storage(), req.storage), failure_rate(),
                            plan.instance)
    return Estimate(
        request=req, model=model, choice=ctx.choice, parallel=ctx.par, memory=mem, kv=None,
        fits=mem.fits,
        max_batch=largest_fitting(lambda b: memory(b, req.seq_len).fits, 4096) if limits else 0,
        max_seq_len=largest_fitting(lambda s: memory(req.batch, s).fits,
                                    model.architecture.max_context) if limits else 0,
        seq_len=req.seq_len, weight_format=ctx.fmt, speed=Speed(None, None, speed, seconds),
        cost=money, storage=_storage(req, 2 * check.size_bytes), checkpoint=check,
        notes=_notes(ctx, plan),
    )


def _notes(ctx: _Context, plan: NodePlan) -> tuple[str, ...]:
    notes = []
    quant = ctx.model.quantization
    if quant is not None and quant.method == "compressed-tensors" and ctx.fmt == "fp8":
        notes.append("compressed-tensors checkpoint: weights taken as 8-bit (FP8); a W4A16 "
                     "checkpoint stores about half of that")
    if ctx.req.engine in ("sglang", "trtllm", "neuron"):
        notes.append(f"{ctx.req.engine}'s memory is estimated with vLLM's pool rules; only vLLM "
                     "and transformers are calibrated")
    if ctx.req.task == "training" and plan.nodes > 1 and not plan.instance.efa_interfaces:
        notes.append(f"{plan.nodes} nodes of {plan.instance.name} without EFA: gradients cross "
                     "nodes over TCP (ENA)")
    if ctx.req.task == "training" and ctx.req.storage == "fsx-lustre":
        notes.append("checkpoint times assume FSx for Lustre PERSISTENT_2-125 sized to hold two "
                     "checkpoints; provision more throughput per TiB to write faster")
    if ctx.req.task == "training" and not ctx.req.tokens:
        notes.append("no --tokens given: speed is per step only, with no time or cost to train")
    return tuple(notes)


def _embedding(req: EstimateRequest, model: Model) -> EstimateRequest:
    """``--task embedding``: inference with no output tokens, over ``--input-tokens`` (default:
    ``--seq-len`` up to the model's context, a full-length request)."""
    prompt = req.input_tokens or min(req.seq_len, model.architecture.max_context)
    return req.model_copy(update={"task": "inference", "output_tokens": 0,
                                  "input_tokens": prompt})


def _cpu_instance(catalog: HardwareCatalog, name: str) -> InstanceType | None:
    if "." not in name:
        return None
    inst = find_instance(catalog, name)
    return inst if inst.accelerator_id is None else None


def _cpu_processor(req: EstimateRequest, model: Model, inst: InstanceType,
                   fmt: str) -> CpuProcessor:
    """The CPU of ``inst``, once the request is one eksplain can estimate on it."""
    if req.output_tokens != 0:
        raise InputError(f"{inst.name} has no accelerator; on CPU-only instance types eksplain "
                         "estimates embeddings (encoder forward passes) only.",
                         hint="use --task embedding, or pick a GPU, Trainium or Inferentia "
                              "instance")
    if not model.architecture.is_encoder_only:
        raise InputError(f"{model.id} is not an encoder-only model; eksplain's CPU speed model "
                         "covers encoders (BERT, RoBERTa, XLM-R) only.",
                         hint="pick a GPU, Trainium or Inferentia instance")
    proc = processor_of(inst)
    why = unsupported_cpu_format(proc, fmt) if proc else "its CPU is not in cpu_processors.csv"
    if proc is None or why is not None:
        raise InputError(f"No CPU speed for {inst.name}: {why}.",
                         hint="use --dtype bf16 or int8 on a c7i, m7i or r7i instance type")
    return proc


def _cpu(req: EstimateRequest, model: Model, inst: InstanceType, catalog: HardwareCatalog,
         cal: Calibration) -> Estimate:
    """An embedding replica on a CPU-only node (eksplain.cpu): host RAM is the capacity, the
    node's matrix engine the speed; one replica per node."""
    fmt = weight_format(req.dtype, model)
    proc = _cpu_processor(req, model, inst, fmt)
    prompt = req.input_tokens or 1
    check_context(model, prompt)
    device = cpu_device(inst, proc, fmt)
    capacity = device.memory_bytes

    def need(batch: int, tokens: int) -> int:
        return host_memory_bytes(model, cal, fmt, (batch, tokens))

    weights = weight_bytes(model, cal.format(fmt), Parallelism())
    mem = MemoryBreakdown(weights, 0, need(req.batch, prompt) - weights, 0, 0, 0, capacity)
    peak = (device.peak(cpu_compute_dtype(fmt)) or 0.0) * 1e12
    speed = cpu_encode_speed(model, cal, fmt, peak, (req.batch, prompt))
    plan = node_plan(catalog, device.id, 1, inst, req.region, req.capacity_type)
    money = cost(plan, Throughput(0.0, speed.requests_per_s * prompt), req.utilization,
                 cal.eks_control_plane_usd_per_hour, req.region, req.capacity_type)
    eff = cpu_calibration().efficiency
    return Estimate(
        request=req, model=model, choice=HardwareChoice(device, 1, inst),
        parallel=Parallelism(), memory=mem, kv=None, fits=mem.fits,
        max_batch=largest_fitting(lambda b: need(b, prompt) <= capacity, 4096),
        max_seq_len=largest_fitting(lambda t: need(req.batch, t) <= capacity,
                                    model.architecture.max_context),
        seq_len=prompt, weight_format=fmt, speed=Speed(speed, None, None, None), cost=money,
        storage=_storage(req, weights), checkpoint=None,
        notes=(f"CPU: {proc.model}, {pod_cores(inst, proc):.2f} cores (the pod's share of the "
               f"node's CPU) at "
               f"node's CPU) at "
               f"{peak / 1e12:.1f} TOP/s {fmt} peak; encoder passes run at {eff:.1%} of it "
               "(calibrated to MLPerf BERT-Large on Xeon 8480+, docs/accuracy.md); memory is "
               "host RAM (the pod's share of the node's allocatable memory)",),
    )


def run_estimate(req: EstimateRequest, catalog: HardwareCatalog, limits: bool = True) -> Estimate:
    """Memory, speed and cost of one model on one hardware choice.

    ``limits=False`` skips the search for the largest training batch and context (the planner
    evaluates many candidates and does not need them). A CPU-only instance type estimates an
    embedding replica on its CPU (``_cpu``).
    """
    model = resolve_model(req.model)
    if req.task == "embedding":
        req = _embedding(req, model)
    cpu = _cpu_instance(catalog, req.hardware)
    if cpu is not None:
        return _cpu(req, model, cpu, catalog, load_calibration())
    choice = resolve_hardware(catalog, req.hardware, req.devices)
    cal = load_calibration()
    fmt = weight_format(req.dtype, model)
    _check_format(req, fmt, choice.accelerator, cal)
    ctx = _Context(
        req=req, model=model, choice=choice, catalog=catalog, cal=cal,
        par=_parallelism(req, choice.devices), fmt=fmt,
        capacity=cal.visible_bytes(choice.accelerator.id, choice.accelerator.memory_bytes),
    )
    return _serving(ctx) if req.task == "inference" else _training(ctx, limits)
