"""render: every serving and training example renders and validates; golden files; determinism; the
checker names each class of inconsistency; unsupported workloads are refused; the CLI."""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from eksplain import api
from eksplain.catalog import resolve_model
from eksplain.cli.main import app
from eksplain.errors import RenderError
from eksplain.hardware import HardwareCatalog, Offering, load_catalog
from eksplain.render import Manifests, RenderOptions, render_plan
from eksplain.render.cache import fsx_capacity_gib
from eksplain.render.check import Finding, check_objects
from eksplain.render.output import file_texts, write_files
from eksplain.render.references import pod_templates
from eksplain.search import Plan
from eksplain.spec import WorkloadSpec
from tests.goldens import assert_matches_golden

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
SERVING = ("chat-llama-3.1-8b", "deepseek-v3", "embeddings-bge-2000rps", "embeddings-queries-cpu",
           "llama-inferentia2",
           "moe-qwen3-30b-a3b", "rag-llama-3.1-70b-32k")
TRAINING = ("finetune-trainium", "full-finetune-llama-3.1-70b", "lora-llama-3.1-8b",
            "pretrain-7b-1t")
BATCH = "nightly-summarisation"
SECRETS = ("hf-token",)


def _spec(name: str) -> WorkloadSpec:
    return api.load_spec(EXAMPLES / f"{name}.yaml")


@functools.cache
def _catalog() -> HardwareCatalog:
    return load_catalog()


@functools.cache
def _plan(name: str) -> Plan:
    return api.plan(_spec(name))


def _render(name: str, options: RenderOptions | None = None, plan: Plan | None = None,
            ) -> Manifests:
    spec = _spec(name)
    return render_plan(spec, plan or _plan(name), resolve_model(spec.model), _catalog(),
                       options or RenderOptions())


def _check(objects: tuple[dict[str, Any], ...]) -> tuple[Finding, ...]:
    return check_objects(objects, _catalog(), SECRETS)


def test_every_example_is_rendered() -> None:
    assert {p.stem for p in EXAMPLES.glob("*.yaml")} == {*SERVING, *TRAINING, BATCH,
                                                         "mixtral-8x7b-spot"}


@pytest.mark.parametrize("name", SERVING)
@pytest.mark.parametrize("autoscaler", ["hpa", "keda"])
def test_serving_examples_validate(name: str, autoscaler: str) -> None:
    manifests = _render(name, RenderOptions(autoscaler="keda" if autoscaler == "keda" else "hpa"))
    assert _check(manifests.objects) == ()
    kinds = {o["kind"] for o in manifests.objects}
    assert {"Namespace", "ResourceQuota", "NodePool", "EC2NodeClass", "Deployment", "Service",
            "NetworkPolicy", "PodDisruptionBudget", "ServiceMonitor"} <= kinds
    assert ("ScaledObject" if autoscaler == "keda" else "HorizontalPodAutoscaler") in kinds


@pytest.mark.parametrize("name", TRAINING)
def test_training_examples_validate(name: str) -> None:
    manifests = _render(name)
    assert _check(manifests.objects) == ()
    assert [o["kind"] for o in manifests.objects] == [
        "Namespace", "ResourceQuota", "EC2NodeClass", "NodePool", "StorageClass",
        "PersistentVolumeClaim", "ServiceAccount", "PyTorchJob", "NetworkPolicy"]


def _job_pod(manifests: Manifests | tuple[dict[str, Any], ...], role: str = "Master",
             ) -> dict[str, Any]:
    spec: dict[str, Any] = _find(manifests, "PyTorchJob")["spec"]
    return dict(spec["pytorchReplicaSpecs"][role]["template"]["spec"])


def _env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container["env"]}


def test_multi_node_training_follows_the_plan() -> None:
    """pretrain-7b-1t: 8 x p5en.48xlarge, FSDP, EFA with RDMA, one zone, FSx for checkpoints."""
    manifests = _render("pretrain-7b-1t")
    choice = _plan("pretrain-7b-1t").choice
    assert choice is not None
    assert choice.nodes == 8
    job = _find(manifests, "PyTorchJob")
    replicas = job["spec"]["pytorchReplicaSpecs"]
    assert (replicas["Master"]["replicas"], replicas["Worker"]["replicas"]) == (1, 7)
    assert job["spec"]["nprocPerNode"] == "8"
    container = _job_pod(manifests, "Worker")["containers"][0]
    assert container["name"] == "pytorch"  # the training operator finds it by name
    assert container["args"][:4] == ["--nnodes", "8", "--nproc-per-node", "8"]
    env = _env(container)
    assert (env["EKSPLAIN_TP"], env["EKSPLAIN_PP"], env["EKSPLAIN_DP"]) == ("1", "1", "64")
    assert env["EKSPLAIN_FSDP"] == "full"
    assert env["EKSPLAIN_MICRO_BATCH"] == str(choice.detail("micro_batch"))
    assert env["FI_PROVIDER"] == "efa"
    assert env["FI_EFA_USE_DEVICE_RDMA"] == "1"
    assert env["NCCL_DEBUG"] == "WARN"
    requests = container["resources"]["requests"]
    assert requests["vpc.amazonaws.com/efa"] == "16"  # p5en.48xlarge's EFA interfaces
    assert requests["nvidia.com/gpu"] == "8"
    assert container["resources"]["limits"] == requests
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    pool = _find(manifests, "NodePool")
    zones = [r["values"] for r in pool["spec"]["template"]["spec"]["requirements"]
             if r["key"] == "topology.kubernetes.io/zone"]
    assert zones == [["us-east-1a"]]
    assert pool["spec"]["template"]["spec"]["expireAfter"] == "Never"
    assert pool["spec"]["limits"]["nvidia.com/gpu"] == "64"
    claim = _find(manifests, "PersistentVolumeClaim")
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    assert _find(manifests, "StorageClass")["reclaimPolicy"] == "Retain"


