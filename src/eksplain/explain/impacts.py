"""Quantified impacts: what a glossary term means for one workload, in GiB, seconds and dollars.

Each impact is a function of a ``Workload`` (model, hardware, request shape) that runs the same
estimators as ``estimate`` and ``plan`` and returns a small table. ``IMPACTS`` maps glossary keys
to them (a dict registry); terms without a number have none and say what they drive instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from eksplain.calibration import load_calibration
from eksplain.catalog import Model
from eksplain.checkpoint import (
    checkpoint_plan,
    cold_start_seconds,
    failure_rate,
    load_storage,
    node_provisioning_seconds,
    read_seconds,
)
from eksplain.comms import ena_link, inter_node_link, intra_node_link
from eksplain.compute import TrainingSetup, rates, training_speed
from eksplain.errors import EksplainError
from eksplain.estimate import Estimate, EstimateRequest, run_estimate
from eksplain.hardware import HardwareCatalog, find_instance, load_catalog, resolve_hardware
from eksplain.memory import kv_bytes_for_sequence, kv_element_bits
from eksplain.parallel import Parallelism
from eksplain.units import GIB, format_duration

__all__ = ["IMPACTS", "Impact", "Workload", "fewest_devices"]

CONTEXTS = (2048, 8192, 32768, 131072)
BATCHES = (1, 8, 32, 128)
FORMATS = ("bf16", "fp8", "awq", "nf4")
COMPARE = ("p5.4xlarge", "g6e.xlarge", "g6.xlarge", "inf2.xlarge")  # one device each
TRAINING_TOKENS = 10**9
USEFUL_BATCH = 32  # requests a serving replica should hold at once to be worth its devices


@dataclass(frozen=True)
class Workload:
    """What the impacts are computed for; ``default`` marks a workload the user did not give."""

    model: Model
    model_name: str
    hardware: str
    default: bool
    input_tokens: int = 512
    output_tokens: int = 256
    devices: int | None = None  # tensor-parallel over this many devices; None: the hardware's
    sizing: str = ""  # how the device count was chosen, for the reader

    def describe(self) -> str:
        on = f"{self.devices} x {self.hardware}" if self.devices else self.hardware
        text = f"{self.model.id} on {on}"
        return text + (f" ({self.sizing})" if self.sizing else "")


@dataclass(frozen=True)
class Impact:
    title: str
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    notes: tuple[str, ...] = ()


def _gib(value: float) -> str:
    return f"{value / GIB:.2f}"


def _estimate(w: Workload, **changes: object) -> Estimate:
    fields: dict[str, object] = {
        "model": w.model_name, "hardware": w.hardware, "input_tokens": w.input_tokens,
        "output_tokens": w.output_tokens,
    }
    if w.devices is not None and "hardware" not in changes:
        fields.update(devices=w.devices, tp=w.devices)
    fields.update(changes)
    return run_estimate(EstimateRequest.model_validate(fields), load_catalog(), limits=False)


def attention(w: Workload) -> Impact:
    """KV cache per sequence at growing contexts, and how many such sequences the device holds."""
    if not w.model.architecture.causal:
        return Impact(f"{w.model.id} is an encoder", (), (), (
            "it reads its whole input at once and generates nothing, so it keeps no KV cache; "
            "its attention compute grows with the square of the input length "
            f"(at most {w.model.architecture.max_context:,} tokens)",))
    est = _estimate(w)
    kv_bits = kv_element_bits(est.request.kv_dtype, load_calibration().format(est.weight_format))
    per_token = est.kv.bytes_per_token if est.kv else 0
    pool = est.kv.pool_bytes if est.kv else 0
    rows = []
    for ctx in CONTEXTS:
        if ctx > w.model.architecture.max_context:
            continue
        per_seq = kv_bytes_for_sequence(w.model.architecture, kv_bits, ctx, est.parallel)
        fits = pool // per_seq if per_seq else 0
        rows.append((f"{ctx:,}", _gib(per_seq), f"{fits:,}"))
    notes = (f"{per_token / 1024:.0f} KiB per token per device; the engine's KV pool on "
             f"{est.choice.accelerator.id} is {_gib(pool)} GiB after "
             f"{_gib(est.memory.weights_bytes)} GiB of weights",
             "the cache grows linearly with context (attention's compute grows with its square)")
    return Impact("KV cache by context length",
                  ("context tokens", "KV GiB per sequence", "sequences that fit"),
                  tuple(rows), notes)


def batch(w: Workload) -> Impact:
    """Latency and throughput against the number of requests served together."""
    rows = []
    for b in BATCHES:
        est = _estimate(w, batch=b)
        s, c = est.speed.serving, est.cost
        if s is None or not est.fits:
            rows.append((str(b), "does not fit", "", ""))
            continue
        dollars = f"{c.usd_per_million_output_tokens:.3f}" if (
            c.usd_per_million_output_tokens is not None) else "unknown"
        rows.append((str(b), f"{s.tpot_s * 1000:.1f}", f"{s.output_tokens_per_s:,.0f}", dollars))
    return Impact(f"Batching {w.input_tokens}-token prompts with {w.output_tokens}-token answers",
                  ("concurrent requests", "TPOT ms", "output tokens/s", "$ per M output tokens"),
                  tuple(rows), ("more requests per step share the weight reads: throughput "
                                "rises, each token comes a little later",))


def _cheapest_fit(w: Workload, fmt: str, catalog: HardwareCatalog) -> str:
    priced = sorted((o.price_usd_per_hour, o.instance_type) for o in catalog.offerings
                    if o.region == "us-east-1" and o.capacity_type == "on-demand")
    heads = w.model.architecture.attention.num_heads
    for price, name in priced:
        inst = find_instance(catalog, name)
        n = inst.accelerator_count
        if not n or heads % n:
            continue
        try:
            est = _estimate(w, hardware=name, tp=n, dtype=fmt, batch=1)
        except EksplainError:
            continue
        if est.fits:
            return f"{name} (${price:.2f}/h)"
    return "none"


def quantization(w: Workload) -> Impact:
    """Weights, fit and speed by weight format, with the cheapest instance that holds each."""
    catalog = load_catalog()
    rows = []
    for fmt in FORMATS:
        cheapest = _cheapest_fit(w, fmt, catalog)
        try:
            est = _estimate(w, dtype=fmt)
        except EksplainError:  # no kernels for this format on the workload's accelerator
            rows.append((fmt, "-", "no kernels here", "-", cheapest))
            continue
        s = est.speed.serving
        tpot = f"{s.tpot_s * 1000:.1f}" if s and est.fits else "-"
        rows.append((fmt, _gib(est.memory.weights_bytes), "yes" if est.fits else "no", tpot,
                     cheapest))
    return Impact(f"Weight formats for {w.model.id} on {w.hardware}",
                  ("format", "weights GiB", "fits", "TPOT ms at batch 1", "cheapest that fits"),
                  tuple(rows), ("4-bit formats keep a 16-bit scale per group of weights, so they "
                                "take a little more than a quarter of bf16",))


def tensor_parallel(w: Workload) -> Impact:
    """Memory per device and decode time as tensor parallelism grows inside one node."""
    rows = []
    heads = w.model.architecture.attention.num_heads
    for tp in (1, 2, 4, 8):
        if heads % tp:
            continue
        try:
            est = _estimate(w, hardware="p5.48xlarge", devices=tp, tp=tp)
        except EksplainError:
            continue
        s = est.speed.serving
        rows.append((str(tp), _gib(est.memory.weights_bytes), "yes" if est.fits else "no",
                     f"{s.tpot_s * 1000:.1f}" if s and est.fits else "-"))
    return Impact(f"Tensor parallelism of {w.model.id} on p5.48xlarge (NVLink)",
                  ("TP", "weights GiB per device", "fits", "TPOT ms at batch 1"), tuple(rows),
                  ("each layer adds two all-reduces of the hidden states over NVLink",))


def bubble_fraction(stages: int, microbatches: int) -> float:
    """Idle share of a 1F1B pipeline: (p - 1) / (m + p - 1)."""
    return (stages - 1) / (microbatches + stages - 1)


def pipeline(w: Workload) -> Impact:
    rows = tuple((str(p), str(m), f"{bubble_fraction(p, m):.1%}")
                 for p in (2, 4, 8) for m in (8, 32))
    return Impact("Pipeline bubble", ("stages", "micro-batches", "time idle"), rows,
                  (f"{w.model.id} has {w.model.architecture.num_layers} layers to split into "
                   "stages; more micro-batches per step shrink the bubble",))


def data_parallel(w: Workload) -> Impact:
    """Training memory per device with 8 data-parallel ranks and each ZeRO stage or FSDP."""
    rows = []
    for label, extra in (("DDP (ZeRO-0)", {}), ("ZeRO-1", {"zero": 1}), ("ZeRO-2", {"zero": 2}),
                         ("ZeRO-3", {"zero": 3}), ("FSDP", {"fsdp": "full"})):
        est = _estimate(w, hardware="p5.48xlarge", task="training", seq_len=4096, **extra)
        m = est.memory
        states = m.weights_bytes + m.gradients_bytes + m.optimizer_states_bytes
        rows.append((label, _gib(states), _gib(m.total_bytes), "yes" if est.fits else "no"))
    return Impact(f"Model states of {w.model.id} over 8 H100s (p5.48xlarge)",
                  ("sharding", "weights+grads+optimizer GiB", "total GiB per device", "fits"),
                  tuple(rows), ("sharding divides the model states by the 8 ranks; activations "
                                "do not shrink",))


def efa(w: Workload) -> Impact:
    """A two-node training step with the gradients over EFA, and over plain TCP (ENA)."""
    catalog = load_catalog()
    inst = find_instance(catalog, "p5.48xlarge")
    acc = resolve_hardware(catalog, "p5.48xlarge", None).accelerator
    cal = load_calibration()
    efa_link = inter_node_link(inst, cal.links)
    rows = []
    for name, link in (("EFA", efa_link), ("ENA (TCP)", ena_link(inst, cal.links))):
        setup = TrainingSetup(seq_len=4096, micro_batch=1, microbatches=1,
                              parallel=Parallelism(dp=16), recompute="selective", sharded=True,
                              trainable_fraction=1.0, intra_link=intra_node_link(acc, cal.links),
                              inter_link=link, devices_per_node=8)
        eff = cal.speed.training_efficiency(acc.architecture, w.model.architecture.hidden_size,
                                            "bf16")
        speed = training_speed(w.model, setup, rates(acc, "bf16"), eff, cal.speed.dp_overlap)
        rows.append((name, f"{link.bus_bytes_per_s / 1e9:.1f}",
                     f"{speed.step_time_s:.2f}", f"{speed.communication_s:.2f}",
                     f"{speed.mfu:.0%}"))
    return Impact(f"Two p5.48xlarge nodes training {w.model.id} with FSDP, one 4,096-token "
                  "sequence per GPU per step",
                  ("network", "GB/s per GPU", "step s", "exposed comms s", "MFU"), tuple(rows),
                  ("FSDP gathers the parameters and reduces the gradients every step; what "
                   "compute cannot hide waits on the network, so without EFA it waits on TCP",))


def trainium(w: Workload) -> Impact:
    """Full fine-tuning on one Trainium node against one H100 node."""
    rows = []
    for name in ("trn1.32xlarge", "p5.48xlarge"):
        est = _estimate(w, hardware=name, task="training", seq_len=4096, fsdp="full",
                        recompute="selective", tokens=str(TRAINING_TOKENS))
        c = est.cost
        hours = (est.speed.time_to_train_s or 0) / 3600
        rows.append((name, est.choice.accelerator.id, _gib(est.memory.total_bytes),
                     "yes" if est.fits else "no", f"{hours:,.1f}" if hours else "-",
                     f"{c.usd_total:,.0f}" if c.usd_total is not None else "unknown"))
    return Impact(f"Full fine-tuning of {w.model.id} on 1B tokens, one node of each",
                  ("instance", "accelerator", "GiB per device", "fits", "hours", "dollars"),
                  tuple(rows))


def checkpoint(w: Workload) -> Impact:
    size = w.model.params.total * 14
    node = find_instance(load_catalog(), "p5.48xlarge")
    rows = []
    for option in load_storage():
        if option.write_bytes_per_s is None or option.id == "ecr":
            continue
        try:
            plan = checkpoint_plan(size, 64, 8, option, failure_rate(), node)
        except EksplainError:
            continue
        rows.append((option.id, format_duration(plan.write_s), format_duration(plan.interval_s),
                     f"{plan.overhead_fraction:.1%}"))
    return Impact(f"Checkpointing {w.model.id} ({size / 1e9:,.0f} GB: 14 bytes per parameter) "
                  "from 8 p5.48xlarge nodes (64 H100s)",
                  ("storage", "write time", "best interval", "time lost"), tuple(rows),
                  (f"failure rate {failure_rate():.2e} per GPU-day (Llama 3's run)",))


def _load_rows(est: Estimate) -> tuple[tuple[str, str], ...]:
    weights = est.memory.weights_bytes * est.parallel.model_devices
    inst = find_instance(load_catalog(), est.cost.instance_type)
    return tuple((option.id, f"{read_seconds(option, weights, inst):.1f}")
                 for option in load_storage() if option.read_bytes_per_s is not None)


def storage(w: Workload) -> Impact:
    """Seconds to load the model's weights from each storage option onto one node."""
    est = _estimate(w)
    return Impact(f"Loading {w.model.id}'s weights onto {est.cost.instance_type}",
                  ("storage", "seconds"), _load_rows(est),
                  ("network storage is capped by the instance's network (EBS by its EBS "
                   "bandwidth), FSx for Lustre also by its throughput at 1.2 TiB, its minimum",))


