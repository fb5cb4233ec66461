"""Speed cases: predicted vs measured serving latency and throughput, training step time and MFU.

Each case of ``data/reference/speed.yaml`` states its model, hardware and setup; the prediction
uses the same memory and speed models as ``eksplain estimate``. Throughput tables normalise
differently (per sequence, per GPU, per whole system); the case's ``per`` field says which, and the
prediction is normalised the same way.
"""

from __future__ import annotations

from typing import Any

from eksplain.calibration import Calibration
from eksplain.catalog import Model, load_models, model_from_config, resolve_model
from eksplain.comms import inter_node_link, intra_node_link
from eksplain.compute import (
    DeviceRates,
    TrainingSetup,
    rates,
    serving_shape,
    serving_speed,
    static_batch_tokens_per_s,
    training_flops_per_token,
    training_speed,
)
from eksplain.cpu import cpu_encode_speed, load_processors, peak_ops_per_s, unsupported_cpu_format
from eksplain.errors import EksplainError
from eksplain.hardware import Accelerator, InstanceType, find_accelerator, load_catalog
from eksplain.memory import ServingConfig, kv_bytes_per_token, serving_memory, weight_bytes
from eksplain.parallel import Parallelism
from eksplain.validation.report import Case, weight_format

__all__ = ["TOLERANCES", "predict", "static_batching"]

# Targets (issue "Speed and cost"): decode TPOT and throughput median error at most 15%,
# training step time / MFU median at most 10%; each case is held to these bands.
TOLERANCES: dict[str, float] = {
    "decode_tokens_per_s": 0.25,
    "tpot_ms": 0.25,
    "output_tokens_per_s": 0.35,
    "ttft_ms": 0.35,
    "step_time_s": 0.20,
    "tokens_per_s_per_device": 0.20,
    "tflops_per_device": 0.20,
    "mfu": 0.20,
    "hfu": 0.20,
    "requests_per_s": 0.25,  # CPU encoder throughput (eksplain/cpu.py)
}

# gpt-fast's and Neuron's int8 are weight-only; int4 is group-wise 4-bit like AWQ.


def _model(case: Case) -> Model:
    s = case.setup
    if s.get("hidden_size") and s.get("num_layers"):  # a paper's GPT, given by its dimensions
        config = {"model_type": "gpt2", "n_embd": s["hidden_size"], "n_layer": s["num_layers"],
                  "n_head": s["num_heads"], "n_positions": s.get("seq_len", 2048),
                  "vocab_size": s.get("vocab_size", 51200)}
        return model_from_config(case.model, config, case.source)
    return resolve_model(case.model, load_models())


def _accelerator(case: Case) -> Accelerator:
    if case.hardware.startswith("other-"):
        raise EksplainError(f"{case.hardware} is not in the hardware catalogue (peaks unknown)")
    return find_accelerator(load_catalog(), case.hardware)


def _instance(acc: Accelerator, setup: dict[str, Any]) -> InstanceType | None:
    """The case's instance type, else the catalogue's largest one with this accelerator."""
    catalog = load_catalog()
    named = str(setup.get("instance", "")).split("/")[0]
    for inst in catalog.instances:
        if inst.name == named:
            return inst
    fits = [i for i in catalog.instances if i.accelerator_id == acc.id]
    return max(fits, key=lambda i: (i.accelerator_count, i.name)) if fits else None