def test_batch_example_is_an_indexed_job_with_the_deadline() -> None:
    """nightly-summarisation with three times its samples (so that it needs several replicas):
    the plan's replicas run at once as shards of vLLM's batch runner, stopped at the 6 h
    deadline."""
    spec = _spec(BATCH)
    assert spec.data.samples is not None
    spec = spec.model_copy(update={"data": spec.data.model_copy(
        update={"samples": 3 * spec.data.samples})})
    plan = api.plan(spec)
    manifests = render_plan(spec, plan, resolve_model(spec.model), _catalog(), RenderOptions())
    assert _check(manifests.objects) == ()
    choice = plan.choice
    assert choice is not None
    job = _find(manifests, "Job")
    replicas = int(choice.detail("replicas_peak") or 0)
    assert replicas > 1
    assert (job["spec"]["parallelism"], job["spec"]["completions"]) == (replicas, replicas)
    assert job["spec"]["completionMode"] == "Indexed"
    assert job["spec"]["activeDeadlineSeconds"] == 6 * 3600
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    runner = pod["containers"][0]
    assert runner["command"] == ["vllm", "run-batch"]
    args = runner["args"]
    assert args[:4] == ["-i", "/data/input/shard-$(SHARD).jsonl",
                        "-o", "/data/output/shard-$(SHARD).jsonl"]
    assert "--port" not in args
    flags = dict(zip(args[::2], args[1::2], strict=False))
    assert flags["--max-num-seqs"] == str(int(choice.detail("batch") or 0))
    assert "livenessProbe" not in runner
    assert _find(manifests, "ResourceQuota")["spec"]["hard"]["requests.nvidia.com/gpu"] == str(
        replicas)


def test_batch_job_on_a_pool_that_is_not_rendered_is_named() -> None:
    objs = _broken(BATCH)
    pod = _find(tuple(objs), "Job")["spec"]["template"]["spec"]
    pod["nodeSelector"]["eksplain.io/pool"] = "batch-pool"
    finding = _only(_check(tuple(objs)), "Job")
    assert finding.field == "spec.template.spec.nodeSelector"
    assert "no NodePool" in finding.message


def test_batch_job_above_the_quota_and_pool_is_named() -> None:
    objs = _broken(BATCH)
    _find(tuple(objs), "Job")["spec"]["parallelism"] = 5
    findings = _check(tuple(objs))
    assert "at least 5" in _only(findings, "ResourceQuota").message
    assert "needs 5 p5.4xlarge nodes" in _only(findings, "NodePool").message


def _exposed(expose: str) -> Manifests:
    spec = _spec("chat-llama-3.1-8b")
    spec = spec.model_copy(update={"render": spec.render.model_copy(update={"expose": expose})})
    return render_plan(spec, _plan("chat-llama-3.1-8b"), resolve_model(spec.model), _catalog(),
                       RenderOptions())


def test_nlb_exposure_is_an_internal_nlb_health_checked_on_health() -> None:
    manifests = _exposed("nlb")
    assert _check(manifests.objects) == ()
    svc = _find(manifests, "Service")
    assert svc["spec"]["type"] == "LoadBalancer"
    assert svc["spec"]["loadBalancerClass"] == "service.k8s.aws/nlb"
    notes = svc["metadata"]["annotations"]
    prefix = "service.beta.kubernetes.io/aws-load-balancer-"
    assert notes[f"{prefix}scheme"] == "internal"
    assert notes[f"{prefix}healthcheck-path"] == "/health"
    assert notes[f"{prefix}healthcheck-protocol"] == "http"
    assert not any(o["kind"] == "Ingress" for o in manifests.objects)


def test_alb_exposure_is_an_internal_ingress_to_the_service() -> None:
    manifests = _exposed("alb")
    assert _check(manifests.objects) == ()
    ing = _find(manifests, "Ingress")
    assert ing["spec"]["ingressClassName"] == "alb"
    notes = ing["metadata"]["annotations"]
    assert notes["alb.ingress.kubernetes.io/scheme"] == "internal"
    assert notes["alb.ingress.kubernetes.io/healthcheck-path"] == "/health"
    assert _find(manifests, "Service")["spec"]["type"] == "ClusterIP"
    assert "Load Balancer Controller" in dict(file_texts(manifests))["README.md"]
    assert "Ingress" not in {o["kind"] for o in _render("chat-llama-3.1-8b").objects}


def test_ingress_to_a_missing_service_or_port_is_named() -> None:
    objs = copy.deepcopy(list(_exposed("alb").objects))
    backend = _find(tuple(objs), "Ingress")["spec"]["rules"][0]["http"]["paths"][0]["backend"]
    backend["service"]["port"] = {"name": "grpc"}
    finding = _only(_check(tuple(objs)), "Ingress")
    assert finding.field == "spec.rules[0].http.paths[0].backend.service.port"
    assert "no port" in finding.message
    backend["service"]["name"] = "chat"
    finding = _only(_check(tuple(objs)), "Ingress")
    assert finding.field == "spec.rules[0].http.paths[0].backend.service.name"
    assert "Service 'chat' is not in the render" in finding.message


def _launched(name: str, launcher: str) -> Manifests:
    spec = _spec(name)
    spec = spec.model_copy(update={"render": spec.render.model_copy(
        update={"training_launcher": launcher})})
    return render_plan(spec, _plan(name), resolve_model(spec.model), _catalog(), RenderOptions())


def _jobset(name: str) -> Manifests:
    return _launched(name, "jobset")


def test_jobset_launcher() -> None:
    """render.training_launcher: jobset gives one indexed Job of 8 pods; rank from the
    completion index, rendezvous at the first pod's DNS name."""
    manifests = _jobset("pretrain-7b-1t")
    assert _check(manifests.objects) == ()
    job_set = _find(manifests, "JobSet")
    assert not any(o["kind"] == "PyTorchJob" for o in manifests.objects)
    job = job_set["spec"]["replicatedJobs"][0]["template"]["spec"]
    assert (job["parallelism"], job["completions"], job["completionMode"]) == (8, 8, "Indexed")
    container = job["template"]["spec"]["containers"][0]
    args = container["args"]
    assert args[args.index("--master-addr") + 1] == "llama-2-7b-hf-node-0-0.llama-2-7b-hf"
    assert args[args.index("--node-rank") + 1] == "$(NODE_RANK)"
    assert container["env"][0]["name"] == "NODE_RANK"
    assert container["resources"]["requests"]["vpc.amazonaws.com/efa"] == "16"
    assert "JobSet controller" in dict(file_texts(manifests))["README.md"]


