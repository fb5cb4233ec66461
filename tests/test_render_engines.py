"""render for engines other than vLLM on GPUs: Triton with TensorRT-LLM (engine: trtllm) and
text-embeddings-inference on a CPU instance. Each renders clean under the schemas and the
cross-object checks, follows the plan, has golden files, and the checker names what breaks it."""

from __future__ import annotations

import copy
import dataclasses
import functools
import itertools
from typing import Any

import pytest

from eksplain import api
from eksplain.catalog import resolve_model
from eksplain.errors import RenderError
from eksplain.hardware import find_instance
from eksplain.render import Manifests, RenderOptions, render_plan
from eksplain.render.output import file_texts
from eksplain.search import Plan
from eksplain.spec import WorkloadSpec
from tests.goldens import assert_matches_golden
from tests.test_render import _catalog, _check, _find, _spec

CPU_INSTANCE = "c7i.8xlarge"


def _engine_spec(name: str, engine: str) -> WorkloadSpec:
    return _spec(name).model_copy(update={"engine": engine})


@functools.cache
def _engine_plan(name: str, engine: str) -> Plan:
    return api.plan(_engine_spec(name, engine))


def _trt_spec(name: str) -> WorkloadSpec:
    return _engine_spec(name, "trtllm")


def _trt_plan(name: str) -> Plan:
    return _engine_plan(name, "trtllm")


def engine_render(engine: str, name: str = "chat-llama-3.1-8b",
                  options: RenderOptions | None = None) -> Manifests:
    spec = _engine_spec(name, engine)
    return render_plan(spec, _engine_plan(name, engine), resolve_model(spec.model), _catalog(),
                       options or RenderOptions())


def triton_render(name: str = "chat-llama-3.1-8b", options: RenderOptions | None = None,
                  ) -> Manifests:
    return engine_render("trtllm", name, options)


@functools.cache
def cpu_plan() -> Plan:
    """The embeddings example's plan with its choice moved to a CPU instance, as the planner
    will choose for embeddings (three c7i.8xlarge at the peak, 32 requests per batch)."""
    plan = api.plan(_spec("embeddings-bge-2000rps"))
    assert plan.choice is not None
    choice = dataclasses.replace(
        plan.choice, label=f"{CPU_INSTANCE} x 3, fp32", instance_type=CPU_INSTANCE,
        accelerator="cpu", nodes=3, devices=0, weight_format="fp32",
        details=(("batch", 32), ("replicas_min", 1), ("replicas_peak", 3), ("nodes_peak", 3),
                 ("weights_bytes", 437_951_488)))
    extras = dict(plan.extras)
    scaling = dict(extras["autoscaling"])
    extras["autoscaling"] = {**scaling, "min_replicas": 1, "max_replicas": 3,
                             "target_per_replica": 32}
    return dataclasses.replace(plan, choice=choice, extras=tuple(extras.items()))


def cpu_render(options: RenderOptions | None = None, spec: WorkloadSpec | None = None,
               ) -> Manifests:
    spec = spec or _spec("embeddings-bge-2000rps")
    return render_plan(spec, cpu_plan(), resolve_model(spec.model), _catalog(),
                       options or RenderOptions())


def _pod(manifests: Manifests | list[dict[str, Any]]) -> dict[str, Any]:
    spec: dict[str, Any] = _find(manifests, "Deployment")["spec"]["template"]["spec"]
    return spec


# --- Triton with TensorRT-LLM -----------------------------------------------------------------


@pytest.mark.parametrize("autoscaler", ["hpa", "keda"])
def test_triton_renders_clean(autoscaler: str) -> None:
    manifests = triton_render(options=RenderOptions(
        autoscaler="keda" if autoscaler == "keda" else "hpa"))
    assert _check(manifests.objects) == ()


