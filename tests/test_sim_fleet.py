"""The simulated fleet: the HPA and KEDA, cold starts, nodes, spot interruptions and crashes.

Expectations come from the Kubernetes rules written out here (the HPA formula, its windows and
policies, the sync grid), not from the simulator's own output."""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path

import pytest
from typer.testing import CliRunner

from eksplain import api
from eksplain.autoscaling import hpa_recommendation, load_autoscaling, policy_limit
from eksplain.cli.main import app
from eksplain.hardware import load_catalog
from eksplain.sim import (
    EngineLimits,
    Fixed,
    LinearStepModel,
    Poisson,
    SimConfig,
    parse_trace,
    scenario,
)
from eksplain.sim.autoscale import Hpa, MetricSample
from eksplain.sim.engine import simulate_replicas
from eksplain.sim.fleet import FleetConfig, ScaleEvent
from eksplain.sim.fleetsim import FleetSim
from eksplain.spot import interruption_rate_per_hour

SETTINGS = load_autoscaling()
STEP_10MS = LinearStepModel(fixed_s=0.01)  # every step 10 ms, whatever the batch
ROOMY = EngineLimits(max_num_seqs=64, max_num_batched_tokens=100_000, kv_blocks=10**6)


def test_kubernetes_defaults_are_the_documented_ones() -> None:
    s = SETTINGS
    assert (s.sync_period_s, s.tolerance) == (15, 0.1)
    assert (s.scale_up.stabilization_window_s, s.scale_down.stabilization_window_s) == (0, 300)
    assert (s.keda_polling_interval_s, s.keda_cooldown_period_s) == (30, 300)


@pytest.mark.parametrize(("args", "expected"), [
    ((2, 80.0, 2, 0, 20.0), 4),     # ceil(2 x 40 / 20)
    ((4, 42.0, 4, 0, 10.0), 4),     # ratio 1.05: inside the 0.1 tolerance
    ((4, 46.0, 4, 0, 10.0), 5),     # ratio 1.15: ceil(4 x 1.15) = 5
    ((4, 40.0, 1, 3, 10.0), 4),     # 40 on one pod, three starting count as 0: ratio 1.0
    ((4, 0.0, 1, 3, 10.0), 3),      # scaling down: starting pods count as the target:
    # (0 + 3 x 10) / 4 / 10 = 0.75, and ceil(4 x 0.75) = 3
    ((2, 0.0, 2, 0, 10.0), 0),      # before min/max, which the controller applies
])
def test_hpa_recommendation(args: tuple[int, float, int, int, float], expected: int) -> None:
    assert hpa_recommendation(*args, tolerance=0.1) == expected


def test_policies_allow_the_larger_of_four_pods_and_double() -> None:
    assert policy_limit(SETTINGS.scale_up, lambda _p: 3, up=True) == 7   # +4 > x2
    assert policy_limit(SETTINGS.scale_up, lambda _p: 10, up=True) == 20  # x2 > +4
    assert policy_limit(SETTINGS.scale_down, lambda _p: 10, up=False) == 0  # -100%


def test_hpa_holds_the_highest_recommendation_of_the_scale_down_window() -> None:
    hpa = Hpa(SETTINGS, 1, 10, 10.0)
    # 0 s: ceil(2 x 80/2/10) = 8 wanted; the policies allow max(2 + 4, 2 x 2) = 6.
    assert hpa.sync(0.0, 2, MetricSample(80.0, 2, 0)) == 6
    idle = MetricSample(0.0, 6, 0)
    # Idle from 15 s: the recommendation is 0, but 8 (at 0 s) stays in the 300 s window ...
    for t in range(15, 300, 15):
        assert hpa.sync(float(t), 6, idle) == 6
    # ... until 300 s, when (0, 300] no longer holds it; 100% a period may go, min keeps 1.
    assert hpa.sync(300.0, 6, idle) == 1


def test_scale_up_is_capped_by_the_policies_within_their_period() -> None:
    hpa = Hpa(SETTINGS, 1, 50, 10.0)
    # ceil(2 x 300/2/10) = 30 wanted; the policies allow max(2 + 4, 2 x 2) = 6 per 15 s.
    assert hpa.sync(0.0, 2, MetricSample(300.0, 2, 0)) == 6
    # 15 s later the period starts again from 6: max(6 + 4, 12) = 12.
    assert hpa.sync(15.0, 6, MetricSample(300.0, 2, 4)) == 12