def test_jobset_wrong_rendezvous_and_missing_pool_are_named() -> None:
    objs = copy.deepcopy(list(_jobset("pretrain-7b-1t").objects))
    job_set = _find(tuple(objs), "JobSet")
    job_set["spec"]["network"]["subdomain"] = "trainers"
    objs = [o for o in objs if o["kind"] != "NodePool"]
    findings = sorted(f.field for f in _check(tuple(objs)) if f.object.startswith("JobSet/"))
    assert findings == ["spec.replicatedJobs[0].template.spec.template.spec.containers[0].args",
                        "spec.replicatedJobs[0].template.spec.template.spec.nodeSelector"]


def _ray_groups(objs: tuple[dict[str, Any], ...]) -> tuple[dict[str, Any], dict[str, Any]]:
    cluster = _find(objs, "RayJob")["spec"]["rayClusterSpec"]
    return cluster["headGroupSpec"], cluster["workerGroupSpecs"][0]


def test_rayjob_launcher() -> None:
    """render.training_launcher: rayjob gives a RayJob whose fixed worker group is the plan's 8
    nodes with the PyTorchJob pod's devices, environment and volume, a CPU head beside them on
    the same NodePool, and a cluster deleted after the job; it checks clean."""
    manifests = _launched("pretrain-7b-1t", "rayjob")
    assert _check(manifests.objects) == ()
    assert not any(o["kind"] in ("PyTorchJob", "JobSet") for o in manifests.objects)
    job = _find(manifests, "RayJob")
    assert job["spec"]["submissionMode"] == "K8sJobMode"
    assert job["spec"]["shutdownAfterJobFinishes"] is True
    assert job["spec"]["ttlSecondsAfterFinished"] > 0
    assert job["spec"]["entrypoint"] == "python /opt/train/train.py"
    head, workers = _ray_groups(manifests.objects)
    assert (workers["replicas"], workers["minReplicas"], workers["maxReplicas"]) == (8, 8, 8)
    worker = workers["template"]["spec"]
    reference = _job_pod(_render("pretrain-7b-1t").objects, "Worker")
    assert worker["nodeSelector"] == reference["nodeSelector"]
    assert worker["volumes"] == reference["volumes"]
    wanted = {e["name"]: e["value"] for e in reference["containers"][0]["env"]}
    assert {e["name"]: e["value"] for e in worker["containers"][0]["env"]} == wanted
    requests = worker["containers"][0]["resources"]["requests"]
    assert (requests["nvidia.com/gpu"], requests["vpc.amazonaws.com/efa"]) == ("8", "16")
    head_requests = head["template"]["spec"]["containers"][0]["resources"]["requests"]
    assert "nvidia.com/gpu" not in head_requests
    assert head["template"]["spec"]["nodeSelector"] == reference["nodeSelector"]
    assert head["rayStartParams"]["num-cpus"] == "0"
    readme = dict(file_texts(manifests))["README.md"]
    assert "KubeRay operator" in readme
    assert "Ray Train, not torchrun" in readme
    assert "num_workers=64" in readme
    operator = _find(manifests, "NetworkPolicy")["spec"]["ingress"][1]
    assert operator["ports"] == [{"protocol": "TCP", "port": 8265}]


def test_cli_renders_the_pretrain_example_as_a_checked_rayjob(tmp_path: Path) -> None:
    spec = tmp_path / "pretrain-ray.yaml"
    spec.write_text((EXAMPLES / "pretrain-7b-1t.yaml").read_text()
                    + "render: {training_launcher: rayjob}\n")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["render", str(spec), "-o", str(out), "--check"])
    assert result.exit_code == 0, result.output
    docs = list(yaml.safe_load_all((out / "30-training-job.yaml").read_text()))
    assert [d["kind"] for d in docs] == ["ServiceAccount", "RayJob"]


def test_rayjob_workers_above_the_pool_limit_and_open_cluster_are_named() -> None:
    """Nine workers on a NodePool capped at eight nodes' GPUs: the pool and the quota name it
    (the head packs beside a worker, so it adds no node); a group that may scale, and a
    cluster kept after the job, are named on the RayJob."""
    objs = copy.deepcopy(list(_launched("pretrain-7b-1t", "rayjob").objects))
    _, workers = _ray_groups(tuple(objs))
    workers["replicas"] = workers["maxReplicas"] = 9
    _find(tuple(objs), "RayJob")["spec"]["shutdownAfterJobFinishes"] = False
    findings = _check(tuple(objs))
    assert "needs 9 p5en.48xlarge nodes at its maximum replicas (11 pods)" in _only(
        findings, "NodePool").message
    assert "at least 72" in _only(findings, "ResourceQuota").message
    ray = sorted(f.field for f in findings if f.object.startswith("RayJob/"))
    assert ray == ["spec.rayClusterSpec.workerGroupSpecs[0]", "spec.shutdownAfterJobFinishes"]


def test_rayjob_on_a_missing_pool_is_named_for_every_pod() -> None:
    objs = [o for o in _launched("pretrain-7b-1t", "rayjob").objects if o["kind"] != "NodePool"]
    fields = sorted(f.field for f in _check(tuple(objs)) if f.object.startswith("RayJob/"))
    assert fields == ["spec.rayClusterSpec.headGroupSpec.template.spec.nodeSelector",
                      "spec.rayClusterSpec.workerGroupSpecs[0].template.spec.nodeSelector",
                      "spec.submitterPodTemplate.spec.nodeSelector"]


