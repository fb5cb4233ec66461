"""CPU speed and memory of encoder forward passes (embeddings, small encoders), on host RAM.

An embedding request is one forward pass of an encoder over its prompt, with no generation, so
on a CPU it is bound by the matrix engine, not by memory bandwidth (the weights of a BERT-size
model stay in the caches across a batch):

    peak      = physical cores x matrix ops per cycle per core (in the compute type)
                x sustained clock                       (data/cpu_processors.csv)
    cores     = vCPUs a pod requests (its share of the node's allocatable) / vCPUs per core
    batch time = FLOPs(batch, prompt) / (peak x efficiency)    (FLOPs: compute.encode_flops)
    requests/s = batch / batch time

``efficiency`` is data (data/calibration.yaml, ``speed.cpu_encoder``), fitted to a published
CPU measurement and checked against held-out ones (data/reference/speed_cpu.yaml, listed in
docs/accuracy.md). Processors whose matrix peak is not published (Graviton3, AMD Genoa in
today's data) have no CPU speed: the planner rejects them with that reason rather than guess.

Memory is host RAM: the weights in the compute type plus one layer's activations for the batch
(the same per-token coefficients as the GPU engines', data/calibration.yaml engines.vllm) and the
fp32 attention scores of one layer; the capacity is the memory the pod requests.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from eksplain.calibration import Calibration
from eksplain.catalog import Model
from eksplain.compute import ServingSpeed, encode_flops, serving_shape
from eksplain.datafiles import read_csv, read_yaml
from eksplain.hardware import Accelerator, InstanceType, pod_resources
from eksplain.memory import weight_bytes
from eksplain.parallel import Parallelism

__all__ = [
    "CpuEncoderCalibration", "CpuProcessor", "cpu_calibration", "cpu_compute_dtype", "cpu_device",
    "cpu_encode_speed",
    "host_memory_bytes", "load_processors", "peak_ops_per_s", "pod_cores", "processor_of",
    "unsupported_cpu_format",
]

# Weight formats a CPU runs an encoder in, and the matrix-engine type each computes in.
_CPU_FORMATS = {"bf16": "bf16", "int8": "int8"}


@dataclass(frozen=True)
class CpuProcessor:
    """One server CPU model as EC2 exposes it (data/cpu_processors.csv)."""

    model: str
    architecture: str
    clock_hz: float  # sustained all-core clock
    vcpus_per_core: int | None  # 2 with SMT (Intel), 1 without (Graviton); None: unknown
    matrix_ops_per_cycle: tuple[tuple[str, float], ...]  # per physical core, by compute type
    source: str

    def ops_per_cycle(self, dtype: str) -> float | None:
        return dict(self.matrix_ops_per_cycle).get(dtype)


@dataclass(frozen=True)
class CpuEncoderCalibration:
    """The share of the matrix-engine peak that encoder forward passes reach (fitted)."""

    efficiency: float
    source: str


def _float(cell: str) -> float | None:
    return float(cell) if cell.strip() else None


@functools.cache
def load_processors() -> tuple[CpuProcessor, ...]:
    """The packaged CPU models (read once)."""
    out = []
    for r in read_csv("cpu_processors.csv"):
        ops = tuple((dtype, v) for dtype, column in (("bf16", "matrix_bf16_ops_per_cycle_per_core"),
                                                     ("int8", "matrix_int8_ops_per_cycle_per_core"))
                    if (v := _float(r[column])) is not None)
        per_core = _float(r["vcpus_per_physical_core"])
        out.append(CpuProcessor(
            model=r["cpu_model"], architecture=r["cpu_architecture"],
            clock_hz=(_float(r["sustained_clock_mhz"]) or 0.0) * 1e6,
            vcpus_per_core=int(per_core) if per_core else None, matrix_ops_per_cycle=ops,
            source=r["source"]))
    return tuple(out)


@functools.cache
def _instance_cpu_models() -> dict[str, str]:
    return {r["instance_type"]: r["cpu_model"] for r in read_csv("cpu_instances.csv")}


def processor_of(inst: InstanceType,
                 processors: tuple[CpuProcessor, ...] | None = None) -> CpuProcessor | None:
    """The CPU of a CPU-only instance type, or None (an accelerated one, or an unknown CPU)."""
    name = _instance_cpu_models().get(inst.name)
    for proc in processors if processors is not None else load_processors():
        if proc.model == name:
            return proc
    return None


@functools.cache
def cpu_calibration() -> CpuEncoderCalibration:
    row = read_yaml("calibration.yaml")["speed"]["cpu_encoder"]["efficiency"]
    return CpuEncoderCalibration(float(row["value"]), str(row["source"]))


def unsupported_cpu_format(proc: CpuProcessor, fmt: str) -> str | None:
    """Why ``proc`` cannot run an encoder in ``fmt``, or None."""
    dtype = _CPU_FORMATS.get(fmt)
    if dtype is None:
        return (f"{fmt} has no CPU kernels in eksplain's model; CPUs run encoders in "
                f"{' or '.join(_CPU_FORMATS)}")
    if proc.ops_per_cycle(dtype) is None or not proc.vcpus_per_core or not proc.clock_hz:
        return (f"no published {dtype} matrix/vector peak (ops per cycle per core) for "
                f"{proc.model} in data/cpu_processors.csv, so eksplain has no speed for it")
    return None


def cpu_compute_dtype(fmt: str) -> str:
    """The matrix-engine type a CPU-supported weight format computes in."""
    return _CPU_FORMATS[fmt]


def pod_cores(inst: InstanceType, proc: CpuProcessor) -> float:
    """Physical cores one pod can use: the CPU it requests (its share of the node's allocatable,
    hardware.pod_resources, as ``eksplain render`` asks for it) over the vCPUs of one core."""
    return pod_resources(inst.allocatable, 1)[0] / 1000 / (proc.vcpus_per_core or 1)


def peak_ops_per_s(proc: CpuProcessor, cores: float, fmt: str) -> float:
    """Matrix-engine peak, ops/s: cores x ops per cycle per core x sustained clock."""
    return cores * (proc.ops_per_cycle(_CPU_FORMATS[fmt]) or 0.0) * proc.clock_hz


def _flops_per_pass(model: Model, cal: Calibration, fmt: str, batch: int, prompt: int) -> float:
    shape = serving_shape(model, weight_bytes(model, cal.format(fmt), Parallelism()), 0.0,
                          Parallelism(), False)
    return encode_flops(model, shape, batch, prompt)


def cpu_encode_speed(model: Model, cal: Calibration, fmt: str, peak: float,
                     load: tuple[int, int]) -> ServingSpeed:
    """Speed of one replica embedding ``load`` = (batch, prompt tokens) per forward pass; a
    request's latency is its batch's time (the requests of a batch finish together)."""
    batch, prompt = load
    seconds = _flops_per_pass(model, cal, fmt, batch, prompt) / (
        peak * cpu_calibration().efficiency)
    return ServingSpeed(
        batch=batch, ttft_s=seconds, tpot_s=0.0, decode_tokens_per_s=0.0,
        prefill_tokens_per_s=batch * prompt / seconds, requests_per_s=batch / seconds,
        output_tokens_per_s=0.0, decode_bound="compute", critical_batch=None, curve=(),
    )


def host_memory_bytes(model: Model, cal: Calibration, fmt: str, load: tuple[int, int]) -> int:
    """Host RAM of one replica: weights, one layer's activations and attention scores."""
    batch, prompt = load
    arch = model.architecture
    engine = cal.engine("vllm")
    per_token = (engine.act_bytes_per_token_hidden * arch.hidden_size
                 + engine.act_bytes_per_token_intermediate * arch.ffn.intermediate_size)
    scores = batch * arch.attention.num_heads * prompt * prompt * 4  # fp32, one layer
    return weight_bytes(model, cal.format(fmt), Parallelism()) + round(
        batch * prompt * per_token) + scores


def cpu_device(inst: InstanceType, proc: CpuProcessor, fmt: str) -> Accelerator:
    """The node's CPU as the one "device" of an estimate: its matrix-engine peak for the pod's
    cores, the pod's memory as capacity; no memory bandwidth is modelled (0)."""
    peak = peak_ops_per_s(proc, pod_cores(inst, proc), fmt)
    return Accelerator(
        id="cpu", vendor=proc.model.split(" ")[0], name=proc.model,
        architecture=proc.architecture, compute_capability=None,
        memory_bytes=pod_resources(inst.allocatable, 1)[1], memory_bandwidth_bytes_per_s=0,
        peak_tflops=((_CPU_FORMATS[fmt], peak / 1e12),), interconnect="",
        interconnect_bytes_per_s=0, host_link_bytes_per_s=0, cores_per_device=1,
        k8s_resource="cpu", karpenter_label="", aliases=(), on_ec2=True, source=proc.source,
    )