def cold_start(w: Workload) -> Impact:
    """Seconds before a new replica serves: weights from each storage + warm-up, on a node that
    has the image, and on a new node (+ node provisioning + image pull)."""
    pull, warmup = cold_start_seconds()
    node = node_provisioning_seconds()
    rows = tuple((name, f"{float(sec) + warmup:.0f}", f"{float(sec) + warmup + node + pull:.0f}")
                 for name, sec in _load_rows(_estimate(w)) if name != "instance-nvme")
    return Impact("Cold start of a new replica", ("model cache", "s, node with the image",
                                                  "s, new node"), rows,
                  (f"engine warm-up {warmup:.0f} s and image pull {pull:.0f} s from engine logs "
                   f"and ECR figures; a new node adds Karpenter's provisioning ({node:.0f} s, "
                   "one published report) and the image pull",
                   "scale-up must start before the queue grows: autoscale on the requests each "
                   "replica holds, running and waiting"))


def registry(w: Workload) -> Impact:
    pull, _ = cold_start_seconds()
    return Impact("Pulling a large serving image", ("image", "seconds"),
                  (("15-20 GB GPU serving image from ECR", f"{pull:.0f}"),),
                  ("lazy loading (SOCI) or a pre-pulled image on the node cuts this",))


def tokens(w: Workload) -> Impact:
    """What a million tokens cost on the workload's hardware."""
    est = _estimate(w, batch=32)
    c = est.cost
    out = c.usd_per_million_output_tokens
    inp = c.usd_per_million_input_tokens
    rows = (("input (prompt) tokens", f"{inp:.3f}" if inp is not None else "unknown"),
            ("output (generated) tokens", f"{out:.3f}" if out is not None else "unknown"))
    return Impact(f"Dollars per million tokens for {w.model.id} on {c.instance_type}, 32 requests"
                  " at once", ("tokens", "$ per million"), rows,
                  ("each row charges the whole bill to that kind of token: a replica does both "
                   "at once, so these are upper bounds, not parts of a sum",
                   "prices are per token, so the tokenizer's tokens per word scale the bill; "
                   "eksplain has no sourced tokens-per-word figures yet",))