def _step_fleet(**changes: object) -> FleetConfig:
    base = FleetConfig(autoscaler="hpa", initial_replicas=1, min_replicas=1, max_replicas=8,
                       target_per_replica=10, replicas_per_node=8, node_provisioning_s=90,
                       image_pull_s=300, load_s=45)
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def _step_trace() -> object:
    # 40 requests at t = 1 s, each a 10-token prompt and 20,000 tokens out: on one replica,
    # a 10 ms prefill step then 19,999 decode steps of 10 ms: all finish at 201.0 s.
    rows = ["timestamp_s,input_tokens,output_tokens"] + ["1.0,10,20000"] * 40
    return parse_trace(rows, "step")


def test_hpa_scales_up_on_a_step_and_down_after_the_window() -> None:
    """Scrapes at 0, 15, 30 s ...; syncs half a scrape later, at 7.5, 22.5 ... s.
    22.5 s: the scrape at 15 s saw 40 requests on 1 replica: ceil(1 x 40/10) = 4 (policies
    allow max(1 + 4, 2)). The three new replicas start on the node that holds the first (it
    has the image): ready at 22.5 + 45 = 67.5 s; meanwhile they report no metric and count as
    0 (40 / 4 / 10 = 1.0: no change). The requests end at 201.0 s; the scrape at 195 s is the
    last to see them, read by the sync at 202.5 s (40 on 4: ratio 1, recommendation 4). From
    217.5 s the recommendation is 0, but the scale-down window keeps the highest of the last
    300 s: the sync at 502.5 s is the first whose window (202.5, 502.5] holds only zeros, and
    min_replicas keeps 1."""
    cfg = SimConfig(duration_s=600, replicas=1, limits=ROOMY, fleet=_step_fleet())
    r = simulate_replicas(cfg, STEP_10MS, _step_trace(), (Fixed(1), Fixed(1)))
    assert r.fleet is not None
    assert r.fleet.scale_events == (ScaleEvent(22.5, 1, 4), ScaleEvent(502.5, 4, 1))
    assert r.completed == 40
    minute = {s.minute: s for s in r.timeline}
    assert (minute[1].replicas, minute[1].ready, minute[1].desired) == (4, 1, 4)
    assert (minute[2].replicas, minute[2].ready) == (4, 4)
    assert (minute[9].replicas, minute[9].ready, minute[9].desired) == (1, 1, 1)
    assert r.fleet.cold_starts == 3
    assert r.fleet.cold_start.max_s == pytest.approx(45, rel=0.02)  # a histogram bin


def test_a_replica_serves_only_after_its_cold_start() -> None:
    """The step above with one replica full (40 sequences at most) and one more request at
    30 s, held at the router (central queue) until a replica has room: the three replicas
    the sync of 22.5 s asked for are ready at 67.5 s, so it starts then, not before."""
    limits = dataclasses.replace(ROOMY, max_num_seqs=40)
    cfg = SimConfig(duration_s=300, replicas=1, limits=limits, routing="central-queue",
                    fleet=_step_fleet())
    rows = ["timestamp_s,input_tokens,output_tokens"] + ["1.0,10,20000"] * 40 + ["30.0,10,2"]
    r = simulate_replicas(cfg, STEP_10MS, parse_trace(rows, "t"), (Fixed(1), Fixed(1)))
    assert r.fleet is not None
    assert r.fleet.scale_events[0] == ScaleEvent(22.5, 1, 4)
    assert r.ttft.max_s == pytest.approx(67.5 + 0.01 - 30.0, rel=1e-9)


