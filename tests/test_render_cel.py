"""The CRDs' CEL rules (``x-kubernetes-validations``) under ``render --check``: every shipped
rule is evaluated or skipped for a stated reason, every rendered example passes them, and each
broken object below, built from a rule read in the CRD, is named by exactly that rule (the
schema alone accepts it, so these fail if the evaluator is removed)."""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Callable
from importlib import resources
from typing import Any

import pytest
from typer.testing import CliRunner

from eksplain.cli.main import app
from eksplain.render import RenderOptions
from eksplain.render.cel import coverage, evaluate_rules, schema_rules, skip_reason
from eksplain.render.schemas import validate_object
from tests.test_render import BATCH, EXAMPLES, SERVING, TRAINING, _launched, _render

Obj = dict[str, Any]
CRDS = resources.files("eksplain.data").joinpath("crds")
TRANSITION = "transition rule (reads oldSelf): checked on update only"

# Rules per packaged CRD: (all, evaluated, transition rules skipped). The totals are the "CEL
# rules" column of src/eksplain/data/crds/README.md; the transition rules are those that read
# oldSelf (immutable fields: "Value is immutable", "... is immutable", static/dynamic NodePool).
RULES = {
    "NodePool": (20, 17, 3),
    "EC2NodeClass": (54, 54, 0),
    "ScaledObject": (1, 1, 0),
    "PyTorchJob": (1, 0, 1),
    "RayJob": (9, 6, 3),
    "JobSet": (8, 2, 6),
    "LeaderWorkerSet": (0, 0, 0),
    "ServiceMonitor": (0, 0, 0),
}


def _schema(kind: str) -> Obj:
    entry = next(e for e in json.loads(CRDS.joinpath("index.json").read_text())
                 if e["kind"] == kind)
    node = CRDS
    for part in entry["file"].split("/"):
        node = node.joinpath(part)
    schema: Obj = json.loads(node.read_text())
    return schema


def test_every_shipped_rule_is_evaluated_or_a_transition_rule() -> None:
    counts = {}
    for kind in RULES:
        reasons = [skip_reason(rule) for _, rule in schema_rules(_schema(kind))]
        assert set(reasons) <= {"", TRANSITION}, kind
        counts[kind] = (len(reasons), reasons.count(""), reasons.count(TRANSITION))
    assert counts == RULES


@functools.cache
def _renders() -> tuple[tuple[Obj, ...], ...]:
    serving = [_render(n, RenderOptions(autoscaler=a)).objects
               for n in SERVING for a in ("hpa", "keda")]
    training = [_render(n).objects for n in (*TRAINING, BATCH)]
    launched = [_launched("pretrain-7b-1t", launcher).objects for launcher in ("jobset", "rayjob")]
    return (*serving, *training, *launched)


def _cel_findings(obj: Obj) -> list[tuple[str, str]]:
    found, _ = validate_object(obj)
    return [(f.field, f.message) for f in found]


def test_every_rendered_example_passes_the_cel_rules() -> None:
    """Core kinds and cross-object checks are covered by test_render; here each CRD object's
    schema and CEL findings are empty, and the rules met are counted."""
    met = set()
    for objects in _renders():
        for obj in objects:
            found, outcomes = validate_object(obj)
            assert found == [], found
            met |= outcomes
    cel = coverage(frozenset(met))
    assert cel.not_evaluated == ()
    kinds = {o.kind for o in met if not o.skipped}
    assert kinds == {"NodePool", "EC2NodeClass", "ScaledObject", "JobSet"}
    assert cel.evaluated >= 40
    assert cel.transition >= 3


def _first(objects: tuple[Obj, ...], kind: str) -> Obj:
    return copy.deepcopy(next(o for o in objects if o["kind"] == kind))


def _node_pool() -> Obj:
    return _first(_render("chat-llama-3.1-8b").objects, "NodePool")


def _node_class() -> Obj:
    return _first(_render("chat-llama-3.1-8b").objects, "EC2NodeClass")


def _requirements(pool: Obj) -> list[Obj]:
    reqs: list[Obj] = pool["spec"]["template"]["spec"]["requirements"]
    return reqs


def _in_without_values(pool: Obj) -> None:
    _requirements(pool)[0]["values"] = []


def _gt_not_a_number(pool: Obj) -> None:
    _requirements(pool).append({"key": "karpenter.k8s.aws/instance-gpu-count",
                                "operator": "Gt", "values": ["eight"]})