def _devices_parallel(acc: Accelerator, setup: dict[str, Any]) -> Parallelism:
    """Neuron tables count tensor parallelism in NeuronCores; eksplain counts devices."""
    tp = max(int(setup.get("tp", 1)) // acc.cores_per_device, 1)
    return Parallelism(tp=tp, pp=int(setup.get("pp", 1)), dp=int(setup.get("dp", 1)),
                       cp=int(setup.get("cp", 1)))


def _serving(case: Case, cal: Calibration) -> float:
    s, model, acc = case.setup, _model(case), _accelerator(case)
    par = _devices_parallel(acc, s)
    fmt = weight_format(s)
    stand_in = cal.peak_proxy(acc.id)
    proxy = find_accelerator(load_catalog(), stand_in) if stand_in else None
    r = rates(acc, fmt, proxy)
    prompt, output = int(s.get("input_tokens", 128)), int(s.get("output_tokens", 128))
    batch = _batch(case, model, acc, fmt, par, cal, prompt + output)
    quantized = cal.format(fmt).weight_only
    kv_bits = 8 if case.kv_cache_dtype == "fp8" else 16
    shape = serving_shape(model, weight_bytes(model, cal.format(fmt), par, 64),
                          kv_bytes_per_token(model.architecture, kv_bits, par), par, quantized)
    inst = _instance(acc, s)
    link = intra_node_link(acc, cal.links) if inst else None
    eff = cal.speed.serving_for(acc.architecture)
    load = (batch, prompt, output)
    q = case.quantity
    if q == "output_tokens_per_s" and static_batching(case):
        total = static_batch_tokens_per_s(model, shape, r, eff, load, par, link)
        return total / par.model_devices if case.per == "gpu" else total
    budget = cal.token_budget_for(acc.id, acc.memory_bytes, str(s.get("engine", "vllm")))
    speed = serving_speed(model, shape, r, eff, load, par, link, budget)
    if q == "decode_tokens_per_s":
        return 1 / speed.tpot_s
    if q == "tpot_ms":
        return speed.tpot_s * 1000
    if q == "ttft_ms":
        return speed.ttft_s * 1000
    # Throughput per GPU, or per whole system (one replica here).
    total = speed.output_tokens_per_s
    return total / par.model_devices if case.per == "gpu" else total


def static_batching(case: Case) -> bool:
    """Whether the case ran static batching (a whole batch prefilled, then decoded together,
    no request joining until all finish), as the reference set's notes say of TensorRT-LLM
    0.9's gptSessionBenchmark tables: ``compute.static_batch_tokens_per_s`` predicts those,
    continuous batching (``serving_speed``) the rest."""
    return "static batching" in case.note.lower()


def _batch(case: Case, model: Model, acc: Accelerator, fmt: str, par: Parallelism,
           cal: Calibration, seq: int) -> int:
    """Concurrent sequences: the stated batch, capped by what the KV cache holds."""
    stated = case.setup.get("batch", 1)
    cfg = ServingConfig(weight_format=fmt, seq_len=seq, parallel=par,
                        kv_dtype="fp8" if case.kv_cache_dtype == "fp8" else "auto")
    capacity = cal.visible_bytes(acc.id, acc.memory_bytes)
    fits = serving_memory(model, capacity, cfg, cal, par.model_devices).kv.max_batch
    if not isinstance(stated, int):
        return max(fits, 1)  # saturated: as many sequences as the KV cache holds
    return max(min(stated, fits), 1)


def _training(case: Case, cal: Calibration) -> float:
    s, model, acc = case.setup, _model(case), _accelerator(case)
    par = _devices_parallel(acc, s)
    if not s.get("dp"):
        par = Parallelism(tp=par.tp, pp=par.pp, cp=par.cp,
                          dp=max(int(s.get("devices", 1)) // par.model_devices, 1))
    micro = int(s.get("micro_batch", 1))
    global_batch = int(s.get("global_batch_sequences", int(s.get("batch_per_dp", micro)) * par.dp))
    inst = _instance(acc, s)
    recompute = str(s.get("recompute", "none")).split(" ")[0]
    setup = TrainingSetup(
        seq_len=int(s.get("seq_len", 2048)), micro_batch=micro,
        microbatches=max(global_batch // (micro * par.dp), 1), parallel=par,
        recompute=recompute, sharded=bool(s.get("fsdp")) or s.get("engine") == "torchtitan",
        trainable_fraction=1.0, intra_link=intra_node_link(acc, cal.links),
        inter_link=inter_node_link(inst, cal.links) if inst else None,
        devices_per_node=inst.accelerator_count if inst else 8,
    )
    fmt = "fp8" if "fp8" in str(s.get("quantization", "")) else "bf16"
    r: DeviceRates = rates(acc, fmt)
    eff = cal.speed.training_efficiency(acc.architecture, model.architecture.hidden_size,
                                        r.compute_dtype)
    speed = training_speed(model, setup, r, eff, cal.speed.dp_overlap)
    hardware = case.quantity == "hfu" or case.flops_convention == "hardware"
    model_flops, hw_flops = training_flops_per_token(model, setup.seq_len, recompute,
                                                     setup.method)
    scale = hw_flops / model_flops if hardware else 1.0
    if case.quantity in ("hfu", "mfu"):
        return speed.mfu * scale
    if case.quantity == "tflops_per_device":
        return speed.tflops_per_device * scale
    return float(getattr(speed, case.quantity))


def _cpu_serving(case: Case, cal: Calibration) -> float:
    """Requests/s of an encoder on a CPU: eksplain.cpu's model on the case's cores."""
    s = case.setup
    proc = next((p for p in load_processors() if p.model == s["processor"]), None)
    if proc is None:
        raise EksplainError(f"CPU {s['processor']!r} is not in data/cpu_processors.csv")
    fmt = str(s.get("dtype", "bf16"))
    why = unsupported_cpu_format(proc, fmt)
    if why is not None:
        raise EksplainError(why)
    peak = peak_ops_per_s(proc, float(s["cores"]), fmt)
    stated = s.get("batch")
    batch = stated if isinstance(stated, int) else cal.engine("vllm").embedding_batch
    speed = cpu_encode_speed(_model(case), cal, fmt, peak, (batch, int(s["input_tokens"])))
    return speed.requests_per_s


def predict(case: Case, cal: Calibration) -> float:
    """The predicted value of a speed case, in the case's unit."""
    if case.kind == "cpu-serving":
        return _cpu_serving(case, cal)
    return _serving(case, cal) if case.kind == "serving" else _training(case, cal)
