"""Property-based fuzzing of the HTTP API from its own OpenAPI document (schemathesis).

Every operation gets generated requests, valid and invalid; each response must be no server
error (5xx), carry a documented status and content type, match the documented schema, and
invalid requests must be refused. A random string is almost never a catalogue model, glossary
term or accelerator, so most examples get a real one instead (chosen from the generated string,
so runs repeat): the fuzzing reaches planning, rendering and simulation, not only the name
checks; likewise for simulated durations. Examples are bounded so the file runs in well under
a minute on two cores.
"""

from __future__ import annotations

import zlib
from typing import Any

import schemathesis
import yaml
from hypothesis import HealthCheck, settings
from schemathesis.core.media_types import YAML_MEDIA_TYPES
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from eksplain import api
from eksplain.serve import Limits, create_app

# Short simulations: a fuzzed spec may ask for heavy traffic; the limit is part of what is tested.
APP = create_app(Limits(simulation_s=1.0, simulated_s=600.0))
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)
# Not negative_data_rejection: the spec's models read numbers the way its YAML files do ("512"
# for 512), which JSON Schema's types cannot say, so schemathesis would call that "invalid".
CHECKS = [schemathesis.checks.not_a_server_error, status_code_conformance,
          content_type_conformance, response_schema_conformance]
MODELS = sorted(e.model.id for e in api.models())
TERMS = sorted(e.key for e in api.glossary())
DURATIONS = ["1m", "2m", "90s", "5m"]
HARDWARE = ["h100", "l40s", "a10g", "trainium2", "inferentia2", "p5.48xlarge", "g6e.xlarge"]


@schemathesis.deserializer(*YAML_MEDIA_TYPES)
def _yaml_stream(_ctx: object, response: Any) -> str:
    """/v1/render answers a multi-document stream, documented as a string: every document must
    parse, and the text is what the schema describes."""
    text: str = response.content.decode("utf-8")
    list(yaml.safe_load_all(text))
    return text


def _real(text: str, names: list[str]) -> str:
    """A real name for three generated strings in four, picked by the string itself."""
    digest = zlib.crc32(text.encode())
    return names[digest % len(names)] if digest % 4 else text


def _realistic(case: schemathesis.Case) -> None:
    body: Any = case.body
    if isinstance(body, dict):
        for key, names in (("model", MODELS), ("hardware", HARDWARE)):
            if isinstance(body.get(key), str):
                body[key] = _real(body[key], names)
    if case.path_parameters and isinstance(case.path_parameters.get("term"), str):
        case.path_parameters["term"] = _real(case.path_parameters["term"], TERMS)
    if case.query and isinstance(case.query.get("duration"), str):
        case.query["duration"] = _real(case.query["duration"], DURATIONS)


@schema.parametrize()
@settings(max_examples=30, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_api(case: schemathesis.Case) -> None:
    _realistic(case)
    case.call_and_validate(checks=CHECKS)
