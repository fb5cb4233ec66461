"""How long one engine step takes: the simulator's one narrow interface to a speed model.

    StepModel.step_time_s(decode_seqs, decode_context_tokens, prefill_tokens) -> seconds

``LinearStepModel`` is the test double (a fixed cost plus a cost per token), for theory tests;
``EstimatorStepModel`` is the estimator's model of a batched step (docs/methodology.md, section
7), so that a simulated replica runs at the speed ``estimate`` and ``plan`` predict. A measured
profile can replace either later without touching the simulator.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from eksplain.calibration import load_calibration
from eksplain.catalog import Model
from eksplain.comms import Link, intra_node_link
from eksplain.compute import (
    DeviceRates,
    ServingEfficiency,
    ServingShape,
    engine_step_s,
    rates,
    serving_shape,
)
from eksplain.errors import InputError
from eksplain.estimate import Estimate
from eksplain.hardware import HardwareCatalog, find_accelerator
from eksplain.memory import kv_bytes_per_context_token, kv_element_bits, weight_bytes
from eksplain.parallel import Parallelism

__all__ = ["EstimatorStepModel", "LinearStepModel", "StepModel", "estimator_step_model"]


class StepModel(Protocol):
    """Seconds of one engine step that decodes one token for each of ``decode_seqs`` sequences
    holding ``decode_context_tokens`` cached tokens between them, and prefills
    ``prefill_tokens`` prompt tokens (chunks of one or more prompts)."""

    def step_time_s(self, decode_seqs: int, decode_context_tokens: float,
                    prefill_tokens: int) -> float: ...


@dataclass(frozen=True)
class LinearStepModel:
    """``fixed_s + per_seq_s x decode_seqs + per_context_token_s x context +
    per_prefill_token_s x prefill_tokens``: a test double whose service times are known."""

    fixed_s: float = 0.0
    per_seq_s: float = 0.0
    per_context_token_s: float = 0.0
    per_prefill_token_s: float = 0.0

    def step_time_s(self, decode_seqs: int, decode_context_tokens: float,
                    prefill_tokens: int) -> float:
        return (self.fixed_s + self.per_seq_s * decode_seqs
                + self.per_context_token_s * decode_context_tokens
                + self.per_prefill_token_s * prefill_tokens)


@dataclass(frozen=True)
class EstimatorStepModel:
    """The estimator's batched step (compute.py ``engine_step_s``, the model behind TPOT and
    throughput): max(memory, compute) + TP all-reduces + the engine's step overhead, times PP.

    Prefill chunks attend, on average, to half of a ``prompt_tokens`` prompt, as the
    estimator's loaded step assumes (Sarathi-Serve, Agrawal et al. 2024)."""

    model: Model
    parallel: Parallelism
    shape: ServingShape
    rates: DeviceRates
    efficiency: ServingEfficiency
    link: Link | None
    prompt_tokens: int

    def step_time_s(self, decode_seqs: int, decode_context_tokens: float,
                    prefill_tokens: int) -> float:
        context = decode_context_tokens / decode_seqs if decode_seqs else 0.0
        return engine_step_s(self.model, self.shape, self.rates, self.efficiency,
                             (decode_seqs, context, float(prefill_tokens), self.prompt_tokens),
                             self.parallel, self.link)


def estimator_step_model(est: Estimate, catalog: HardwareCatalog,
                         tokens: tuple[int, int]) -> EstimatorStepModel:
    """The step model of the setup ``est`` describes, built as ``estimate`` builds its own:
    weights and KV bytes per device, the device's rates and the calibrated efficiencies.
    ``tokens`` = (mean prompt, mean output) sets the KV bytes read per cached token (windowed
    layers read only their window) and the prefill's attention span."""
    cal = load_calibration()
    acc = est.choice.accelerator
    fmt = cal.format(est.weight_format)
    kv_bits = kv_element_bits(est.request.kv_dtype, fmt)
    prompt, output = tokens
    kv_per_token = kv_bytes_per_context_token(est.model.architecture, kv_bits,
                                              prompt + output / 2, est.parallel)
    shape = serving_shape(
        est.model, weight_bytes(est.model, fmt, est.parallel, cal.engine("vllm").vocab_padding),
        kv_per_token, est.parallel, fmt.weight_only)
    stand_in = cal.peak_proxy(acc.id)
    r = rates(acc, est.weight_format, find_accelerator(catalog, stand_in) if stand_in else None)
    if r.peak_flops <= 0:
        raise InputError(f"No published {r.compute_dtype} peak for {acc.id}.",
                         hint="pick an accelerator with datasheet peaks")
    par = est.parallel
    link = intra_node_link(acc, cal.links) if par.model_devices * par.ep > 1 else None
    return EstimatorStepModel(est.model, par, shape, r, cal.speed.serving_for(acc.architecture),
                              link, prompt)
