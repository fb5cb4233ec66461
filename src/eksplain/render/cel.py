"""CEL rules (``x-kubernetes-validations``) of the packaged CRDs, evaluated offline.

The API server evaluates each rule of a CRD schema after defaulting, once per value present at
the schema node that carries it, with ``self`` bound to that value (an object, a list item, a
map value or a scalar); a rule that gives ``false`` rejects the object with the rule's
``message`` (``failed rule: RULE`` when there is none), and a rule that cannot be evaluated on
the value (a missing field, ``int('x')``) rejects it too. Source: Kubernetes docs, "Extend the
Kubernetes API with CustomResourceDefinitions", section "Validation rules"
(https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#validation-rules).

Evaluation here uses ``cel-python`` (``celpy``), whose ``matches`` uses RE2 as the API server
does, plus the Kubernetes extension functions that the packaged CRDs call (``_EXTENSIONS``,
from the Kubernetes CEL libraries: https://kubernetes.io/docs/reference/using-api/cel/):

* ``str.find(regex)``: the first match of the regex, or ``''`` (Kubernetes regex library);
* ``str.split(sep)``: the parts between separators, as Go's ``strings.Split`` (Kubernetes
  strings library; Python's ``str.split`` gives the same for a non-empty separator).

A rule that calls anything else outside standard CEL is reported as *not evaluated: uses FUNC*,
and a transition rule (one that reads ``oldSelf``) is skipped: the API server checks it only on
update, against the stored object, and a render only creates. Both are counted
(``CelCoverage``), never silently ignored.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import celpy
import re2  # type: ignore[import-untyped]
from celpy import celtypes
from celpy.adapter import json_to_cel
from celpy.celparser import CELParseError
from celpy.evaluation import CELEvalError

__all__ = ["CelCoverage", "CelFailure", "RuleOutcome", "coverage", "evaluate_rules", "prepare",
           "schema_rules", "skip_reason"]

# Standard CEL macros and functions that celpy implements (celpy.evaluation.base_functions).
_STANDARD = frozenset({
    "has", "all", "exists", "exists_one", "map", "filter",
    "size", "contains", "startsWith", "endsWith", "matches", "type",
    "int", "uint", "double", "string", "bool", "bytes", "duration", "timestamp",
    "getDate", "getDayOfMonth", "getDayOfWeek", "getDayOfYear", "getFullYear", "getMonth",
    "getHours", "getMilliseconds", "getMinutes", "getSeconds",
})


def _find(text: celtypes.StringType, regex: celtypes.StringType) -> celtypes.StringType:
    match = re2.search(str(regex), str(text))
    return celtypes.StringType(match.group(0) if match else "")


def _split(text: celtypes.StringType, sep: celtypes.StringType) -> celtypes.ListType:
    parts = list(str(text)) if sep == "" else str(text).split(str(sep))
    return celtypes.ListType([celtypes.StringType(p) for p in parts])


_EXTENSIONS: dict[str, Any] = {"find": _find, "split": _split}
_SUPPORTED = _STANDARD | _EXTENSIONS.keys()

_STRING = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")
_CALL = re.compile(r"\b([A-Za-z_]\w*)\s*\(")
_OLD_SELF = re.compile(r"\boldSelf\b")


@dataclass(frozen=True)
class _Compiled:
    """A rule compiled once: its program, or why it is not evaluated."""

    program: celpy.Runner | None
    skipped: str  # "" when evaluated


@functools.cache
def _environment() -> celpy.Environment:
    return celpy.Environment()


def prepare() -> None:
    """Build the CEL environment now. celpy's ``Environment`` raises the process's recursion
    limit (``sys.setrecursionlimit(2500)``) when it is created: a long-lived process (``eksplain
    serve``) does it once at start rather than inside the first request that checks a render."""
    _environment()


def _calls(expression: str) -> list[str]:
    """Functions and macros an expression calls, string literals left out."""
    return sorted(set(_CALL.findall(_STRING.sub("''", expression))))


@functools.cache
def _compile(expression: str) -> _Compiled:
    if _OLD_SELF.search(expression):
        return _Compiled(None, "transition rule (reads oldSelf): checked on update only")
    unknown = [name for name in _calls(expression) if name not in _SUPPORTED]
    if unknown:
        return _Compiled(None, "uses " + ", ".join(unknown))
    env = _environment()
    try:
        return _Compiled(env.program(env.compile(expression), functions=_EXTENSIONS), "")
    except CELParseError as exc:
        return _Compiled(None, f"does not parse: {exc}")


def skip_reason(expression: str) -> str:
    """Why a rule is not evaluated here ("" when it is): a transition rule, or a function
    outside standard CEL and ``_EXTENSIONS``."""
    return _compile(expression).skipped


def _subschemas(schema: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for key, node in (schema.get("properties") or {}).items():
        yield f".{key}", node
    if isinstance(schema.get("items"), dict):
        yield "[]", schema["items"]
    if isinstance(schema.get("additionalProperties"), dict):
        yield "{}", schema["additionalProperties"]


def schema_rules(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, str]]:
    """(schema path, rule) of every ``x-kubernetes-validations`` entry in a CRD schema."""
    for rule in schema.get("x-kubernetes-validations") or ():
        yield path or "<root>", str(rule["rule"])
    for mark, node in _subschemas(schema):
        yield from schema_rules(node, path + mark)


@dataclass(frozen=True)
class CelFailure:
    """A rule that rejects a value: where (a dotted path), the rule and what it says."""

    path: str
    rule: str
    message: str
    error: str  # "" when the rule gave false; else why it could not be evaluated


@dataclass(frozen=True)
class RuleOutcome:
    """One rule of a CRD met at one schema node: evaluated, or why not."""

    kind: str
    schema_path: str
    rule: str
    skipped: str  # "" when evaluated


def _error_text(error: CELEvalError) -> str:
    """celpy's error: (summary, exception class, the exception's args); the latter say more
    ("invalid literal for int()" rather than "return error for overflow")."""
    args = error.args
    if len(args) >= 3 and isinstance(args[2], tuple) and args[2]:
        return str(args[2][0])
    return str(args[0]) if args else str(error)


def _run(program: celpy.Runner, value: Any) -> tuple[Any, str]:
    try:
        result = program.evaluate({"self": json_to_cel(value)})
    except CELEvalError as exc:
        return None, _error_text(exc)
    if isinstance(result, CELEvalError):
        return None, _error_text(result)
    return result, ""


def _message(rule: dict[str, Any], value: Any) -> str:
    """``messageExpression`` when it evaluates to a string, else ``message``."""
    expression = rule.get("messageExpression")
    if isinstance(expression, str):
        compiled = _compile(expression)
        if compiled.program is not None:
            text, error = _run(compiled.program, value)
            if not error and isinstance(text, str) and text:
                return str(text)
    return str(rule.get("message") or f"failed rule: {rule['rule']}")


def _apply(rule: dict[str, Any], value: Any, path: str) -> CelFailure | None:
    compiled = _compile(rule["rule"])
    if compiled.program is None:
        return None
    result, error = _run(compiled.program, value)
    if not error and not isinstance(result, celtypes.BoolType):
        error = f"gave {result!r}, not a bool"
    if not error and bool(result):
        return None
    where = (path + str(rule.get("fieldPath") or "")).lstrip(".")
    return CelFailure(where, rule["rule"], _message(rule, value), error)


def _children(value: Any, schema: dict[str, Any],
              path: str) -> Iterator[tuple[Any, dict[str, Any], str, str]]:
    """(value, schema, path, schema path) of each child that has a schema node."""
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        for key, sub in value.items():
            node = props.get(key) or (extra if isinstance(extra, dict) else None)
            if node is not None and sub is not None:
                mark = f".{key}" if key in props else "{}"
                yield sub, node, f"{path}.{key}".lstrip("."), mark
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            if item is not None:
                yield item, schema["items"], f"{path}[{i}]", "[]"


def _walk(value: Any, schema: dict[str, Any], path: str, schema_path: str,
          out: tuple[list[CelFailure], set[tuple[str, str, str]]]) -> None:
    failures, met = out
    for rule in schema.get("x-kubernetes-validations") or ():
        met.add((schema_path, rule["rule"], skip_reason(rule["rule"])))
        failure = _apply(rule, value, path)
        if failure is not None:
            failures.append(failure)
    for sub, node, sub_path, mark in _children(value, schema, path):
        _walk(sub, node, sub_path, schema_path + mark, out)


def evaluate_rules(instance: dict[str, Any],
                   schema: dict[str, Any]) -> tuple[list[CelFailure], frozenset[RuleOutcome]]:
    """The rules ``instance`` (already defaulted) breaks, and every rule met on the way."""
    out: tuple[list[CelFailure], set[tuple[str, str, str]]] = ([], set())
    _walk(instance, schema, "", "", out)
    kind = str(instance.get("kind", "?"))
    return out[0], frozenset(RuleOutcome(kind, p or "<root>", r, s) for p, r, s in out[1])


@dataclass(frozen=True)
class CelCoverage:
    """Distinct CRD rules met by a set of objects: evaluated, skipped and not evaluated."""

    evaluated: int
    transition: int  # transition rules (oldSelf), checked by the API server on update only
    not_evaluated: tuple[str, ...]  # "Kind schema.path: uses FUNC", one per rule

    def summary(self) -> str:
        text = (f"CRD CEL rules: {self.evaluated} evaluated, {self.transition} transition "
                "rules skipped (checked on update only)")
        if self.not_evaluated:
            text += f", {len(self.not_evaluated)} not evaluated (" \
                    + "; ".join(self.not_evaluated) + ")"
        return text


def coverage(outcomes: frozenset[RuleOutcome]) -> CelCoverage:
    """Count outcomes; ``not_evaluated`` is sorted so the summary is deterministic."""
    evaluated = sum(1 for o in outcomes if not o.skipped)
    transition = sum(1 for o in outcomes if o.skipped.startswith("transition"))
    other = sorted(f"{o.kind} {o.schema_path}: {o.skipped}" for o in outcomes
                   if o.skipped and not o.skipped.startswith("transition"))
    return CelCoverage(evaluated, transition, tuple(other))