def test_triton_builds_the_engine_for_the_plan() -> None:
    """chat-llama-3.1-8b with engine: trtllm: one L40S, fp8, the plan's batch and lengths."""
    choice = _trt_plan("chat-llama-3.1-8b").choice
    assert choice is not None
    batch = str(choice.detail("batch"))
    pod = _pod(triton_render())
    assert [c["name"] for c in pod["initContainers"]] == ["copy-model", "build-engine"]
    build = pod["initContainers"][1]
    script = build["args"][0]
    assert f"--tp_size {choice.tp} --pp_size {choice.pp}" in script
    assert "examples/quantization/quantize.py" in script
    assert "--qformat fp8" in script
    assert (f"trtllm-build --checkpoint_dir \"$tmp/checkpoint\" --output_dir \"$tmp/engine\" "
            f"--max_batch_size {batch} --max_input_len 2048 --max_seq_len 2560") in script
    assert f"triton_max_batch_size:{batch}," in script
    assert 'mv -T "$tmp" "$out"' in script  # a build is renamed into place
    # the build runs with the server's GPU, size and security, and writes to the cache
    server = pod["containers"][0]
    assert build["resources"] == server["resources"]
    assert build["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert build["securityContext"] == server["securityContext"]
    assert {m["name"]: m.get("readOnly", False) for m in build["volumeMounts"]}["model-cache"] \
        is False
    assert server["name"] == "triton"
    assert server["command"] == ["tritonserver"]
    assert "--model-repository=/cache/triton-repository" in server["args"]
    assert [(p["name"], p["containerPort"]) for p in server["ports"]] == [
        ("http", 8000), ("grpc", 8001), ("metrics", 8002)]
    assert server["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert server["startupProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert server["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"


def test_triton_across_gpus_runs_one_server_per_rank() -> None:
    """rag-llama-3.1-70b-32k with engine: trtllm: TP=4 on p5.48xlarge (32k-token prompts'
    prefill chunks hold TP=2 to batch 7 under the TPOT SLO), four ranks under mpirun."""
    choice = _trt_plan("rag-llama-3.1-70b-32k").choice
    assert choice is not None
    assert choice.tp * choice.pp == 4
    pod = _pod(triton_render("rag-llama-3.1-70b-32k"))
    server = pod["containers"][0]
    assert server["command"] == ["mpirun"]
    assert server["args"].count("tritonserver") == 4
    assert "--backend-config=python,shm-region-prefix-name=prefix3_" in server["args"]
    assert "--tp_size 4 --pp_size 1" in pod["initContainers"][1]["args"][0]
    assert server["resources"]["limits"]["nvidia.com/gpu"] == "4"


def test_triton_scales_and_is_scraped_on_its_own_metrics() -> None:
    manifests = triton_render()
    hpa = _find(manifests, "HorizontalPodAutoscaler")
    assert hpa["spec"]["metrics"][0]["pods"]["metric"]["name"] == \
        "nv_trt_llm_requests_scheduled_and_waiting"
    keda = _find(triton_render(options=RenderOptions(autoscaler="keda")), "ScaledObject")
    query = keda["spec"]["triggers"][0]["metadata"]["query"]
    assert query == ('sum(nv_trt_llm_request_metrics{namespace="llama-3-1-8b-instruct",'
                     'service="llama-3-1-8b-instruct",model="tensorrt_llm",'
                     'request_type=~"scheduled|waiting"})')
    assert "vllm:" not in query
    monitor = _find(manifests, "ServiceMonitor")
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    service = _find(manifests, "Service")
    assert [p["port"] for p in service["spec"]["ports"]] == [8000, 8001, 8002]
    policy = _find(manifests, "NetworkPolicy")
    assert [p["port"] for p in policy["spec"]["ingress"][0]["ports"]] == [8000, 8001, 8002]


def test_triton_readme_says_what_the_user_supplies() -> None:
    readme = dict(file_texts(triton_render()))["README.md"]
    assert "What you must supply" in readme
    assert "TensorRT-LLM 1.0.0 checkout at `/opt/TensorRT-LLM`" in readme
    assert "not run against a GPU" in readme


def test_triton_cache_holds_the_engine_beside_the_weights() -> None:
    """The S3 copy's emptyDir has room for the weights, the converted checkpoint and the
    engine: three times the vLLM render's."""
    vllm = _pod(render_plan(_spec("chat-llama-3.1-8b"), _trt_plan("chat-llama-3.1-8b"),
                            resolve_model("meta-llama/Llama-3.1-8B"), _catalog(),
                            RenderOptions()))
    trt = _pod(triton_render())

    def cache(pod: dict[str, Any]) -> str:
        return str(next(v for v in pod["volumes"] if v["name"] == "model-cache")
                   ["emptyDir"]["sizeLimit"])

    assert (cache(vllm), cache(trt)) == ("10Gi", "28Gi")


def test_triton_on_a_shared_cache_downloads_once() -> None:
    plan = _trt_plan("chat-llama-3.1-8b")
    extras = {**dict(plan.extras), "model_cache": "fsx-lustre"}
    spec = _trt_spec("chat-llama-3.1-8b")
    manifests = render_plan(spec, dataclasses.replace(plan, extras=tuple(extras.items())),
                            resolve_model(spec.model), _catalog(), RenderOptions())
    assert _check(manifests.objects) == ()
    pod = _pod(manifests)
    assert [c["name"] for c in pod["initContainers"]] == ["build-engine"]
    assert "snapshot_download" in pod["initContainers"][0]["args"][0]


def test_triton_refuses_what_it_cannot_build() -> None:
    plan = _trt_plan("chat-llama-3.1-8b")
    assert plan.choice is not None
    spec = _trt_spec("chat-llama-3.1-8b")
    model = resolve_model(spec.model)
    nf4 = dataclasses.replace(plan, choice=dataclasses.replace(plan.choice, weight_format="nf4"))
    with pytest.raises(RenderError, match="not nf4"):
        render_plan(spec, nf4, model, _catalog(), RenderOptions())
    bf16 = dataclasses.replace(plan, choice=dataclasses.replace(plan.choice,
                                                                weight_format="bf16"))
    gemma = dataclasses.replace(model, architecture=dataclasses.replace(
        model.architecture, model_type="gemma2"))
    with pytest.raises(RenderError, match="no TensorRT-LLM converter for model_type gemma2"):
        render_plan(spec, bf16, gemma, _catalog(), RenderOptions())
    script = _pod(render_plan(spec, bf16, model, _catalog(), RenderOptions()))[
        "initContainers"][1]["args"][0]
    assert "examples/models/core/llama/convert_checkpoint.py" in script
    assert "--dtype bfloat16 --tp_size 1 --pp_size 1" in script


def test_triton_replica_across_nodes_is_refused() -> None:
    """PP=2 on one-GPU g6e.xlarge nodes: vLLM would be a LeaderWorkerSet, Triton is refused."""
    plan = _trt_plan("chat-llama-3.1-8b")
    assert plan.choice is not None
    wide = dataclasses.replace(plan, choice=dataclasses.replace(plan.choice, pp=2))
    spec = _trt_spec("chat-llama-3.1-8b")
    with pytest.raises(RenderError, match="one replica spans 2 nodes"):
        render_plan(spec, wide, resolve_model(spec.model), _catalog(), RenderOptions())


def test_triton_is_refused_on_neuron_and_for_batch() -> None:
    with pytest.raises(RenderError, match="Triton TensorRT-LLM image cannot run"):
        api.render(_trt_spec("llama-inferentia2"))
    with pytest.raises(RenderError, match="batch inference runs vLLM's batch runner"):
        api.render(_trt_spec("nightly-summarisation"))


# --- SGLang --------------------------------------------------------------------------------------


@pytest.mark.parametrize("autoscaler", ["hpa", "keda"])
def test_sglang_renders_clean(autoscaler: str) -> None:
    options = RenderOptions(autoscaler="keda" if autoscaler == "keda" else "hpa")
    assert _check(engine_render("sglang", options=options).objects) == ()
    assert _check(engine_render("sglang", "rag-llama-3.1-70b-32k", options).objects) == ()


def test_sglang_follows_the_plan_and_scales_on_its_queue() -> None:
    choice = _engine_plan("chat-llama-3.1-8b", "sglang").choice
    assert choice is not None
    manifests = engine_render("sglang")
    server = _pod(manifests)["containers"][0]
    assert server["command"] == ["python3", "-m", "sglang.launch_server"]
    args = server["args"]
    flags = dict(itertools.pairwise(args))
    assert flags["--model-path"] == "/models/meta-llama/Llama-3.1-8B-Instruct"
    assert (flags["--tp-size"], flags["--pp-size"]) == (str(choice.tp), str(choice.pp))
    assert flags["--context-length"] == "2560"
    assert flags["--max-running-requests"] == str(choice.detail("batch"))
    assert flags["--quantization"] == "fp8"  # the plan's fp8 on a bf16 checkpoint
    assert "--enable-metrics" in args
    assert flags["--host"] == "0.0.0.0"
    assert {e["name"] for e in server["env"]} >= {"TRITON_CACHE_DIR"}
    assert not any(e["name"].startswith("VLLM_") for e in server["env"])
    hpa = _find(manifests, "HorizontalPodAutoscaler")
    assert hpa["spec"]["metrics"][0]["pods"]["metric"]["name"] == \
        "sglang_num_running_reqs_and_queue_reqs"
    keda = _find(engine_render("sglang", options=RenderOptions(autoscaler="keda")),
                 "ScaledObject")
    assert keda["spec"]["triggers"][0]["metadata"]["query"].startswith(
        'sum(sglang:num_running_reqs{namespace="llama-3-1-8b-instruct",')


def test_sglang_refuses_a_format_it_has_no_flag_for() -> None:
    plan = _engine_plan("chat-llama-3.1-8b", "sglang")
    assert plan.choice is not None
    int8 = dataclasses.replace(plan, choice=dataclasses.replace(plan.choice,
                                                                weight_format="int8"))
    spec = _engine_spec("chat-llama-3.1-8b", "sglang")
    with pytest.raises(RenderError, match="no SGLang --quantization for int8"):
        render_plan(spec, int8, resolve_model(spec.model), _catalog(), RenderOptions())


# --- text-embeddings-inference on a CPU instance -----------------------------------------------


@pytest.mark.parametrize("autoscaler", ["hpa", "keda"])
def test_cpu_embeddings_render_clean(autoscaler: str) -> None:
    manifests = cpu_render(RenderOptions(autoscaler="keda" if autoscaler == "keda" else "hpa"))
    assert _check(manifests.objects) == ()


def test_cpu_deployment_has_no_accelerator_and_takes_the_node() -> None:
    manifests = cpu_render()
    pod = _pod(manifests)
    server = pod["containers"][0]
    assert server["name"] == "tei"
    assert server["image"] == "ghcr.io/huggingface/text-embeddings-inference:cpu-1.8"
    assert server["command"] == ["text-embeddings-router"]
    assert server["args"][:2] == ["--model-id", "/models/BAAI/bge-base-en-v1.5"]
    assert "--max-batch-requests" in server["args"]
    assert server["args"][server["args"].index("--max-batch-requests") + 1] == "32"
    requests = server["resources"]["requests"]
    assert set(requests) == {"cpu", "memory", "ephemeral-storage"}
    assert server["resources"]["limits"] == requests
    # 90 % of the node's allocatable, rounded down to 100 m and whole GiB
    alloc = find_instance(_catalog(), CPU_INSTANCE).allocatable
    assert requests["cpu"] == f"{int(alloc.cpu_millicores * 0.9) // 100 * 100}m"
    assert requests["memory"] == f"{int(alloc.memory_bytes * 0.9) // 2**30}Gi"
    assert pod["tolerations"] == [{"key": "eksplain.io/pool", "operator": "Exists",
                                   "effect": "NoSchedule"}]
    pool = _find(manifests, "NodePool")["spec"]
    assert pool["template"]["spec"]["taints"] == [
        {"key": "eksplain.io/pool", "value": "bge-base-en-v1-5", "effect": "NoSchedule"}]
    assert set(pool["limits"]) == {"cpu", "memory"}
    assert pool["limits"]["cpu"] == "96"  # three c7i.8xlarge at the peak
    quota = _find(manifests, "ResourceQuota")["spec"]["hard"]
    assert set(quota) == {"requests.cpu", "requests.memory"}
    assert "nvidia.com/gpu" not in str(manifests.objects)


def test_cpu_embeddings_scale_on_the_engine_queue() -> None:
    hpa = _find(cpu_render(), "HorizontalPodAutoscaler")
    assert hpa["spec"]["metrics"][0]["pods"]["metric"]["name"] == \
        "te_queue_size_and_batch_current_size"
    assert hpa["spec"]["maxReplicas"] == 3
    keda = _find(cpu_render(RenderOptions(autoscaler="keda")), "ScaledObject")
    query = keda["spec"]["triggers"][0]["metadata"]["query"]
    assert query == ('sum(te_queue_size{namespace="bge-base-en-v1-5",service="bge-base-en-v1-5"})'
                     ' + sum(te_batch_current_size{namespace="bge-base-en-v1-5",'
                     'service="bge-base-en-v1-5"})')
    assert _find(cpu_render(), "ServiceMonitor")["spec"]["endpoints"][0]["port"] == "metrics"


def test_cpu_inconsistencies_are_named() -> None:
    """A request above the c7i.8xlarge's allocatable, a quota below the peak, a NodePool limit
    below the peak and a selector no NodePool provides: each named."""
    objs = copy.deepcopy(list(cpu_render().objects))
    server = _pod(objs)["containers"][0]
    server["resources"]["requests"]["memory"] = "80Gi"
    found = _check(tuple(objs))
    assert any("requests.memory" in f.field and CPU_INSTANCE in f.message for f in found), found
    objs = copy.deepcopy(list(cpu_render().objects))
    _find(objs, "ResourceQuota")["spec"]["hard"]["requests.cpu"] = "10"
    _find(objs, "NodePool")["spec"]["limits"]["cpu"] = "64"
    found = _check(tuple(objs))
    fields = {(f.object.split("/")[0], f.field) for f in found}
    assert ("ResourceQuota", "spec.hard.requests.cpu") in fields, found
    assert ("NodePool", "spec.limits.cpu") in fields, found
    objs = copy.deepcopy(list(cpu_render().objects))
    _pod(objs)["tolerations"] = []
    found = _check(tuple(objs))
    assert any(f.field.endswith("nodeSelector") for f in found), found


def test_cpu_embeddings_on_graviton_are_refused() -> None:
    """TEI publishes no versioned arm64 CPU image: a c7g plan is refused, naming the family."""
    plan = cpu_plan()
    assert plan.choice is not None
    graviton = dataclasses.replace(plan, choice=dataclasses.replace(
        plan.choice, instance_type="c7g.8xlarge"))
    spec = _spec("embeddings-bge-2000rps")
    with pytest.raises(RenderError, match="built for amd64 only") as caught:
        render_plan(spec, graviton, resolve_model(spec.model), _catalog(), RenderOptions())
    assert "c7g" in (caught.value.hint or "")


def test_cpu_text_generation_is_refused() -> None:
    chat = _spec("chat-llama-3.1-8b")
    with pytest.raises(RenderError, match="CPU servers for embeddings only"):
        cpu_render(spec=chat)


# --- golden files -------------------------------------------------------------------------------


@pytest.mark.parametrize("label", ["chat-llama-3.1-8b-trtllm", "chat-llama-3.1-8b-sglang",
                                   "embeddings-bge-cpu"])
def test_golden_files(label: str) -> None:
    """Set EKSPLAIN_REGEN_GOLDEN=1 to rewrite them after an intended change; review the diff."""
    engine = label.rsplit("-", 1)[-1]
    assert_matches_golden(label, list(file_texts(cpu_render() if engine == "cpu"
                                                 else engine_render(engine))))
