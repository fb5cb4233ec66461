"""Schema validation of rendered objects, offline.

Core kinds go to ``kubernetes-validate`` in strict mode (unknown fields rejected), for the
Kubernetes version below. Custom resources go to the upstream CRD schemas packaged in
``eksplain/data/crds`` (see its README), checked with Kubernetes semantics rather than plain JSON
Schema: objects that declare properties are closed, ``nullable`` admits null, defaults are
filled in before ``required`` is checked, and the root ``metadata`` (which CRDs leave to the
API server's ObjectMeta rules) is checked with the core schema, its namespace against the CRD's
scope. Names are checked for RFC 1123 syntax. The CRDs' CEL rules (``x-kubernetes-validations``)
are evaluated on the defaulted object as the API server does (``render.cel``); transition rules
(``oldSelf``) are skipped, since a render only creates, and a rule that calls a function the
evaluator lacks is reported as not evaluated. Both are counted in the rule outcomes
``validate_object`` returns.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

import jsonschema
import kubernetes_validate  # type: ignore[import-untyped]

from eksplain.render.cel import CelFailure, RuleOutcome, evaluate_rules
from eksplain.render.context import KUBERNETES_VERSION

__all__ = ["KUBERNETES_VERSION", "Finding", "validate_object", "validate_schema"]


@dataclass(frozen=True)
class Finding:
    """One problem: which object, which field, and what to change."""

    object: str  # Kind/namespace/name
    field: str  # a dotted path, "" for the whole object
    message: str

    def __str__(self) -> str:
        where = f" {self.field}" if self.field else ""
        return f"{self.object}{where}: {self.message}"


def object_ref(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    ns = f"{meta['namespace']}/" if meta.get("namespace") else ""
    return f"{obj.get('kind', '?')}/{ns}{meta.get('name', '?')}"


def _dotted(path: Any) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out.lstrip(".")


def _close(node: Any, root: bool = True) -> Any:
    """A CRD schema with Kubernetes' structural rules made explicit for jsonschema."""
    if isinstance(node, list):
        return [_close(n, root=False) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _close(v, root=False) for k, v in node.items()
           if k not in ("properties",)}
    if "properties" in node:
        props = {k: _close(v, root=False) for k, v in node["properties"].items()}
        if root and "metadata" in props:
            props["metadata"] = {"type": "object"}  # ObjectMeta: the API server's own rules
        out["properties"] = props
        if ("additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")):
            out["additionalProperties"] = False
    if node.get("nullable") and isinstance(node.get("type"), str):
        out["type"] = [node["type"], "null"]
    return out


def _crd_file(name: str) -> Any:
    node = resources.files("eksplain.data").joinpath("crds")
    for part in name.split("/"):
        node = node.joinpath(part)
    return json.loads(node.read_text(encoding="utf-8"))


@dataclass(frozen=True)
class _Crd:
    validator: jsonschema.Draft4Validator
    schema: dict[str, Any]  # closed as the API server's strict field validation is
    namespaced: bool


@functools.cache
def _crd(api_version: str, kind: str) -> _Crd | None:
    """A packaged CRD's validator (compiled once), closed schema and scope."""
    for entry in _crd_file("index.json"):
        if entry["apiVersion"] == api_version and entry["kind"] == kind:
            schema = _close(_crd_file(entry["file"]))
            return _Crd(jsonschema.Draft4Validator(schema), schema,
                        entry["scope"] == "Namespaced")
    return None


def _defaulted(instance: Any, schema: dict[str, Any]) -> Any:
    """Fill schema defaults and drop nulls of non-nullable fields, as the API server does
    before it validates."""
    if isinstance(instance, dict) and "properties" in schema:
        out = {}
        for key, value in instance.items():
            sub = schema["properties"].get(key)
            if value is None and sub is not None and not sub.get("nullable"):
                continue
            out[key] = _defaulted(value, sub) if sub else value
        for key, sub in schema["properties"].items():
            if key not in out and "default" in sub:
                out[key] = copy.deepcopy(sub["default"])
        return out
    if isinstance(instance, list) and isinstance(schema.get("items"), dict):
        return [_defaulted(item, schema["items"]) for item in instance]
    return instance


