"""Cost: dollars per hour, per month, per run and per million tokens, from priced offerings.

Prices are data (an ``Offering``: instance type, region, capacity type, date). eksplain never
invents a price: where no offering matches, the cost says so (``price_known`` is False) and the
speed still stands.

    usd_per_hour    = nodes x node price
    usd_per_month   = usd_per_hour x 730 (AWS's hours per month for monthly estimates)
    usd_per_million_output_tokens = usd_per_hour / (output tokens/s x 3600 x utilization) x 1e6
    usd_total (training) = usd_per_hour x hours to train
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from eksplain.errors import InputError
from eksplain.hardware import HardwareCatalog, InstanceType, Offering

__all__ = ["HOURS_PER_MONTH", "Cost", "NodePlan", "Throughput", "cost", "node_plan"]

# AWS Pricing Calculator convention: 730 hours in a month (https://calculator.aws, "Hours per
# month: 730"); a definition, not a hardware fact.
HOURS_PER_MONTH = 730


@dataclass(frozen=True)
class NodePlan:
    """The instances a configuration needs: which type, how many, and its price if known."""

    instance: InstanceType
    nodes: int
    offering: Offering | None


@dataclass(frozen=True)
class Cost:
    price_known: bool
    instance_type: str
    nodes: int
    region: str
    capacity_type: str
    price_date: str
    usd_per_hour: float | None
    usd_per_month: float | None
    usd_per_million_output_tokens: float | None
    usd_per_million_input_tokens: float | None
    usd_total: float | None
    eks_control_plane_usd_per_hour: float
    note: str


def node_plan(
    catalog: HardwareCatalog, accelerator_id: str, devices: int, instance: InstanceType | None,
    region: str, capacity_type: str,
) -> NodePlan:
    """Nodes for ``devices`` accelerators: the named instance type, else the cheapest priced one
    that holds them (fewest nodes first, then price, then name, for a deterministic choice)."""
    if instance is not None:
        per_node = max(instance.accelerator_count, 1)
        return NodePlan(instance, math.ceil(devices / per_node),
                        _offering(catalog, instance.name, region, capacity_type))
    candidates = [i for i in catalog.instances if i.accelerator_id == accelerator_id]
    if not candidates:
        raise InputError(f"No EC2 instance type carries {accelerator_id}.",
                         hint="pick an accelerator that EC2 offers; see `eksplain hardware`")

    def key(inst: InstanceType) -> tuple[int, float, str]:
        nodes = math.ceil(devices / inst.accelerator_count)
        off = _offering(catalog, inst.name, region, capacity_type)
        return (nodes, off.price_usd_per_hour * nodes if off else math.inf, inst.name)

    best = min(candidates, key=key)
    return NodePlan(best, math.ceil(devices / best.accelerator_count),
                    _offering(catalog, best.name, region, capacity_type))


def _offering(catalog: HardwareCatalog, name: str, region: str, capacity: str) -> Offering | None:
    for off in catalog.offerings:
        if (off.instance_type, off.region, off.capacity_type) == (name, region, capacity):
            return off
    return None


@dataclass(frozen=True)
class Throughput:
    output_tokens_per_s: float = 0.0
    input_tokens_per_s: float = 0.0
    hours: float = 0.0  # training: wall-clock hours of the run


def cost(plan: NodePlan, throughput: Throughput, utilization: float, eks_fee: float,
         region: str, capacity_type: str) -> Cost:
    """Dollars for a node plan at a throughput (serving) or over a duration (training)."""
    if not 0 < utilization <= 1:
        raise InputError(f"--utilization must be in (0, 1], not {utilization}.")
    off = plan.offering
    hourly = off.price_usd_per_hour * plan.nodes if off else None

    def per_million(tokens_per_s: float) -> float | None:
        if hourly is None or tokens_per_s <= 0:
            return None
        return hourly / (tokens_per_s * 3600 * utilization) * 1e6

    if off is None:
        note = f"no {capacity_type} price for {plan.instance.name} in {region}; pass a price file"
    elif capacity_type == "spot":
        note = "spot capacity can be reclaimed with two minutes' notice"
    else:
        note = ""
    return Cost(
        price_known=off is not None, instance_type=plan.instance.name, nodes=plan.nodes,
        region=region, capacity_type=capacity_type, price_date=off.price_date if off else "",
        usd_per_hour=hourly,
        usd_per_month=hourly * HOURS_PER_MONTH if hourly is not None else None,
        usd_per_million_output_tokens=per_million(throughput.output_tokens_per_s),
        usd_per_million_input_tokens=per_million(throughput.input_tokens_per_s),
        usd_total=hourly * throughput.hours if hourly is not None and throughput.hours else None,
        eks_control_plane_usd_per_hour=eks_fee, note=note,
    )