def test_keda_scales_to_zero_and_a_request_waits_for_node_and_cold_start() -> None:
    """KEDA with minReplicaCount 0, starting at zero replicas: a request at 1 s waits at the
    router; KEDA polls every 30 s from 7.5 s and reads the latest scrape; no node is held, so
    its TTFT is at least node provisioning + image pull + load (90 + 300 + 45 s)."""
    fleet = _step_fleet(autoscaler="keda", initial_replicas=0, min_replicas=0)
    cfg = SimConfig(duration_s=1800, replicas=0, limits=ROOMY, fleet=fleet)
    trace = parse_trace(["timestamp_s,input_tokens,output_tokens", "1.0,10,2"], "t")
    r = simulate_replicas(cfg, STEP_10MS, trace, (Fixed(1), Fixed(1)))
    assert r.fleet is not None
    assert r.completed == 1
    assert r.ttft.max_s >= 90 + 300 + 45
    # The poll at 7.5 s read the scrape at 0 s (nothing yet); the poll at 37.5 s reads the
    # scrape at 30 s (one request at the router): 0 -> 1. The replica is ready at 37.5 + 90 +
    # 300 + 45 = 472.5 s and serves the request at once. The poll at 457.5 s is the last to see
    # it (scrape at 450 s); the cooldown of 300 s ends at the poll of 757.5 s: 1 -> 0.
    ups = [e for e in r.fleet.scale_events if e.replicas_to > e.replicas_from]
    downs = [e for e in r.fleet.scale_events if e.replicas_to < e.replicas_from]
    assert ups == [ScaleEvent(37.5, 0, 1)]
    assert downs == [ScaleEvent(757.5, 1, 0)]
    assert r.timeline[-1].replicas == 0
    # The empty node is released consolidate_after (300 s) after its replica left.
    assert r.timeline[-1].nodes == 0


def _spot_run(seed: int) -> object:
    fleet = FleetConfig(autoscaler="off", initial_replicas=3, min_replicas=3, max_replicas=3,
                        replicas_per_node=1, node_provisioning_s=90, image_pull_s=60,
                        load_s=30, instance_usd_per_hour=10.0,
                        spot_interruptions_per_instance_hour=3.0, crashes_per_replica_hour=3.0)
    cfg = SimConfig(duration_s=3600, replicas=3, seed=seed, fleet=fleet,
                    limits=EngineLimits(max_num_seqs=16, max_num_batched_tokens=512,
                                        kv_blocks=4000))
    step = LinearStepModel(fixed_s=0.01, per_seq_s=0.001, per_prefill_token_s=1e-5)
    return simulate_replicas(cfg, step, Poisson(2.0), (Fixed(100), Fixed(300)))


def test_spot_interruptions_and_crashes_keep_every_request_accounted_for() -> None:
    r = _spot_run(seed=5)
    f = r.fleet
    assert f is not None
    assert f.spot_interruptions > 3  # 3 nodes x 3 an hour
    assert f.crashes > 0
    assert f.retries > 0
    assert r.arrived == r.completed + r.failed + r.in_flight
    # Requests lost twice fail (max_retries 1); every other one is still served.
    assert r.failed == f.failed_after_retries
    assert f.cost_usd == pytest.approx(f.instance_hours * 10.0, rel=1e-6)
    assert f.instance_hours > 3.0  # replacements overlap the nodes on notice


def test_same_seed_same_fleet_result_byte_for_byte() -> None:
    def text(seed: int) -> str:
        return json.dumps(dataclasses.asdict(_spot_run(seed)), sort_keys=True)
    assert text(11) == text(11)
    assert text(11) != text(12)


def test_utilisation_is_busy_time_over_serving_time() -> None:
    # One replica, one request of 1 + 99 steps of 10 ms in a 60 s run: busy 1 s of 60 s.
    fleet = FleetConfig(autoscaler="off", initial_replicas=1)
    cfg = SimConfig(duration_s=60, replicas=1, limits=ROOMY, fleet=fleet)
    trace = parse_trace(["timestamp_s,input_tokens,output_tokens", "0.5,10,100"], "t")
    r = simulate_replicas(cfg, STEP_10MS, trace, (Fixed(1), Fixed(1)))
    assert r.fleet is not None
    assert r.fleet.accelerator_utilisation == pytest.approx(1.0 / 60, rel=1e-4)
    assert r.fleet.instance_hours == pytest.approx(60 / 3600, rel=1e-4)


# -- the simulator and render read one source --------------------------------------------------


def _rendered(kind: str) -> dict[str, object]:
    spec = api.load_spec(Path("examples/chat-llama-3.1-8b.yaml"))
    objects = api.render(spec).manifests.objects
    return next(o for o in objects if o["kind"] == kind)


def test_render_emits_the_windows_the_simulator_runs() -> None:
    behavior = _rendered("HorizontalPodAutoscaler")["spec"]["behavior"]  # type: ignore[index]
    assert behavior["scaleUp"]["stabilizationWindowSeconds"] == (
        SETTINGS.scale_up.stabilization_window_s)
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] == (
        SETTINGS.scale_down.stabilization_window_s)


