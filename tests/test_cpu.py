"""CPU encoders: the speed model (eksplain.cpu) and the planner's CPU-versus-accelerator choice."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from eksplain import api
from eksplain.calibration import load_calibration
from eksplain.catalog import resolve_model
from eksplain.cli.main import app
from eksplain.cpu import (
    cpu_calibration,
    cpu_encode_speed,
    host_memory_bytes,
    load_processors,
    peak_ops_per_s,
    pod_cores,
    processor_of,
    unsupported_cpu_format,
)
from eksplain.errors import InfeasibleError, InputError
from eksplain.estimate import EstimateRequest
from eksplain.hardware import find_instance, load_catalog, pod_resources
from eksplain.search.cpu import CPU, search_cpu, usd_per_million_requests
from eksplain.spec import load_spec, spec_from_dict
from eksplain.validation import run

ROOT = Path(__file__).resolve().parents[1]
CATALOG = load_catalog()
SAPPHIRE = "Intel Xeon Scalable (Sapphire Rapids)"
QUERIES = load_spec(ROOT / "examples" / "embeddings-queries-cpu.yaml")
BULK = load_spec(ROOT / "examples" / "embeddings-bge-2000rps.yaml")


def _proc(name: str):  # type: ignore[no-untyped-def]
    return next(p for p in load_processors() if p.model == name)


def test_peak_is_cores_times_amx_ops_times_clock() -> None:
    inst = find_instance(CATALOG, "c7i.8xlarge")
    proc = processor_of(inst)
    assert proc is not None
    assert proc.model == SAPPHIRE
    # 32 vCPUs, 2 per core; kube-reserved keeps some millicores back and the pod asks for 90 %
    # of the rest (render's request), down to whole 100 m: 0.9 x 31,850 m -> 28,600 m.
    cores = pod_cores(inst, proc)
    assert cores == int(inst.allocatable.cpu_millicores * 0.9) // 100 * 100 / 2000
    assert 14 < cores < 15
    # AMX: 1,024 bf16 / 2,048 int8 ops per cycle per core (cpu_processors.csv) at 3.2 GHz.
    assert peak_ops_per_s(proc, 16, "bf16") == pytest.approx(16 * 1024 * 3.2e9)
    assert peak_ops_per_s(proc, 16, "int8") == pytest.approx(2 * 16 * 1024 * 3.2e9)


def test_efficiency_reproduces_the_measurement_it_is_fitted_to() -> None:
    # calibration.yaml speed.cpu_encoder: MLPerf v3.0, 2 x Xeon 8480+ (112 cores), BERT-Large
    # int8, 177-token samples: 1,382.79 samples/s.
    model = resolve_model("google-bert/bert-large-uncased")
    peak = peak_ops_per_s(_proc(SAPPHIRE), 112, "int8")
    speed = cpu_encode_speed(model, load_calibration(), "int8", peak, (64, 177))
    assert speed.requests_per_s == pytest.approx(1382.79, rel=0.01)
    assert 0.1 < cpu_calibration().efficiency < 0.5


def test_held_out_cpu_cases_are_predicted_within_tolerance() -> None:
    # The fit case is reproduced to 1% (it is what the factor is fitted to); the held-out ones
    # (another run of the same system, and 128 Emerald Rapids cores) are predicted within 10%.
    cases = {o.case.id: o for o in run().outcomes if o.case.kind == "cpu-serving"}
    assert len(cases) >= 3
    assert abs(cases["mlperf-v3.0-intel-spr-bert-large-offline"].error or 1) < 0.01
    held_out = [o for i, o in cases.items() if i != "mlperf-v3.0-intel-spr-bert-large-offline"]
    assert all(abs(o.error if o.error is not None else 1) < 0.10 for o in held_out)


def test_throughput_is_compute_bound_and_latency_grows_with_the_batch() -> None:
    model = resolve_model("BAAI/bge-base-en-v1.5")
    cal = load_calibration()
    peak = peak_ops_per_s(_proc(SAPPHIRE), 4, "bf16")
    one = cpu_encode_speed(model, cal, "bf16", peak, (1, 256))
    many = cpu_encode_speed(model, cal, "bf16", peak, (64, 256))
    assert many.requests_per_s == pytest.approx(one.requests_per_s)
    assert many.ttft_s == pytest.approx(64 * one.ttft_s)
    # int8 runs on the doubled AMX peak: twice the requests.
    fast = cpu_encode_speed(model, cal, "int8", 2 * peak, (64, 256))
    assert fast.requests_per_s == pytest.approx(2 * many.requests_per_s)
    # Host RAM holds at least the bf16 weights (2 bytes per parameter).
    assert host_memory_bytes(model, cal, "bf16", (64, 256)) > 2 * model.params.total


def test_processors_without_a_published_peak_have_no_speed() -> None:
    graviton = _proc("AWS Graviton3")
    why = unsupported_cpu_format(graviton, "bf16")
    assert why is not None
    assert "cpu_processors.csv" in why
    assert unsupported_cpu_format(_proc(SAPPHIRE), "fp8") is not None
    assert unsupported_cpu_format(_proc(SAPPHIRE), "bf16") is None


def test_low_traffic_embeddings_choose_cpu_with_dollars_per_million_requests() -> None:
    p = api.plan(QUERIES)
    assert p.choice is not None
    assert p.choice.accelerator == CPU
    assert p.choice.instance_type.split(".")[0] in ("c7i", "m7i", "r7i")
    costs = dict(p.extras)["cost_per_million_requests"]
    assert isinstance(costs, dict)
    cpu, acc = costs["cpu"], costs["accelerator"]
    assert cpu["label"] == p.choice.label
    assert cpu["usd_per_million_requests"] == pytest.approx(
        usd_per_million_requests(QUERIES, p.choice), abs=1e-4)
    assert cpu["usd_per_million_requests"] < acc["usd_per_million_requests"]
    # $/M = monthly dollars / (30 requests/s x 3,600 x 730) x 1e6
    assert cpu["usd_per_million_requests"] == pytest.approx(
        (p.choice.usd_per_month or 0) / (30 * 3600 * 730) * 1e6, rel=1e-3)
    decision = next(d for d in p.decisions if "per million requests" in d.text)
    assert decision.text.startswith("CPU wins")
    assert f"${cpu['usd_per_million_requests']:.2f}" in decision.text
    assert "embedding" in decision.terms


def test_high_traffic_embeddings_choose_the_accelerator_and_say_why() -> None:
    p = api.plan(BULK)
    assert p.choice is not None
    assert p.choice.accelerator != CPU
    costs = dict(p.extras)["cost_per_million_requests"]
    assert isinstance(costs, dict)
    assert costs["accelerator"]["usd_per_million_requests"] < costs["cpu"][
        "usd_per_million_requests"]
    assert any(d.text.startswith("accelerator wins") for d in p.decisions)
    # Graviton and AMD rows have no published peak: rejected with that reason, not guessed.
    assert any(r.code == "cpu" and r.label.startswith("c7g.") for r in p.rejections)


def test_cpu_families_follow_the_constraints() -> None:
    only_gpu = spec_from_dict({**QUERIES.model_dump(), "constraints": {"families": ["g6"]}})
    p = api.plan(only_gpu)
    assert p.choice is not None
    assert p.choice.instance_type.startswith("g6.")
    assert all(a.accelerator != CPU for a in p.alternatives)
    no_intel = spec_from_dict({**QUERIES.model_dump(),
                               "constraints": {"exclude_families": ["c7i", "m7i", "r7i"]}})
    p = api.plan(no_intel)
    assert p.choice is not None
    assert p.choice.accelerator != CPU
    assert any(r.code == "family" and r.label == "c7i.large" for r in p.rejections)
    text = next(d.text for d in p.decisions if "per million requests" in d.text)
    assert "no CPU candidate meets the spec" in text


def test_cpu_that_misses_the_slo_is_rejected_by_how_much() -> None:
    tight = spec_from_dict({**QUERIES.model_dump(), "slo": {"e2e_p95": "2ms"}})
    p = api.plan(tight)
    assert p.choice is not None
    assert p.choice.accelerator != CPU
    misses = [r for r in p.rejections if ", CPU," in r.label and r.code == "e2e"]
    assert misses
    assert all((r.gap or 0) > 1 and "over the 2 ms SLO" in r.reason for r in misses)


def test_cpu_only_spec_that_misses_the_slo_says_what_to_relax() -> None:
    # A 512-token prompt of BGE-base is 2 x 86M x 512 + attention = 97 GFLOP: 1.5 ms even on the
    # 95.7 cores of a c7i.48xlarge at 20.7% of 314 TOP/s, so a 1 ms SLO rules every CPU out.
    spec = spec_from_dict({**QUERIES.model_dump(), "slo": {"e2e_p95": "1ms"},
                           "tokens": {"input_mean": 256, "input_p95": 512, "output_mean": 0},
                           "constraints": {"families": ["c7i"]}})
    with pytest.raises(InfeasibleError) as err:
        api.plan(spec)
    assert "relax the E2E SLO" in err.value.hint


def test_the_cpu_plan_renders_a_pod_within_the_memory_the_planner_counted() -> None:
    plan = api.plan(QUERIES)
    rendered = api.render(QUERIES, check=True)
    assert rendered.checked
    assert not rendered.findings
    inst = find_instance(CATALOG, plan.choice.instance_type)
    deployment = next(o for o in rendered.manifests.objects if o["kind"] == "Deployment")
    server = deployment["spec"]["template"]["spec"]["containers"][0]
    assert "nvidia.com/gpu" not in server["resources"]["limits"]
    # The planner's capacity is the memory render requests for the pod.
    assert plan.choice.capacity_bytes == pod_resources(inst.allocatable, 1)[1]
    assert plan.choice.memory_bytes <= plan.choice.capacity_bytes


def test_estimate_embeds_on_a_cpu_instance_with_host_ram_as_capacity() -> None:
    req = EstimateRequest(model="BAAI/bge-large-en-v1.5", hardware="c7i.8xlarge",
                          task="embedding", input_tokens=256, batch=32)
    est = api.estimate(req)
    inst = find_instance(CATALOG, "c7i.8xlarge")
    proc = processor_of(inst)
    assert proc is not None
    assert est.choice.accelerator.id == "cpu"
    assert est.memory.capacity_bytes == pod_resources(inst.allocatable, 1)[1]
    assert est.fits
    assert est.request.output_tokens == 0
    speed = est.speed.serving
    assert speed is not None
    peak = peak_ops_per_s(proc, pod_cores(inst, proc), "bf16")
    model = resolve_model("BAAI/bge-large-en-v1.5")
    expected = cpu_encode_speed(model, load_calibration(), "bf16", peak, (32, 256))
    assert speed.requests_per_s == pytest.approx(expected.requests_per_s)
    # One node at its on-demand price (cpu_instances.csv: c7i.8xlarge $1.428 an hour).
    assert est.cost.usd_per_hour == pytest.approx(1.428)
    assert est.cost.usd_per_million_input_tokens == pytest.approx(
        1.428 / (speed.requests_per_s * 256 * 3600) * 1e6)


def test_estimate_on_a_cpu_instance_refuses_what_it_cannot_model() -> None:
    with pytest.raises(InputError) as err:  # generation on a CPU
        api.estimate(EstimateRequest(model="meta-llama/Llama-3.1-8B", hardware="c7i.8xlarge"))
    assert "--task embedding" in err.value.hint
    with pytest.raises(InputError) as err:  # no published peak for Graviton3
        api.estimate(EstimateRequest(model="bert-base-uncased", hardware="c7g.4xlarge",
                                     task="embedding"))
    assert "cpu_processors.csv" in err.value.message


def test_cli_estimate_task_embedding_on_a_cpu(runner: CliRunner) -> None:
    result = runner.invoke(app, ["estimate", "BAAI/bge-large-en-v1.5", "--hardware",
                                 "c7i.8xlarge", "--task", "embedding", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["hardware"] == {"id": "cpu", "instance_type": "c7i.8xlarge", "devices": 1,
                                "capacity_bytes_per_device": data["memory_per_device"][
                                    "capacity_bytes"]}
    assert data["seq_len"] == 512  # the model's whole context: --seq-len 4096 capped at it
    assert data["speed"]["requests_per_s"] > 0


def test_cpu_candidates_respect_the_models_context() -> None:
    # BGE-base reads at most 512 tokens: a 1,024-token p95 prompt fits no CPU (nor GPU).
    long = spec_from_dict({**QUERIES.model_dump(),
                           "tokens": {"input_mean": 512, "input_p95": 1024, "output_mean": 0}})
    with pytest.raises(InfeasibleError):
        api.plan(long)
    accepted, rejected, _ = search_cpu(long, resolve_model(long.model), CATALOG)
    assert not accepted
    assert any(r.code == "input" and "maximum context of 512" in r.reason for r in rejected)


def test_a_cpu_plan_scales_on_the_embedding_servers_queue_not_vllms() -> None:
    plan = api.plan(QUERIES)
    scaling = dict(plan.extras)["autoscaling"]
    assert isinstance(scaling, dict)
    assert scaling["metric"] == "te_queue_size + te_batch_current_size"