def hardware_compare(w: Workload) -> Impact:
    """Dollars per million output tokens on one device of several kinds."""
    rows = []
    for name in COMPARE:
        try:
            est = _estimate(w, hardware=name, batch=32)
        except EksplainError:
            continue
        c, s = est.cost, est.speed.serving
        if not est.fits or s is None:
            rows.append((name, est.choice.accelerator.id, "does not fit", ""))
            continue
        dollars = c.usd_per_million_output_tokens
        rows.append((name, est.choice.accelerator.id, f"{s.tpot_s * 1000:.1f}",
                     f"{dollars:.3f}" if dollars is not None else "unknown"))
    return Impact(f"{w.model.id} on one device of each kind, 32 requests at once",
                  ("instance", "accelerator", "TPOT ms", "$ per M output tokens"), tuple(rows))


def parameters(w: Workload) -> Impact:
    p = w.model.params
    rows = tuple((fmt, f"{_estimate(w, dtype=fmt).memory.weights_bytes / GIB:.2f}")
                 for fmt in ("fp32", "bf16", "fp8", "awq"))
    return Impact(f"{w.model.id}: {p.total:,} parameters ({p.active:,} active per token)",
                  ("format", "weights GiB"), rows)


def training(w: Workload) -> Impact:
    """Training memory and the time and cost of 1B tokens on one p5.48xlarge."""
    rows = []
    for method in ("full", "lora", "qlora"):
        est = _estimate(w, hardware="p5.48xlarge", task="training", seq_len=4096,
                        method=method, fsdp="full" if method == "full" else "none",
                        recompute="selective", tokens=str(TRAINING_TOKENS))
        t, c = est.speed.training, est.cost
        hours = (est.speed.time_to_train_s or 0) / 3600
        rows.append((method, _gib(est.memory.total_bytes), "yes" if est.fits else "no",
                     f"{hours:,.1f}" if t else "-",
                     f"{c.usd_total:,.0f}" if c.usd_total is not None else "unknown"))
    return Impact(f"Training {w.model.id} on 1B tokens with one p5.48xlarge (8 H100s)",
                  ("method", "GiB per device", "fits", "hours", "dollars"), tuple(rows))


