"""How a serving fleet follows its load: the HPA's algorithm and the settings both ``render``
and ``simulate`` use (``data/autoscaling.yaml``, sourced).

    desired = ceil(current x metric / target), unless |metric / target - 1| <= tolerance

with the Kubernetes rule for pods that report no metric yet (starting replicas): they count
as 0 when the others ask to scale up and as the target when they ask to scale down, and the
recommendation is dropped when that flips its direction (kubernetes.io, Horizontal Pod
Autoscaling, "Algorithm details"; ``pkg/controller/podautoscaler/replica_calculator.go``).
Stabilisation keeps the highest recommendation of the scale-down window (the lowest of the
scale-up window); policies then cap the change per period.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from eksplain.datafiles import read_yaml

__all__ = [
    "AutoscalingSettings", "ScalingPolicy", "ScalingRules", "hpa_behavior", "hpa_recommendation",
    "load_autoscaling", "policy_limit",
]


@dataclass(frozen=True)
class ScalingPolicy:
    type: str  # Pods or Percent
    value: int
    period_s: float


@dataclass(frozen=True)
class ScalingRules:
    stabilization_window_s: float
    policies: tuple[ScalingPolicy, ...]
    select_policy: str  # Max or Min


@dataclass(frozen=True)
class AutoscalingSettings:
    sync_period_s: float
    tolerance: float
    scale_up: ScalingRules
    scale_down: ScalingRules
    keda_polling_interval_s: float
    keda_cooldown_period_s: float
    keda_activation_threshold: float
    keda_min_replicas: int
    scrape_interval_s: float
    consolidate_after_s: float
    max_retries: int


def _rules(row: dict[str, Any]) -> ScalingRules:
    return ScalingRules(
        float(row["stabilization_window_s"]),
        tuple(ScalingPolicy(str(p["type"]), int(p["value"]), float(p["period_s"]))
              for p in row["policies"]),
        str(row["select_policy"]))


@functools.cache
def load_autoscaling() -> AutoscalingSettings:
    d = read_yaml("autoscaling.yaml")
    hpa, keda = d["hpa"], d["keda"]
    return AutoscalingSettings(
        sync_period_s=float(hpa["sync_period_s"]), tolerance=float(hpa["tolerance"]),
        scale_up=_rules(hpa["scale_up"]), scale_down=_rules(hpa["scale_down"]),
        keda_polling_interval_s=float(keda["polling_interval_s"]),
        keda_cooldown_period_s=float(keda["cooldown_period_s"]),
        keda_activation_threshold=float(keda["activation_threshold"]),
        keda_min_replicas=int(keda["min_replicas"]),
        scrape_interval_s=float(d["metrics"]["scrape_interval_s"]),
        consolidate_after_s=float(d["karpenter"]["consolidate_after_s"]),
        max_retries=int(d["router"]["max_retries"]))


def hpa_behavior(settings: AutoscalingSettings | None = None) -> dict[str, Any]:
    """The ``behavior`` of an ``autoscaling/v2`` HorizontalPodAutoscaler that render emits: the
    stabilisation windows. The policies are left out, so Kubernetes applies its defaults, which
    are the ones data/autoscaling.yaml holds and the simulator runs."""
    s = settings or load_autoscaling()
    return {"scaleUp": {"stabilizationWindowSeconds": round(s.scale_up.stabilization_window_s)},
            "scaleDown": {"stabilizationWindowSeconds":
                          round(s.scale_down.stabilization_window_s)}}


def hpa_recommendation(current: int, metric_total: float, with_metric: int, without_metric: int,
                       target: float, tolerance: float) -> int:
    """Replicas the HPA asks for on a Pods metric of type AverageValue: ``metric_total`` summed
    over the ``with_metric`` pods that report it; ``without_metric`` pods (starting) report none.
    ``current``: the replicas the workload asks for now (returned when nothing changes)."""
    if with_metric == 0:
        return current  # nothing to average: the HPA leaves the scale as it is
    ratio = metric_total / with_metric / target
    if without_metric == 0:
        if abs(ratio - 1) <= tolerance:
            return current
        return math.ceil(ratio * with_metric)
    # Missing pods: 0 when scaling up, the target when scaling down.
    filled = metric_total + (0.0 if ratio > 1 else target * without_metric)
    pods = with_metric + without_metric
    new_ratio = filled / pods / target
    if abs(new_ratio - 1) <= tolerance or (ratio > 1) != (new_ratio > 1):
        return current
    return math.ceil(new_ratio * pods)


def policy_limit(rules: ScalingRules, start_of: Callable[[float], int], up: bool) -> int:
    """The most (scaling up) or fewest (down) replicas the policies allow. ``start_of(period)``:
    the replicas at the beginning of a policy's period (now less the changes made within it);
    selectPolicy Max takes the policy that allows the largest change (``horizontal.go``
    calculateScaleUpLimitWithScalingRules and calculateScaleDownLimitWithBehaviors)."""
    limits = []
    for p in rules.policies:
        start = start_of(p.period_s)
        if p.type == "Pods":
            limits.append(start + p.value if up else start - p.value)
        elif up:  # ceil(start x (1 + value / 100))
            limits.append(math.ceil(start * (1 + p.value / 100)))
        else:  # int(start x (1 - value / 100)), truncated as the controller's int32 cast does
            limits.append(int(start * (1 - p.value / 100)))
    pick = max if (rules.select_policy == "Max") == up else min
    return pick(limits)