def test_rayjob_launcher_is_validated_and_refused_on_trainium() -> None:
    spec = _spec("pretrain-7b-1t").model_dump()
    spec["render"] = {"training_launcher": "rayjobs"}
    with pytest.raises(ValueError, match=r"pytorchjob.*jobset.*rayjob"):
        WorkloadSpec.model_validate(spec)
    with pytest.raises(RenderError, match="RayJobs for GPU instances only"):
        _launched("finetune-trainium", "rayjob")


def test_training_storage_holds_two_checkpoints() -> None:
    """Full fine-tune of a 70B model: two checkpoints of 14 bytes per parameter (2 x 14 x
    70.55e9 = 1.98e12 B = 1,839 GiB) round up to the next FSx for Lustre SSD capacity: 1.2 TiB,
    2.4 TiB, then steps of 2.4 TiB (FSx Lustre guide, managing storage capacity), so 2400 GiB."""
    claim = _find(_render("full-finetune-llama-3.1-70b"), "PersistentVolumeClaim")
    size = claim["spec"]["resources"]["requests"]["storage"]
    gib = int(size.removesuffix("Gi"))
    assert gib == 2400
    assert gib * 2**30 >= 2 * 14 * 70.5e9


def test_single_node_and_trainium_training() -> None:
    """One node: no EFA. Trainium: Neuron devices, the Neuron image, one process per core."""
    lora = _job_pod(_render("lora-llama-3.1-8b"))["containers"][0]
    assert "vpc.amazonaws.com/efa" not in lora["resources"]["requests"]
    assert "FI_PROVIDER" not in _env(lora)
    manifests = _render("finetune-trainium")
    assert "Worker" not in _find(manifests, "PyTorchJob")["spec"]["pytorchReplicaSpecs"]
    trn = _job_pod(manifests)["containers"][0]
    assert trn["resources"]["requests"]["aws.amazon.com/neuron"] == "16"  # devices, not cores
    assert "neuronx" in trn["image"]
    assert trn["args"][:4] == ["--nnodes", "1", "--nproc-per-node", "32"]
    assert _find(manifests, "ResourceQuota")["spec"]["hard"] == {
        "requests.aws.amazon.com/neuron": "16"}


def test_multi_node_trainium_uses_efa() -> None:
    """finetune-trainium on two trn1.32xlarge: all 8 EFA interfaces per pod, RDMA reads on."""
    plan = _plan("finetune-trainium")
    assert plan.choice is not None
    two = dataclasses.replace(plan, choice=dataclasses.replace(plan.choice, nodes=2, dp=32,
                                                               devices=32))
    manifests = _render("finetune-trainium", plan=two)
    assert _check(manifests.objects) == ()
    worker = _job_pod(manifests, "Worker")["containers"][0]
    assert worker["resources"]["requests"]["vpc.amazonaws.com/efa"] == "8"
    assert _env(worker)["FI_EFA_USE_DEVICE_RDMA"] == "1"
    assert _find(manifests, "NodePool")["spec"]["limits"] == {"aws.amazon.com/neuron": "32"}


def test_training_storage_other_than_fsx_is_refused() -> None:
    spec = _spec("lora-llama-3.1-8b").model_copy(update={"storage": "s3"})
    with pytest.raises(RenderError, match="FSx for Lustre"):
        api.render(spec)


def _spot_prices() -> tuple[Offering, ...]:
    # A made-up spot price list for the test (spot prices are not bundled): 40% of on-demand.
    return tuple(Offering(o.instance_type, o.region, "spot", o.price_usd_per_hour * 0.4,
                          "test", "test") for o in _catalog().offerings
                 if o.capacity_type == "on-demand")


def test_spot_example_renders_a_spot_node_pool(tmp_path: Path) -> None:
    result = api.render(_spec("mixtral-8x7b-spot"), tmp_path / "out", check=True,
                        offerings=_spot_prices())
    pool = next(o for o in result.manifests.objects if o["kind"] == "NodePool")
    requirements = {r["key"]: r["values"] for r in pool["spec"]["template"]["spec"]["requirements"]}
    assert requirements["karpenter.sh/capacity-type"] == ["spot"]


def _find(manifests: Manifests | tuple[dict[str, Any], ...], kind: str) -> dict[str, Any]:
    objects = manifests.objects if isinstance(manifests, Manifests) else manifests
    return next(o for o in objects if o["kind"] == kind)


def _container(objects: tuple[dict[str, Any], ...]) -> dict[str, Any]:
    pod = _find(objects, "Deployment")["spec"]["template"]["spec"]
    container: dict[str, Any] = pod["containers"][0]
    return container


def test_vllm_arguments_follow_the_plan() -> None:
    manifests = _render("rag-llama-3.1-70b-32k")
    choice = _plan("rag-llama-3.1-70b-32k").choice
    assert choice is not None
    args = _container(manifests.objects)["args"]
    flags = dict(zip(args[1::2], args[2::2], strict=False))
    assert flags["--tensor-parallel-size"] == str(choice.tp)
    assert flags["--pipeline-parallel-size"] == str(choice.pp)
    assert flags["--max-model-len"] == "32768"
    assert flags["--quantization"] == "fp8"  # a bf16 checkpoint served in fp8
    # the replica admits the plan's batch (the concurrency that holds the TPOT SLO), not the
    # engine's 256 sequences
    assert flags["--max-num-seqs"] == str(int(choice.detail("batch") or 0))
    resources = _container(manifests.objects)["resources"]
    assert resources["requests"] == resources["limits"]
    assert resources["requests"]["nvidia.com/gpu"] == str(choice.tp)
    # DeepSeek-V3's checkpoint is already FP8: vLLM reads that from its config, no flag.
    assert "--quantization" not in _container(_render("deepseek-v3").objects)["args"]