def _cel_finding(obj: dict[str, Any], failure: CelFailure) -> Finding:
    if failure.error:
        text = (f"breaks the CRD's CEL rule `{failure.rule}` ({failure.message}): it cannot be "
                f"evaluated on this value ({failure.error}); change the value so it can")
    else:
        text = (f"breaks the CRD's CEL rule `{failure.rule}`: {failure.message}; change the "
                "field so that the rule holds")
    return Finding(object_ref(obj), failure.path, text)


def _validate_crd(obj: dict[str, Any], crd: _Crd) -> tuple[list[Finding], frozenset[RuleOutcome]]:
    instance = _defaulted(obj, crd.schema)
    errors = sorted(crd.validator.iter_errors(instance), key=lambda e: list(map(str, e.path)))
    found = [Finding(object_ref(obj), _dotted(e.path), f"does not match the CRD schema: "
                     f"{e.message}") for e in errors]
    failures, outcomes = evaluate_rules(instance, crd.schema)
    found += [_cel_finding(obj, f) for f in failures]
    meta = obj.get("metadata") or {}
    if crd.namespaced != ("namespace" in meta):
        scope = "namespaced" if crd.namespaced else "cluster-scoped"
        found.append(Finding(object_ref(obj), "metadata.namespace",
                             f"{obj.get('kind')} is {scope}: "
                             + ("set" if crd.namespaced else "remove") + " the namespace"))
    # The root metadata is ObjectMeta, which the CRD leaves to the API server: check it with
    # the core schema by wrapping it in a ConfigMap.
    wrapper = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta}
    return found + [dataclasses.replace(f, object=object_ref(obj))
                    for f in _validate_core(wrapper)], outcomes


# RFC 1123 names, as the API server requires for these kinds' metadata.name.
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL_KINDS = ("Namespace", "Service")  # names that must be a single DNS label (63)


def _check_name(obj: dict[str, Any]) -> list[Finding]:
    name = str((obj.get("metadata") or {}).get("name", ""))
    label = obj.get("kind") in _DNS_LABEL_KINDS
    limit = 63 if label else 253
    if _DNS_SUBDOMAIN.match(name) and len(name) <= limit and not (label and "." in name):
        return []
    return [Finding(object_ref(obj), "metadata.name",
                    f"{name!r} is not a valid name: use at most {limit} lower-case letters, "
                    "digits and '-'" + ("" if label else " or '.'") + ", starting and ending "
                    "with a letter or digit")]


def _validate_core(obj: dict[str, Any]) -> list[Finding]:
    try:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return [Finding(object_ref(obj), _dotted(exc.path),
                        f"does not match the Kubernetes {KUBERNETES_VERSION} schema: "
                        f"{exc.message}")]
    except kubernetes_validate.SchemaNotFoundError:
        return [Finding(object_ref(obj), "apiVersion",
                        "no schema for this kind: neither a core kind of Kubernetes "
                        f"{KUBERNETES_VERSION} nor a packaged CRD")]
    return []


def validate_object(obj: dict[str, Any]) -> tuple[list[Finding], frozenset[RuleOutcome]]:
    """Schema problems of one object (CEL rules included; empty when it is valid), its name's
    syntax, and the CRD rules it met (evaluated or why not)."""
    crd = _crd(str(obj.get("apiVersion")), str(obj.get("kind")))
    if crd is None:
        return _validate_core(obj) + _check_name(obj), frozenset()
    found, outcomes = _validate_crd(obj, crd)
    return found + _check_name(obj), outcomes


def validate_schema(obj: dict[str, Any]) -> list[Finding]:
    """Schema problems of one object (empty when it is valid), and its name's syntax."""
    return validate_object(obj)[0]
