"""``render --check``: schema validation of every object, then the cross-object checks.

Each finding names the object, the field and what to change; no findings means the render is
valid for the Kubernetes version in ``schemas.KUBERNETES_VERSION`` and the packaged CRDs.
"""

from __future__ import annotations

from typing import Any

from eksplain.hardware import HardwareCatalog
from eksplain.render.consistency import check_consistency
from eksplain.render.schemas import Finding, validate_schema

__all__ = ["Finding", "check_objects"]


def check_objects(objects: tuple[dict[str, Any], ...], catalog: HardwareCatalog,
                  external_secrets: tuple[str, ...] = ()) -> tuple[Finding, ...]:
    """Schema findings (object by object) followed by cross-object findings."""
    schema = [f for obj in objects for f in validate_schema(obj)]
    return (*schema, *check_consistency(objects, catalog, external_secrets))