def test_security_defaults_and_secret_reference() -> None:
    manifests = _render("chat-llama-3.1-8b")
    pod = _find(manifests, "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for c in pod["containers"] + pod.get("initContainers", []):
        sc = c["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"] == {"drop": ["ALL"]}
        assert c["image"].rsplit(":", 1)[1] not in ("", "latest")
    assert pod["securityContext"]["runAsUser"] >= 10000
    assert not any(e["name"] == "HF_TOKEN" for e in pod["containers"][0]["env"])
    token = next(v for v in pod["volumes"] if v["name"] == "hf-token")
    assert token["secret"]["secretName"] == "hf-token"


def test_rerender_is_byte_identical() -> None:
    first = file_texts(_render("chat-llama-3.1-8b"))
    again = file_texts(_render("chat-llama-3.1-8b"))
    assert first == again
    assert all("&id" not in text and "*id" not in text for _, text in first)


@pytest.mark.parametrize(("name", "autoscaler"), [("chat-llama-3.1-8b", "hpa"),
                                                  ("rag-llama-3.1-70b-32k", "keda"),
                                                  ("pretrain-7b-1t", "hpa"),
                                                  (BATCH, "hpa")])
def test_golden_files(name: str, autoscaler: str) -> None:
    """Set EKSPLAIN_REGEN_GOLDEN=1 to rewrite them after an intended change; review the diff."""
    options = RenderOptions(autoscaler="keda" if autoscaler == "keda" else "hpa")
    assert_matches_golden(name, list(file_texts(_render(name, options))))


def _pods_of_custom_workloads(manifests: Manifests) -> list[dict[str, Any]]:
    """checkov does not read PyTorchJobs, JobSets, RayJobs or LeaderWorkerSets: their pod
    templates as Pods, with the templates' labels and annotations, so that its pod checks see
    them."""
    pods = []
    for pt in pod_templates(list(manifests.objects)):
        if pt.workload["kind"] in ("Deployment", "Job"):
            continue
        role = next(p for p in reversed(pt.path.split(".")) if p not in ("template", "spec"))
        role = re.sub(r"[^a-z0-9]+", "-", role.lower()).strip("-")
        meta = pt.template["metadata"]
        pods.append({"apiVersion": "v1", "kind": "Pod", "metadata": {
            "name": f"{pt.workload['metadata']['name']}-{role}",
            "namespace": pt.workload["metadata"]["namespace"],
            "labels": dict(meta.get("labels") or {}),
            "annotations": dict(meta.get("annotations") or {})}, "spec": pt.spec})
    return pods


def test_checkov_finds_no_failed_check(tmp_path: Path) -> None:
    """checkov's Kubernetes checks on every example (HPA and KEDA, a shared model cache, NLB and
    ALB exposure, a LeaderWorkerSet, a JobSet, a RayJob, Triton with TensorRT-LLM, embeddings on
    a CPU instance), with the pods of custom workloads
    scanned as Pods: no failure; every skip is annotated on its object with the reason."""
    checkov = shutil.which("checkov")
    if checkov is None:
        pytest.fail("checkov is not installed: pip install -e '.[dev]'")
    renders = {f"{n}-hpa": _render(n) for n in SERVING}
    renders |= {n: _render(n) for n in (*TRAINING, BATCH)}
    renders |= {f"chat-{e}": _exposed(e) for e in ("nlb", "alb")}
    renders["rag-keda"] = _render("rag-llama-3.1-70b-32k", RenderOptions(autoscaler="keda"))
    renders["chat-fsx"] = _render("chat-llama-3.1-8b",
                                  plan=_with_cache("chat-llama-3.1-8b", "fsx-lustre"))
    renders["chat-lws"] = _render("chat-llama-3.1-8b", plan=_wide_plan())
    renders["pretrain-jobset"] = _jobset("pretrain-7b-1t")
    renders["pretrain-rayjob"] = _launched("pretrain-7b-1t", "rayjob")
    from tests.test_render_engines import (  # they import this module
        cpu_render,
        engine_render,
        triton_render,
    )

    renders["chat-triton"] = triton_render()
    renders["rag-triton-keda"] = triton_render("rag-llama-3.1-70b-32k",
                                               RenderOptions(autoscaler="keda"))
    renders["embeddings-cpu"] = cpu_render()
    renders["chat-sglang"] = engine_render("sglang")
    pods = 0
    for label, manifests in renders.items():
        write_files(file_texts(manifests), tmp_path / label, force=False)
        scanned = _pods_of_custom_workloads(manifests)
        pods += len(scanned)
        (tmp_path / label / "pods.yaml").write_text(yaml.safe_dump_all(scanned))
    result = subprocess.run(
        [checkov, "-d", str(tmp_path), "--framework", "kubernetes", "--skip-download",
         "--quiet", "-o", "json"], capture_output=True, text=True, check=False, timeout=120)
    summary = json.loads(result.stdout)["summary"]
    assert summary["failed"] == 0, result.stdout[-3000:]
    assert summary["passed"] > 0
    # CKV_K8S_43 and CKV_K8S_15, with reasons, on each Deployment and Job and on each pod of a
    # custom workload; the probe checks, with reasons, on training pods and Ray workers
    probe_less = sum(1 for m in renders.values() for p in _pods_of_custom_workloads(m)
                     if "checkov.io/skip3" in p["metadata"]["annotations"])
    core = sum(1 for m in renders.values() for o in m.objects if o["kind"] in ("Deployment",
                                                                                 "Job"))
    assert summary["skipped"] == 2 * (core + pods) + 2 * probe_less


# --- the checker names each class of inconsistency --------------------------------------------


def _broken(name: str = "chat-llama-3.1-8b") -> list[dict[str, Any]]:
    return copy.deepcopy(list(_render(name).objects))


def _only(findings: tuple[Finding, ...], kind: str) -> Finding:
    matching = [f for f in findings if f.object.startswith(kind + "/")]
    assert len(matching) == 1, findings
    return matching[0]


def test_selector_without_a_node_pool_is_named() -> None:
    objs = _broken()
    pod = _find(tuple(objs), "Deployment")["spec"]["template"]["spec"]
    pod["nodeSelector"]["eksplain.io/pool"] = "gpu-large"
    finding = _only(_check(tuple(objs)), "Deployment")
    assert finding.field == "spec.template.spec.nodeSelector"
    assert "no NodePool" in finding.message
    assert "Pending" in finding.message


def test_missing_toleration_is_named() -> None:
    objs = _broken()
    _find(tuple(objs), "Deployment")["spec"]["template"]["spec"]["tolerations"] = []
    assert "toleration" in _only(_check(tuple(objs)), "Deployment").message


def test_request_above_allocatable_is_named() -> None:
    objs = _broken()
    resources = _container(tuple(objs))["resources"]
    for part in ("requests", "limits"):
        resources[part]["memory"] = "512Gi"
    finding = _only(_check(tuple(objs)), "Deployment")
    assert finding.field.endswith("resources.requests.memory")
    assert "g6e.xlarge" in finding.message
    assert "allocatable" in finding.message


def test_quota_too_small_is_named() -> None:
    objs = _broken()
    _find(tuple(objs), "ResourceQuota")["spec"]["hard"]["requests.nvidia.com/gpu"] = "1"
    finding = _only(_check(tuple(objs)), "ResourceQuota")
    assert finding.field == "spec.hard.requests.nvidia.com/gpu"
    assert "at least 6" in finding.message


def test_node_pool_limit_below_the_peak_is_named() -> None:
    objs = _broken("rag-llama-3.1-70b-32k")  # 10 replicas of 2 GPUs, 4 per p5.48xlarge node
    _find(tuple(objs), "NodePool")["spec"]["limits"]["nvidia.com/gpu"] = "16"
    finding = _only(_check(tuple(objs)), "NodePool")
    assert finding.field == "spec.limits.nvidia.com/gpu"
    assert "needs 3 p5.48xlarge nodes" in finding.message


def test_efa_request_above_the_instance_is_named() -> None:
    objs = _broken("pretrain-7b-1t")
    pod = _job_pod(tuple(objs), "Worker")
    # _job_pod copies the pod spec's top level; the container dicts are the job's own
    for part in ("requests", "limits"):
        pod["containers"][0]["resources"][part]["vpc.amazonaws.com/efa"] = "32"
    finding = _only(_check(tuple(objs)), "PyTorchJob")
    assert finding.field == ("spec.pytorchReplicaSpecs.Worker.template.spec.containers[*]"
                             ".resources.requests.vpc.amazonaws.com/efa")
    assert "p5en.48xlarge has 16 allocatable" in finding.message


def test_training_job_on_a_missing_pool_or_claim_is_named() -> None:
    objs = [o for o in _broken("pretrain-7b-1t")
            if o["kind"] not in ("NodePool", "PersistentVolumeClaim")]
    findings = [f for f in _check(tuple(objs)) if f.object.startswith("PyTorchJob/")]
    fields = sorted(f.field for f in findings)
    assert fields == [
        "spec.pytorchReplicaSpecs.Master.template.spec.nodeSelector",
        "spec.pytorchReplicaSpecs.Master.template.spec.volumes[0].persistentVolumeClaim",
        "spec.pytorchReplicaSpecs.Worker.template.spec.nodeSelector",
        "spec.pytorchReplicaSpecs.Worker.template.spec.volumes[0].persistentVolumeClaim"]
    assert all("Pending" in f.message for f in findings)


def test_training_pool_and_quota_count_every_node_of_the_job() -> None:
    objs = _broken("pretrain-7b-1t")
    _find(tuple(objs), "NodePool")["spec"]["limits"]["nvidia.com/gpu"] = "56"
    _find(tuple(objs), "ResourceQuota")["spec"]["hard"]["requests.nvidia.com/gpu"] = "56"
    findings = _check(tuple(objs))
    assert "needs 8 p5en.48xlarge nodes" in _only(findings, "NodePool").message
    assert "at least 64" in _only(findings, "ResourceQuota").message


def test_torchrun_processes_must_match_the_gpus() -> None:
    objs = _broken("pretrain-7b-1t")
    _find(tuple(objs), "PyTorchJob")["spec"]["nprocPerNode"] = "4"
    finding = _only(_check(tuple(objs)), "PyTorchJob")
    assert finding.field == "spec.nprocPerNode"
    assert "requests 8 nvidia.com/gpu" in finding.message


def _with_cache(name: str, cache: str) -> Plan:
    plan = _plan(name)
    extras = tuple((k, cache if k == "model_cache" else v) for k, v in plan.extras)
    return dataclasses.replace(plan, extras=extras)


@pytest.mark.parametrize("cache", ["fsx-lustre", "efs"])
def test_shared_model_cache_renders_a_claim(cache: str) -> None:
    manifests = _render("chat-llama-3.1-8b", plan=_with_cache("chat-llama-3.1-8b", cache))
    assert _check(manifests.objects) == ()
    claim = _find(manifests, "PersistentVolumeClaim")
    storage_class = _find(manifests, "StorageClass")
    assert claim["spec"]["storageClassName"] == storage_class["metadata"]["name"]
    assert all(isinstance(v, str) for v in storage_class["parameters"].values())
    if cache == "fsx-lustre":
        assert claim["spec"]["resources"]["requests"]["storage"] == "1200Gi"


def test_unknown_model_cache_is_refused() -> None:
    with pytest.raises(RenderError, match="model cache 'tape'"):
        _render("chat-llama-3.1-8b", plan=_with_cache("chat-llama-3.1-8b", "tape"))


def test_missing_claim_is_named() -> None:
    manifests = _render("chat-llama-3.1-8b", plan=_with_cache("chat-llama-3.1-8b", "fsx-lustre"))
    objs = tuple(o for o in manifests.objects if o["kind"] != "PersistentVolumeClaim")
    finding = _only(_check(objs), "Deployment")
    assert "persistentVolumeClaim" in finding.field
    assert "llama-3-1-8b-instruct-model-cache" in finding.message


def test_unresolved_secret_target_and_selector_are_named() -> None:
    objs = _broken()
    _find(tuple(objs), "HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]["name"] = "other"
    _find(tuple(objs), "Service")["spec"]["selector"] = {"app": "other"}
    findings = check_objects(tuple(objs), _catalog(), ())  # the token Secret is not declared
    assert _only(findings, "HorizontalPodAutoscaler").field == "spec.scaleTargetRef"
    assert _only(findings, "Service").field == "spec.selector"
    assert "Secret 'hf-token'" in _only(findings, "Deployment").message


def test_unknown_fields_fail_the_schemas() -> None:
    objs = _broken()
    _find(tuple(objs), "NodePool")["spec"]["template"]["spec"]["taint"] = []
    _container(tuple(objs))["imagePulPolicy"] = "Always"
    findings = _check(tuple(objs))
    assert "CRD schema" in _only(findings, "NodePool").message
    assert "imagePulPolicy" in _only(findings, "Deployment").message


def test_metadata_scope_and_names_are_checked() -> None:
    objs = _broken()
    _find(tuple(objs), "NodePool")["metadata"]["namespace"] = "default"
    _find(tuple(objs), "ServiceMonitor")["metadata"]["labelz"] = {}
    _find(tuple(objs), "Service")["metadata"]["name"] = "Chat_Server"
    findings = _check(tuple(objs))
    assert "cluster-scoped" in _only(findings, "NodePool").message
    assert "labelz" in _only(findings, "ServiceMonitor").message
    assert any(f.field == "metadata.name" and "Chat_Server" in f.message for f in findings)


# --- what render refuses ----------------------------------------------------------------------


def test_neuron_hardware_is_refused_for_vllm() -> None:
    """The CUDA image on Inferentia: an error naming the alternative (engine: neuron)."""
    spec = _spec("llama-inferentia2").model_copy(update={"engine": "vllm"})
    with pytest.raises(RenderError, match="vLLM CUDA image") as caught:
        api.render(spec)
    assert "engine: neuron" in (caught.value.hint or "")


def test_neuron_engine_on_a_gpu_is_refused() -> None:
    spec = _spec("chat-llama-3.1-8b").model_copy(update={"engine": "neuron"})
    with pytest.raises(RenderError, match="needs Inferentia or Trainium"):
        api.render(spec)


def test_other_engines_are_refused() -> None:
    spec = _spec("chat-llama-3.1-8b").model_copy(update={"engine": "hf"})
    with pytest.raises(RenderError, match="engine hf is not supported"):
        api.render(spec)


def test_neuron_serving_uses_devices_and_cores() -> None:
    """inf2.xlarge: one Neuron device (two NeuronCores) per replica; vLLM's TP counts cores."""
    manifests = _render("llama-inferentia2")
    container = _container(manifests.objects)
    assert "vllm-neuronx" in container["image"]
    assert container["resources"]["requests"]["aws.amazon.com/neuron"] == "1"
    args = container["args"]
    assert args[args.index("--tensor-parallel-size") + 1] == "2"
    assert "--gpu-memory-utilization" not in args
    assert {"name": "VLLM_NEURON_FRAMEWORK",
            "value": "neuronx-distributed-inference"} in container["env"]
    pod = _find(manifests, "Deployment")["spec"]["template"]["spec"]
    assert pod["tolerations"][0]["key"] == "aws.amazon.com/neuron"
    assert "Neuron device plugin" in dict(file_texts(manifests))["README.md"]


def _wide_plan() -> Plan:
    """chat-llama-3.1-8b with PP=2 on one-GPU g6e.xlarge nodes: every replica spans 2 nodes
    (no example's plan spans nodes; DeepSeek-V3 fits one p5en.48xlarge)."""
    plan = _plan("chat-llama-3.1-8b")
    assert plan.choice is not None
    return dataclasses.replace(plan, choice=dataclasses.replace(plan.choice, pp=2))


@pytest.mark.parametrize("autoscaler", ["hpa", "keda"])
def test_multi_node_replicas_are_a_leader_worker_set(autoscaler: str) -> None:
    options = RenderOptions(autoscaler="keda" if autoscaler == "keda" else "hpa")
    manifests = _render("chat-llama-3.1-8b", options, plan=_wide_plan())
    assert _check(manifests.objects) == ()
    assert not any(o["kind"] == "Deployment" for o in manifests.objects)
    lws = _find(manifests, "LeaderWorkerSet")
    template = lws["spec"]["leaderWorkerTemplate"]
    assert template["size"] == 2
    leader = template["leaderTemplate"]["spec"]["containers"][0]
    script = leader["args"][0]
    assert script.startswith("ray start --head")
    assert "--pipeline-parallel-size 2" in script
    assert "--distributed-executor-backend ray" in script
    assert "startupProbe" in leader
    worker = template["workerTemplate"]["spec"]["containers"][0]
    assert "LWS_LEADER_ADDRESS" in worker["args"][0]
    assert worker["resources"]["requests"]["nvidia.com/gpu"] == "1"
    service = _find(manifests, "Service")
    assert service["spec"]["selector"]["eksplain.io/role"] == "leader"
    scaler = _find(manifests, "ScaledObject" if autoscaler == "keda" else
                   "HorizontalPodAutoscaler")
    assert scaler["spec"]["scaleTargetRef"]["kind"] == "LeaderWorkerSet"
    # quota and node pool count both nodes of every replica at the maximum
    top = int(scaler["spec"].get("maxReplicas") or scaler["spec"].get("maxReplicaCount"))
    quota = _find(manifests, "ResourceQuota")["spec"]["hard"]["requests.nvidia.com/gpu"]
    assert quota == str(2 * top)
    assert "LeaderWorkerSet controller" in dict(file_texts(manifests))["README.md"]


def test_leader_worker_set_worker_without_a_pool_and_a_small_pool_are_named() -> None:
    objs = copy.deepcopy(list(_render("chat-llama-3.1-8b", plan=_wide_plan()).objects))
    lws = _find(tuple(objs), "LeaderWorkerSet")
    worker = lws["spec"]["leaderWorkerTemplate"]["workerTemplate"]["spec"]
    worker["tolerations"] = []
    findings = _check(tuple(objs))
    assert _only(findings, "LeaderWorkerSet").field == (
        "spec.leaderWorkerTemplate.workerTemplate.spec.nodeSelector")
    objs = copy.deepcopy(list(_render("chat-llama-3.1-8b", plan=_wide_plan()).objects))
    pool = _find(tuple(objs), "NodePool")
    top = int(_find(tuple(objs), "HorizontalPodAutoscaler")["spec"]["maxReplicas"])
    pool["spec"]["limits"]["nvidia.com/gpu"] = str(top)  # one node per replica: half
    finding = _only(_check(tuple(objs)), "NodePool")
    assert f"needs {2 * top} g6e.xlarge nodes" in finding.message


def test_replicas_across_part_of_a_node_are_refused() -> None:
    plan = _plan("rag-llama-3.1-70b-32k")  # p5.48xlarge, 8 GPUs a node
    assert plan.choice is not None
    odd = dataclasses.replace(plan, choice=dataclasses.replace(plan.choice, tp=4, pp=3))
    with pytest.raises(RenderError, match="not whole nodes"):
        _render("rag-llama-3.1-70b-32k", plan=odd)


# --- writing files ----------------------------------------------------------------------------


def test_existing_directory_needs_force_and_keeps_other_files(tmp_path: Path) -> None:
    files = file_texts(_render("chat-llama-3.1-8b"))
    out = tmp_path / "out"
    write_files(files, out, force=False)
    (out / "mine.txt").write_text("keep")
    with pytest.raises(RenderError, match="--force"):
        write_files(files, out, force=False)
    written = write_files(files, out, force=True)
    assert (out / "mine.txt").read_text() == "keep"
    assert {p.name for p in written} == {n for n, _ in files}
    kustomization = yaml.safe_load((out / "kustomization.yaml").read_text())
    assert kustomization["resources"] == [n for n, _ in files if n.endswith(".yaml")
                                          and n != "kustomization.yaml"]


def test_cli_render_writes_checks_and_streams(tmp_path: Path) -> None:
    runner = CliRunner()
    spec = str(EXAMPLES / "chat-llama-3.1-8b.yaml")
    out = tmp_path / "out"
    result = runner.invoke(app, ["render", spec, "-o", str(out), "--check"])
    assert result.exit_code == 0, result.output
    assert "checked: 11 objects" in result.output
    assert (out / "README.md").exists()
    again = runner.invoke(app, ["render", spec, "-o", str(out)])
    assert again.exit_code == 2
    assert "already exists" in again.output
    streamed = runner.invoke(app, ["render", spec, "--stdout"])
    assert streamed.exit_code == 0
    docs = list(yaml.safe_load_all(streamed.output))
    assert [d["kind"] for d in docs][:2] == ["Namespace", "ResourceQuota"]
    (tmp_path / "hf.yaml").write_text(
        (EXAMPLES / "chat-llama-3.1-8b.yaml").read_text() + "engine: hf\n")
    refused = runner.invoke(app, ["render", str(tmp_path / "hf.yaml"), "--stdout"])
    assert refused.exit_code == 2
    assert "engine hf is not supported" in refused.output


def test_fsx_capacities_are_valid_sizes() -> None:
    # 1.2 TiB, 2.4 TiB, then increments of 2.4 TiB (PERSISTENT_2 and SCRATCH_2 SSD).
    assert [fsx_capacity_gib(n) for n in (1, 1200, 1201, 2400, 2401, 4800, 4801)] == [
        1200, 1200, 2400, 2400, 4800, 4800, 7200]


def test_render_from_plan_json(runner: CliRunner, tmp_path: Path) -> None:
    # `eksplain plan --json` carries its spec and format version; render rebuilds the same plan
    # and refuses a file from another format or one whose choice this version would not make.
    spec = EXAMPLES / "chat-llama-3.1-8b.yaml"
    plan_json = tmp_path / "plan.json"
    plan_json.write_text(runner.invoke(app, ["plan", str(spec), "--json"]).output)
    from_plan = runner.invoke(app, ["render", str(plan_json), "--stdout", "--check"])
    from_spec = runner.invoke(app, ["render", str(spec), "--stdout"])
    assert from_plan.exit_code == 0, from_plan.output
    assert from_plan.output == from_spec.output
    data = json.loads(plan_json.read_text())
    for field, value, named in (("plan_format", 0, "plan_format is 0"),
                                ("spec", None, "spec is missing"),
                                ("choice", {"label": "g6e.2xlarge, TP=1, fp8"}, "choice.label")):
        edited = tmp_path / f"{field}.json"
        edited.write_text(json.dumps({**data, field: value}))
        result = runner.invoke(app, ["render", str(edited), "--stdout"])
        assert result.exit_code == 2, (field, result.output)
        assert named in " ".join(result.output.split()), (field, result.output)
    bad_spec = tmp_path / "bad-spec.json"
    bad_spec.write_text(json.dumps({**data, "spec": {**data["spec"], "task": "dancing"}}))
    result = runner.invoke(app, ["render", str(bad_spec), "--stdout"])
    assert result.exit_code == 2
    assert "spec: task" in " ".join(result.output.split())


def test_cli_fills_the_file_system_ids_it_is_given() -> None:
    spec = str(EXAMPLES / "pretrain-7b-1t.yaml")
    result = CliRunner().invoke(app, ["render", spec, "--stdout", "--fsx-subnet", "subnet-0abc",
                                      "--fsx-security-groups", "sg-1,sg-2"])
    assert result.exit_code == 0, result.output
    classes = [d for d in yaml.safe_load_all(result.output) if d["kind"] == "StorageClass"]
    assert classes
    for sc in classes:
        assert sc["parameters"]["subnetId"] == "subnet-0abc"
        assert sc["parameters"]["securityGroupIds"] == "sg-1,sg-2"
    assert "subnet-REPLACE-ME" not in result.output