def test_rendered_scrape_interval_and_consolidation_match_the_simulators() -> None:
    monitor = _rendered("ServiceMonitor")["spec"]
    assert monitor["endpoints"][0]["interval"] == f"{SETTINGS.scrape_interval_s:.0f}s"  # type: ignore[index]
    pool = _rendered("NodePool")["spec"]
    after = pool["disruption"]["consolidateAfter"]  # type: ignore[index]
    assert after == f"{SETTINGS.consolidate_after_s / 60:.0f}m"


# -- from a spec and its plan -----------------------------------------------------------------


def test_spot_specs_get_the_advisor_rate_and_on_demand_none() -> None:
    spec = api.load_spec(Path("examples/chat-llama-3.1-8b.yaml"))
    catalog = load_catalog()
    choice = api.plan(spec).choice
    assert choice is not None
    on_demand, parts = scenario._fleet(spec, choice, catalog, scenario.SimulateOptions())
    assert on_demand.spot_interruptions_per_instance_hour == 0
    spot_spec = spec.model_copy(update={"constraints": spec.constraints.model_copy(
        update={"capacity_type": "spot"})})
    spot, _ = scenario._fleet(spot_spec, choice, catalog, scenario.SimulateOptions())
    assert spot.spot_interruptions_per_instance_hour == interruption_rate_per_hour(
        choice.instance_type)
    assert dict(parts)["node_provisioning_s"] == 90
    # KEDA may scale to zero; HPA keeps the plan's minimum; --replicas fixes the count.
    keda, _ = scenario._fleet(spec, choice, catalog, scenario.SimulateOptions(autoscale="keda"))
    assert keda.min_replicas == 0
    fixed, _ = scenario._fleet(spec, choice, catalog, scenario.SimulateOptions(replicas=3))
    assert (fixed.autoscaler, fixed.initial_replicas, fixed.max_replicas) == ("off", 3, 3)


def test_cli_simulate_keda_and_token_budget(runner: CliRunner) -> None:
    args = ["simulate", "examples/chat-llama-3.1-8b.yaml", "--duration", "2m", "--autoscale",
            "keda", "--token-budget", "512", "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["fleet"]["autoscaler"] == "keda"
    assert data["engine"]["max_num_batched_tokens"] == 512
    assert data["token_budget_source"] == "--token-budget"
    req = data["requests"]
    assert req["arrived"] == req["completed"] + req["failed"] + req["in_flight"]
    assert {"desired", "nodes"} <= set(data["timeline"][0])


def test_cli_simulate_unknown_autoscaler(runner: CliRunner) -> None:
    result = runner.invoke(app, ["simulate", "examples/chat-llama-3.1-8b.yaml", "--autoscale",
                                 "kedda"])
    assert result.exit_code == 2
    assert "keda" in result.output


def test_the_plans_cold_start_includes_node_provisioning() -> None:
    plan = api.plan(api.load_spec(Path("examples/chat-llama-3.1-8b.yaml")))
    cold = dict(plan.extras)["cold_start"]
    assert isinstance(cold, dict)
    assert cold["node_provisioning_s"] == 90
    parts = ("node_provisioning_s", "image_pull_s", "weight_load_s", "engine_warmup_s")
    assert cold["total_known_s"] == pytest.approx(sum(cold[k] for k in parts), abs=0.1)


def test_the_routers_counts_match_the_engines() -> None:
    """The router keeps a count of the requests each replica holds (least-outstanding reads
    it); after a run with spot losses, crashes and retries it still equals each engine's."""
    fleet = FleetConfig(autoscaler="off", initial_replicas=3, max_replicas=3, load_s=30,
                        node_provisioning_s=90, spot_interruptions_per_instance_hour=3.0,
                        crashes_per_replica_hour=3.0)
    cfg = SimConfig(duration_s=1800, replicas=3, seed=5, fleet=fleet,
                    limits=EngineLimits(max_num_seqs=16, max_num_batched_tokens=512,
                                        kv_blocks=4000))
    step = LinearStepModel(fixed_s=0.01, per_seq_s=0.001, per_prefill_token_s=1e-5)
    arrivals = Poisson(4.0).arrivals(random.Random(5), (Fixed(100), Fixed(300)))
    sim = FleetSim(cfg, step, arrivals, None)
    sim.run()
    assert sim.counts["retries"] > 0
    assert all(sim.held[i] == sim.replicas[i].outstanding for i in sim.live)
