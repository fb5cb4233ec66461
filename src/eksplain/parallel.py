"""Parallelism: how a model is split across devices, and which splits are possible.

TP (tensor) splits attention heads and MLP columns inside a layer; PP (pipeline) splits the
layers into stages; DP (data) replicates (or, with ZeRO/FSDP, shards) the whole model; CP
(context) splits the sequence; EP (expert) splits an MoE layer's experts.
"""

from __future__ import annotations

from dataclasses import dataclass

from eksplain.errors import InputError
from eksplain.model import Architecture

__all__ = ["Parallelism", "stage_layers", "validate_parallelism"]


@dataclass(frozen=True)
class Parallelism:
    tp: int = 1
    pp: int = 1
    dp: int = 1
    cp: int = 1
    ep: int = 1

    @property
    def model_devices(self) -> int:
        """Devices holding one copy of the model (one serving replica)."""
        return self.tp * self.pp * self.cp

    @property
    def devices(self) -> int:
        return self.model_devices * self.dp


def stage_layers(num_layers: int, pp: int) -> list[range]:
    """Layer ranges of each pipeline stage.

    Even split; the remainder goes to the stages just before the last one, which already holds
    the LM head (vLLM ``get_pp_indices``, vllm/distributed/utils.py).
    """
    sizes = [num_layers // pp] * pp
    for i in range(2, num_layers % pp + 2):
        sizes[-i] += 1
    ranges, start = [], 0
    for size in sizes:
        ranges.append(range(start, start + size))
        start += size
    return ranges


def _divisors(n: int, limit: int) -> list[int]:
    return [d for d in range(1, min(n, limit) + 1) if n % d == 0]


def _validate_ep(arch: Architecture, par: Parallelism, devices: int) -> None:
    """EP splits the experts over the TP x DP ranks, as vLLM's --enable-expert-parallel does
    (FusedMoEParallelConfig.make flattens TP across DP and uses that group for EP:
    vllm/model_executor/layers/fused_moe/config.py), so EP must divide the experts and TP x DP,
    and the devices must hold that many ranks."""
    experts = arch.experts.num_experts if arch.experts else 0
    ranks = par.tp * par.dp
    valid = [d for d in _divisors(experts, ranks) if ranks % d == 0] if experts else [1]
    hint = "valid --ep values: " + ", ".join(map(str, valid))
    if not experts or experts % par.ep:
        raise InputError(f"EP={par.ep} does not divide the model's {experts} experts.",
                         hint="valid --ep values: " + ", ".join(
                             map(str, _divisors(experts, devices) if experts else [1])))
    if par.ep > devices:
        raise InputError(f"EP={par.ep} needs {par.ep} devices, one per expert-parallel rank; "
                         f"{devices} given.", hint=f"raise --devices to {par.ep}, or " + hint)
    if ranks % par.ep:
        raise InputError(
            f"EP={par.ep} does not divide TP x DP = {par.tp} x {par.dp} = {ranks}: expert "
            "parallelism runs over the tensor- and data-parallel ranks.",
            hint=f"raise --tp or --dp so that TP x DP is a multiple of {par.ep}, or " + hint)


def validate_parallelism(arch: Architecture, par: Parallelism, devices: int) -> None:
    """Raise ``InputError`` naming the valid choices when the split is impossible."""
    for name in ("tp", "pp", "dp", "cp", "ep"):
        if getattr(par, name) < 1:
            raise InputError(f"--{name} must be at least 1, not {getattr(par, name)}.")
    heads = arch.attention.num_heads
    if heads % par.tp:
        raise InputError(
            f"TP={par.tp} does not divide the {heads} attention heads of this model.",
            hint="valid --tp values: " + ", ".join(map(str, _divisors(heads, max(devices, 8)))),
        )
    kv = arch.attention.num_kv_heads
    if not arch.attention.is_mla and kv % par.tp and par.tp % kv:
        raise InputError(
            f"TP={par.tp} and the {kv} KV heads neither divide each other.",
            hint="pick a --tp that divides the KV heads, or a multiple of them",
        )
    if par.pp > arch.num_layers:
        raise InputError(f"PP={par.pp} is more than the model's {arch.num_layers} layers.")
    if par.ep > 1:
        _validate_ep(arch, par, devices)
    if par.devices > devices:
        raise InputError(
            f"TP x PP x CP x DP = {par.devices} needs more devices than the {devices} given.",
            hint="raise --devices or lower the parallel degrees",
        )