def _restricted_key(pool: Obj) -> None:
    _requirements(pool).append({"key": "karpenter.sh/anything", "operator": "Exists"})


def _restricted_aws_label(pool: Obj) -> None:
    pool["spec"]["template"]["metadata"]["labels"]["karpenter.k8s.aws/made-up"] = "x"


def _static_with_weight(pool: Obj) -> None:
    pool["spec"].update(replicas=2, weight=10)


def _budget_without_duration(pool: Obj) -> None:
    pool["spec"]["disruption"]["budgets"] = [{"nodes": "10%", "schedule": "0 9 * * mon-fri"}]


def _alias_and_id(node_class: Obj) -> None:
    node_class["spec"]["amiSelectorTerms"] = [{"alias": "al2023@latest", "id": "ami-0123456789"}]


def _unknown_family(node_class: Obj) -> None:
    node_class["spec"]["amiSelectorTerms"] = [{"alias": "ubuntu@latest"}]


def _windows_pinned(node_class: Obj) -> None:
    node_class["spec"]["amiSelectorTerms"] = [{"alias": "windows2022@v20250101"}]


def _role_and_profile(node_class: Obj) -> None:
    node_class["spec"]["instanceProfile"] = "KarpenterNodeInstanceProfile"


def _family_mismatch(node_class: Obj) -> None:
    node_class["spec"]["amiFamily"] = "Bottlerocket"


def _restricted_tag(node_class: Obj) -> None:
    node_class["spec"]["tags"] = {"kubernetes.io/cluster/eksplain": "owned"}


def _ebs_without_size(node_class: Obj) -> None:
    del node_class["spec"]["blockDeviceMappings"][0]["ebs"]["volumeSize"]


REQS = "spec.template.spec.requirements"
# (name, object, change, field, the rule's message), each from a rule in the packaged CRD.
BROKEN: list[tuple[str, Callable[[], Obj], Callable[[Obj], None], str, str]] = [
    ("In without values", _node_pool, _in_without_values, REQS,
     "requirements with operator 'In' must have a value defined"),
    ("Gt with a word", _node_pool, _gt_not_a_number, REQS,
     "requirements operator 'Gt', 'Lt', 'Gte', or 'Lte' must have a single positive integer "
     "value"),
    ("karpenter.sh key", _node_pool, _restricted_key, f"{REQS}[3].key",
     'label domain "karpenter.sh" is restricted'),
    ("karpenter.k8s.aws label", _node_pool, _restricted_aws_label,
     "spec.template.metadata.labels", 'label domain "karpenter.k8s.aws" is restricted'),
    ("static pool with weight", _node_pool, _static_with_weight, "spec",
     "'weight' is not supported on static NodePools"),
    ("schedule without duration", _node_pool, _budget_without_duration,
     "spec.disruption.budgets", "'schedule' must be set with 'duration'"),
    ("alias with id", _node_class, _alias_and_id, "spec.amiSelectorTerms",
     "'alias' is mutually exclusive, cannot be set with a combination of other fields in "
     "amiSelectorTerms"),
    ("unknown alias family", _node_class, _unknown_family, "spec.amiSelectorTerms[0].alias",
     "family is not supported, must be one of the following: 'al2', 'al2023', 'bottlerocket', "
     "'windows2019', 'windows2022', 'windows2025'"),
    ("windows version pinned", _node_class, _windows_pinned, "spec.amiSelectorTerms[0].alias",
     "windows families may only specify version 'latest'"),
    ("role and instance profile", _node_class, _role_and_profile, "spec",
     "must specify exactly one of ['role', 'instanceProfile']"),
    ("amiFamily against the alias", _node_class, _family_mismatch, "spec",
     "if set, amiFamily must be 'AL2023' or 'Custom' when using an AL2023 alias"),
    ("restricted tag", _node_class, _restricted_tag, "spec.tags",
     "tag contains a restricted tag matching kubernetes.io/cluster/"),
    ("EBS volume without size", _node_class, _ebs_without_size,
     "spec.blockDeviceMappings[0].ebs", "snapshotID or volumeSize must be defined"),
]


@pytest.mark.parametrize(("make", "change", "field", "message"),
                         [case[1:] for case in BROKEN], ids=[case[0] for case in BROKEN])