def embedding(w: Workload) -> Impact:
    batch = load_calibration().engine("vllm").embedding_batch
    est = _estimate(w, batch=batch, output_tokens=0)
    s = est.speed.serving
    hourly = est.cost.usd_per_hour
    per_million = "unknown"
    if s is not None and s.requests_per_s and hourly is not None:
        per_million = f"{hourly / (s.requests_per_s * 3600) * 1e6:.3f}"
    rows = (("requests/s per replica", f"{s.requests_per_s:,.0f}" if s else "-"),
            ("$ per million requests", per_million))
    return Impact(f"Embedding {w.input_tokens}-token inputs with {w.model.id} on "
                  f"{est.cost.instance_type}, {batch} at a time", ("", "value"), rows)


ImpactFn = Callable[[Workload], Impact]

IMPACTS: dict[str, ImpactFn] = {
    "attention": attention,
    "batch-size": batch, "batch-inference": batch, "dynamic-batching": batch,
    "throughput": batch, "latency": batch, "inference": batch,
    "quantization": quantization, "fp16-bf16": quantization,
    "model-parallelism": tensor_parallel, "multi-gpu": tensor_parallel,
    "pipeline-parallelism": pipeline,
    "data-parallelism": data_parallel, "distributed-training": data_parallel,
    "efa": efa,
    "checkpoint": checkpoint,
    "auto-scaling": cold_start, "hpa": cold_start, "serverless": cold_start,
    "scaling": cold_start, "replica": cold_start, "karpenter": cold_start,
    "storage-class": storage, "fsx-lustre": storage, "efs": storage, "ebs": storage,
    "instance-storage": storage, "volume": storage, "nfs": storage,
    "container-registry": registry,
    "tokenization": tokens,
    "accelerator": hardware_compare, "gpu": hardware_compare, "inferentia": hardware_compare,
    "trainium": trainium,
    "parameter": parameters, "llm": parameters, "foundation-model": parameters,
    "tensor": parameters,
    "training": training, "fine-tuning": training, "pre-training": training,
    "gradient": training, "epoch": training,
    "embedding": embedding, "bert": embedding,
}


def fewest_devices(w: Workload) -> Workload:
    """The workload on the fewest devices (1, 2, 4, 8, tensor-parallel) that serve it usefully:
    the weights fit and the KV pool holds ``USEFUL_BATCH`` requests of the workload's shape.

    Falls back to the workload as given when no count up to 8 (one node) does.
    """
    heads = w.model.architecture.attention.num_heads
    for n in (1, 2, 4, 8):
        if heads % n:
            continue
        candidate = replace(w, devices=n)
        try:
            est = _estimate(candidate)
        except EksplainError:
            continue
        encoder = not w.model.architecture.causal
        if est.fits and (encoder or est.kv is None or est.kv.max_concurrency >= USEFUL_BATCH):
            why = "one device holds it" if n == 1 else (
                f"tensor-parallel: the fewest devices whose memory holds {USEFUL_BATCH} requests")
            return replace(candidate, sizing=why)
    return replace(w, sizing=f"does not fit {USEFUL_BATCH} requests on up to 8 devices of one "
                             "node: figures show where it falls short")
