"""``render --check``: schema validation of every object, then the cross-object checks.

Each finding names the object, the field and what to change; no findings means the render is
valid for the Kubernetes version in ``schemas.KUBERNETES_VERSION`` and the packaged CRDs,
their CEL rules included. ``CheckReport.cel`` counts the CEL rules met: evaluated, skipped as
transition rules, or not evaluated for want of a function (``render.cel``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eksplain.hardware import HardwareCatalog
from eksplain.render.cel import CelCoverage, RuleOutcome, coverage
from eksplain.render.consistency import check_consistency
from eksplain.render.schemas import Finding, validate_object

__all__ = ["CelCoverage", "CheckReport", "Finding", "check_objects", "check_report"]


@dataclass(frozen=True)
class CheckReport:
    """What ``--check`` found, and how many CRD CEL rules it could evaluate."""

    findings: tuple[Finding, ...]
    cel: CelCoverage


def check_report(objects: tuple[dict[str, Any], ...], catalog: HardwareCatalog,
                 external_secrets: tuple[str, ...] = ()) -> CheckReport:
    """Schema findings (object by object) followed by cross-object findings."""
    schema: list[Finding] = []
    outcomes: set[RuleOutcome] = set()
    for obj in objects:
        found, met = validate_object(obj)
        schema += found
        outcomes |= met
    findings = (*schema, *check_consistency(objects, catalog, external_secrets))
    return CheckReport(findings, coverage(frozenset(outcomes)))


def check_objects(objects: tuple[dict[str, Any], ...], catalog: HardwareCatalog,
                  external_secrets: tuple[str, ...] = ()) -> tuple[Finding, ...]:
    """Schema findings (object by object) followed by cross-object findings."""
    return check_report(objects, catalog, external_secrets).findings
