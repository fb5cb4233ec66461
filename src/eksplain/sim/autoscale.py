"""The autoscalers the simulator runs: the Kubernetes HPA and KEDA's scale to and from zero.

``Hpa.sync`` is one pass of the HPA controller (``pkg/controller/podautoscaler/horizontal.go``):

    recommendation = eksplain.autoscaling.hpa_recommendation(...)
    stabilised     = current, raised to the lowest recommendation of the scale-up window and
                     lowered to the highest of the scale-down window (windows are open at
                     their old end: a recommendation exactly a window old has left it)
    limited        = within what the policies allow from the replicas at the start of each
                     policy's period, and within [min, max]

``Keda.poll`` is KEDA's own loop every pollingInterval: it activates a workload at zero
replicas when the metric is above the activation threshold, and scales it to zero once the
metric has stayed at or below it for cooldownPeriod. Between 1 and N replicas KEDA leaves the
scaling to an HPA it creates (``minReplicas`` at least 1), which ``Hpa`` models.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from eksplain.autoscaling import AutoscalingSettings, hpa_recommendation, policy_limit

__all__ = ["Hpa", "Keda", "MetricSample"]


@dataclass(frozen=True)
class MetricSample:
    """What Prometheus holds after a scrape: the requests the serving replicas hold (running and
    waiting, plus any waiting at the router), the replicas that report, and those starting."""

    total: float
    with_metric: int
    without_metric: int


class Hpa:
    def __init__(self, settings: AutoscalingSettings, min_replicas: int, max_replicas: int,
                 target: float) -> None:
        self.s = settings
        self.min = max(1, min_replicas)  # an HPA's minReplicas is at least 1
        self.max = max_replicas
        self.target = target
        self.recommendations: deque[tuple[float, int]] = deque()
        self.events: deque[tuple[float, int]] = deque()  # (time, change of replicas)

    def sync(self, now: float, current: int, metric: MetricSample) -> int:
        """The replicas the workload should have after this sync (``current`` when unchanged).
        At zero replicas the HPA does nothing (scaling from zero is KEDA's)."""
        if current == 0:
            return 0
        rec = hpa_recommendation(current, metric.total, metric.with_metric,
                                 metric.without_metric, self.target, self.s.tolerance)
        stabilised = self._stabilise(now, current, rec)
        new = self._limit(now, current, stabilised)
        if new != current:
            self.events.append((now, new - current))
        return new

    def _stabilise(self, now: float, current: int, rec: int) -> int:
        up_cut = now - self.s.scale_up.stabilization_window_s
        down_cut = now - self.s.scale_down.stabilization_window_s
        up, down = rec, rec
        for t, r in self.recommendations:
            if t > up_cut:
                up = min(up, r)
            if t > down_cut:
                down = max(down, r)
        self.recommendations.append((now, rec))
        oldest = min(up_cut, down_cut)
        while self.recommendations and self.recommendations[0][0] <= oldest:
            self.recommendations.popleft()
        return min(max(current, up), down)

    def _limit(self, now: float, current: int, desired: int) -> int:
        longest = max(p.period_s for p in (*self.s.scale_up.policies,
                                            *self.s.scale_down.policies))
        while self.events and self.events[0][0] <= now - longest:
            self.events.popleft()

        def start_of(period_s: float) -> int:
            return current - sum(c for t, c in self.events if t > now - period_s)

        low, high = self.min, self.max
        if desired > current:
            high = min(high, max(current, policy_limit(self.s.scale_up, start_of, up=True)))
        elif desired < current:
            low = max(low, min(current, policy_limit(self.s.scale_down, start_of, up=False)))
        return min(max(desired, low), high)


class Keda:
    """Activation and scale to zero; ``last_active_s`` starts at the beginning of the run."""

    def __init__(self, settings: AutoscalingSettings, min_replicas: int) -> None:
        self.s = settings
        self.min = min_replicas
        self.last_active_s = 0.0

    def poll(self, now: float, current: int, metric: MetricSample) -> int:
        active = metric.total > self.s.keda_activation_threshold
        if active:
            self.last_active_s = now
            return current if current > 0 else max(1, self.min)
        if current > 0 and self.min == 0 and (
                now - self.last_active_s >= self.s.keda_cooldown_period_s):
            return 0
        return current