def test_a_broken_object_is_named_by_its_cel_rule(make: Callable[[], Obj],
                                                  change: Callable[[Obj], None], field: str,
                                                  message: str) -> None:
    obj = make()
    assert _cel_findings(obj) == []
    change(obj)
    found = _cel_findings(obj)
    assert any(f == field and message in m for f, m in found), found
    # only CEL rules name it: the JSON schema alone accepts the object
    assert all("CEL rule" in m for _, m in found), found


def test_finding_says_which_rule_and_what_to_change() -> None:
    pool = _node_pool()
    _in_without_values(pool)
    found, _ = validate_object(pool)
    assert [str(f) for f in found] == [
        "NodePool/llama-3-1-8b-instruct spec.template.spec.requirements: breaks the CRD's CEL "
        "rule `self.all(x, x.operator == 'In' ? x.values.size() != 0 : true)`: requirements "
        "with operator 'In' must have a value defined; change the field so that the rule holds"]


def test_a_rule_that_cannot_be_evaluated_is_a_finding() -> None:
    """``int('eight')`` fails: the API server rejects the object, so does the check."""
    pool = _node_pool()
    _gt_not_a_number(pool)
    (finding,) = validate_object(pool)[0]
    assert "cannot be evaluated on this value" in finding.message


def test_scaled_object_bounds() -> None:
    scaled = _first(_render("chat-llama-3.1-8b", RenderOptions(autoscaler="keda")).objects,
                    "ScaledObject")
    scaled["spec"]["minReplicaCount"] = scaled["spec"]["maxReplicaCount"] + 1
    assert [f for f, _ in _cel_findings(scaled)] == ["spec"]
    assert "minReplicaCount must be less than or equal to maxReplicaCount" \
        in _cel_findings(scaled)[0][1]


def test_job_set_startup_order_and_depends_on() -> None:
    job_set = _first(_launched("pretrain-7b-1t", "jobset").objects, "JobSet")
    job_set["spec"]["startupPolicy"] = {"startupPolicyOrder": "InOrder"}
    job_set["spec"]["replicatedJobs"][0]["dependsOn"] = [{"name": "x", "status": "Ready"}]
    found = _cel_findings(job_set)
    assert [f for f, _ in found] == ["spec"]
    assert "StartupPolicy and DependsOn APIs are mutually exclusive" in found[0][1]


def test_ray_job_deletion_strategy() -> None:
    job = _first(_launched("pretrain-7b-1t", "rayjob").objects, "RayJob")
    job["spec"]["deletionStrategy"] = {"onSuccess": {"policy": "DeleteCluster"}}
    found = _cel_findings(job)
    assert [f for f, _ in found] == ["spec.deletionStrategy"]
    assert "requires either BOTH onSuccess and onFailure" in found[0][1]


# A made-up schema for what the packaged CRDs do not use: messageExpression, fieldPath, a
# function the evaluator lacks, and a transition rule.
SCHEMA = {"type": "object", "properties": {"spec": {
    "type": "object",
    "properties": {"size": {"type": "string"}, "replicas": {"type": "integer"}},
    "x-kubernetes-validations": [
        {"rule": "self.replicas <= 3", "messageExpression": "'at most 3, not ' + "
         "string(self.replicas)", "fieldPath": ".replicas"},
        {"rule": "quantity(self.size).isLessThan(quantity('1Gi'))", "message": "too big"},
        {"rule": "self.replicas >= oldSelf.replicas", "message": "no scale-down"},
    ]}}}


def test_message_expression_field_path_unknown_function_and_transition_rule() -> None:
    failures, outcomes = evaluate_rules({"kind": "Made", "spec": {"size": "2Gi", "replicas": 5}},
                                        SCHEMA)
    assert [(f.path, f.message) for f in failures] == [("spec.replicas", "at most 3, not 5")]
    cel = coverage(outcomes)
    assert (cel.evaluated, cel.transition) == (1, 1)
    assert cel.not_evaluated == ("Made .spec: uses isLessThan, quantity",)
    assert "1 not evaluated (Made .spec: uses isLessThan, quantity)" in cel.summary()


def test_check_summary_counts_the_rules(tmp_path: Any) -> None:
    """The CLI prints the count under the check line (the README shows the same output)."""
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["render", str(EXAMPLES / "chat-llama-3.1-8b.yaml"),
                                      "-o", str(out), "--check"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert ("CRD CEL rules: 45 evaluated, 3 transition rules skipped (checked on update only)"
            in result.output)
