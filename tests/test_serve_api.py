"""The HTTP API through FastAPI's TestClient: every route, its JSON, and every error path.

Results must be the facade's own JSON forms (the documents of ``--json``); errors must be
application/problem+json 4xx with a message, never a 500 and never a traceback.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from eksplain import __version__, api
from eksplain.serve import Limits, create_app
from eksplain.serve.routes import simulation_json
from tests.conftest import LLAMA31_8B_CONFIG

CHAT = {"model": "meta-llama/Llama-3.1-8B", "task": "inference", "precision": ["bf16", "fp8"],
        "tokens": {"input_mean": 1024, "input_p95": 2048, "output_mean": 256,
                   "output_p95": 512},
        "traffic": {"rps": 20, "peak_to_mean": 2.0, "pattern": "daily"},
        "slo": {"ttft_p95": "500ms", "tpot_p95": 0.05}}
PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(create_app(), raise_server_exceptions=False) as c:
        yield c


def problem(response: Any, status: int) -> dict[str, Any]:
    """The response is a problem+json of ``status`` with a message and no traceback."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["title"]
    assert body["detail"]
    assert "Traceback" not in response.text
    assert 'File "' not in response.text
    return body


def fields(body: dict[str, Any]) -> list[str]:
    return [e["field"] for e in body["errors"]]


# ---- results ----

def test_healthz(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok", "version": __version__}


def test_models_are_the_catalogue(client: TestClient) -> None:
    body = client.get("/v1/models").json()
    assert body == [api.model_entry_dict(e) for e in api.models()]
    assert any(m["id"] == "meta-llama/Llama-3.1-8B-Instruct" for m in body)


def test_hardware_filters(client: TestClient) -> None:
    body = client.get("/v1/hardware", params={"family": "p5"}).json()
    assert body == [api.hardware_row_dict(r) for r in api.hardware("p5")]
    assert body
    assert all(row["family"] == "p5" for row in body)


def test_hardware_bad_memory_is_a_problem(client: TestClient) -> None:
    body = problem(client.get("/v1/hardware", params={"min_memory": "lots"}), 422)
    assert "lots" in body["detail"]


def test_glossary_lists_every_term(client: TestClient) -> None:
    body = client.get("/v1/glossary").json()
    assert [t["key"] for t in body] == [e.key for e in api.glossary()]
    assert len(body) == 69


def test_explain_a_term_for_a_workload(client: TestClient) -> None:
    response = client.get("/v1/explain/kv cache", params={"model": "llama-3.1-70b"})
    body = response.json()
    assert response.status_code == 200
    assert body["key"] == "attention"  # "kv cache" is an alias
    assert body["workload"]["model"] == "meta-llama/Llama-3.1-70B-Instruct"
    assert body["impact"]["rows"]


def test_explain_unknown_term_is_404_with_suggestions(client: TestClient) -> None:
    body = problem(client.get("/v1/explain/karpentr"), 404)
    assert "karpenter" in body["suggestions"]
    assert fields(body) == ["path.term"]


def test_explain_unknown_model_names_the_query_field(client: TestClient) -> None:
    body = problem(client.get("/v1/explain/hpa", params={"model": "nosuch-model"}), 422)
    assert fields(body) == ["query.model"]


def test_estimate_is_the_cli_json(client: TestClient) -> None:
    request = {"model": "llama-3.1-8b", "hardware": "h100", "batch": 32, "seq_len": 4096,
               "input_tokens": 512, "output_tokens": 256}
    response = client.post("/v1/estimate", json=request)
    assert response.status_code == 200, response.text
    expected = api.estimate(api.EstimateRequest.model_validate(request)).to_dict()
    assert response.json() == json.loads(json.dumps(expected))
    assert response.json()["memory_per_device"]["total_bytes"] > 0


def test_plan_is_the_cli_json(client: TestClient) -> None:
    response = client.post("/v1/plan", json=CHAT, params={"top": 3})
    assert response.status_code == 200, response.text
    spec = api.spec_from_dict(CHAT)
    expected = api.plan_dict(api.plan(spec), 3, spec)
    assert response.json() == json.loads(json.dumps(expected))
    assert len(response.json()["alternatives"]) == 3


def test_render_yaml_stream(client: TestClient) -> None:
    response = client.post("/v1/render", json=CHAT)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/yaml")
    kinds = [d["kind"] for d in yaml.safe_load_all(response.text) if d]
    assert "Deployment" in kinds
    assert "NodePool" in kinds
    assert response.text == api.render_stream(api.render(api.spec_from_dict(CHAT)))


def test_render_zip_is_deterministic_and_checked(client: TestClient) -> None:
    first = client.post("/v1/render", json=CHAT, params={"format": "zip", "check": True})
    second = client.post("/v1/render", json=CHAT, params={"format": "zip", "check": True})
    assert first.status_code == 200, first.text
    assert first.headers["content-type"] == "application/zip"
    assert 'filename="llama-3-1-8b-instruct-manifests.zip"' in first.headers["content-disposition"]
    assert first.content == second.content
    names = zipfile.ZipFile(io.BytesIO(first.content)).namelist()
    assert "llama-3-1-8b-instruct-manifests/kustomization.yaml" in names
    assert "llama-3-1-8b-instruct-manifests/README.md" in names


def test_render_bad_namespace_is_refused(client: TestClient) -> None:
    body = problem(client.post("/v1/render", json=CHAT, params={"namespace": "Bad_Name"}), 422)
    assert fields(body) == ["query.namespace"]


def test_render_what_cannot_run_is_a_problem_with_a_hint(client: TestClient) -> None:
    # The default spec's plan picks Inferentia, where the vLLM CUDA image cannot run.
    body = problem(client.post("/v1/render", json={"model": "llama-3.1-8b",
                                                   "task": "inference"}), 422)
    assert "engine: neuron" in body["hint"]


def test_simulate_is_the_cli_json(client: TestClient) -> None:
    response = client.post("/v1/simulate", json=CHAT, params={"duration": "2m", "seed": 3})
    assert response.status_code == 200, response.text
    spec = api.spec_from_dict(CHAT)
    sim = api.simulate(spec, api.SimulateOptions(duration_s=120, seed=3))
    assert response.json() == json.loads(json.dumps(simulation_json(sim)))
    assert simulation_json(sim) == api.simulation_dict(sim)
    assert [row["minute"] for row in response.json()["timeline"]] == [1, 2]


@pytest.mark.parametrize("duration", ["abc", "0s", "2d"])
def test_simulate_duration_outside_the_limit(client: TestClient, duration: str) -> None:
    body = problem(client.post("/v1/simulate", json=CHAT, params={"duration": duration}), 422)
    assert fields(body) == ["query.duration"]


def test_simulation_time_limit() -> None:
    # No time at all: the run stops at its first simulated minute and says what to change.
    with TestClient(create_app(Limits(simulation_s=0.0))) as c:
        body = problem(c.post("/v1/simulate", json=CHAT, params={"duration": "5m"}), 422)
    assert "limit of 0 s" in body["detail"]
    assert fields(body) == ["query.duration"]


def test_simulations_at_once_are_limited() -> None:
    with TestClient(create_app(Limits(simulations=0))) as c:
        body = problem(c.post("/v1/simulate", json=CHAT, params={"duration": "1m"}), 429)
    assert "retry" in body["hint"]
    with TestClient(create_app(Limits(simulations=1))) as c:  # a finished run frees its slot
        for _ in range(2):
            response = c.post("/v1/simulate", json=CHAT, params={"duration": "1m"})
            assert response.status_code == 200, response.text


# ---- bad input ----

def test_malformed_json_is_400(client: TestClient) -> None:
    response = client.post("/v1/plan", content=b'{"model": "llama-3.1-8b", "task": ',
                           headers={"content-type": "application/json"})
    body = problem(response, 400)
    assert "not valid JSON" in body["detail"]


@pytest.mark.parametrize(("body", "field"), [
    ({"model": "llama-3.1-8b", "task": "inference", "traffic": {"rps": "fast"}}, "traffic.rps"),
    ({"model": "llama-3.1-8b", "task": "cooking"}, "task"),
    ({"model": "llama-3.1-8b"}, "task"),
    ({"model": "llama-3.1-8b", "task": "inference", "colour": "red"}, "colour"),
    ({"model": "llama-3.1-8b", "task": "inference",
      "traffic": {"peak_to_mean": 30, "pattern": "daily"}}, "traffic"),
    ([1, 2, 3], "body"),
])
def test_wrong_fields_are_422_naming_the_field(client: TestClient, body: Any,
                                                field: str) -> None:
    result = problem(client.post("/v1/plan", json=body), 422)
    assert field in fields(result)


def test_wrong_types_in_an_estimate(client: TestClient) -> None:
    body = problem(client.post("/v1/estimate", json={"model": "llama-3.1-8b", "hardware": 7,
                                                     "batch": "many"}), 422)
    assert set(fields(body)) == {"hardware", "batch"}


def test_unknown_model_is_422_with_suggestions(client: TestClient) -> None:
    body = problem(client.post("/v1/plan", json={**CHAT, "model": "llama-3.1-8"}), 422)
    assert "Unknown model" in body["detail"]
    assert body["suggestions"]
    assert fields(body) == ["model"]


def test_unknown_hardware_is_422(client: TestClient) -> None:
    body = problem(client.post("/v1/estimate", json={"model": "llama-3.1-8b",
                                                     "hardware": "h1000"}), 422)
    assert "h100" in body["suggestions"]


def test_infeasible_spec_is_422_saying_why(client: TestClient) -> None:
    spec = {**CHAT, "model": "meta-llama/Llama-3.1-405B", "constraints": {"families": ["g6"]}}
    body = problem(client.post("/v1/plan", json=spec), 422)
    assert body["detail"]


def test_huge_declared_body_is_413(client: TestClient) -> None:
    response = client.post("/v1/plan", content=b"{" + b" " * (2 << 20) + b"}",
                           headers={"content-type": "application/json"})
    assert "1,048,576 bytes" in problem(response, 413)["detail"]


def test_huge_streamed_body_is_413(client: TestClient) -> None:
    # No Content-Length: the limit counts the bytes as they arrive.
    def chunks() -> Iterator[bytes]:
        for _ in range(40):
            yield b" " * 65536

    response = client.post("/v1/plan", content=chunks(),
                           headers={"content-type": "application/json"})
    assert "content-length" not in response.request.headers
    problem(response, 413)


def test_body_limit_is_configurable() -> None:
    with TestClient(create_app(Limits(body_bytes=64))) as c:
        problem(c.post("/v1/plan", json=CHAT), 413)
        assert c.post("/v1/plan", json={"model": "x", "task": "inference"}).status_code == 422


def test_unknown_route_and_method_are_problems(client: TestClient) -> None:
    problem(client.get("/v1/nothing"), 404)
    response = client.get("/v1/plan")
    problem(response, 405)
    assert response.headers["allow"] == "POST"


def test_a_bug_is_500_without_a_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_: Any, **__: Any) -> None:
        raise RuntimeError("secret internal state")

    monkeypatch.setattr(api, "plan", broken)
    with TestClient(create_app(), raise_server_exceptions=False) as c:
        response = c.post("/v1/plan", json=CHAT)
    body = problem(response, 500)
    assert "secret" not in response.text
    assert "RuntimeError" not in response.text
    assert "bug" in body["detail"]


# ---- no files through any parameter ----

def test_a_model_path_is_refused(client: TestClient, llama_config_dir: Path) -> None:
    # The CLI reads this directory's config.json; the API must not look at it.
    for name in (str(llama_config_dir), str(llama_config_dir / "config.json"),
                 "/etc/passwd", "../../etc/hosts.json"):
        body = problem(client.post("/v1/plan", json={**CHAT, "model": name}), 422)
        assert fields(body) == ["model"], name
        body = problem(client.post("/v1/estimate", json={"model": name, "hardware": "h100"}),
                       422)
        assert "never paths" in body["hint"]
        problem(client.get("/v1/explain/hpa", params={"model": name}), 422)


def test_a_trace_file_is_refused(client: TestClient, tmp_path: Path) -> None:
    trace = tmp_path / "trace.csv"
    trace.write_text("timestamp_s,input_tokens,output_tokens\n0,10,10\n")
    spec = {**CHAT, "traffic": {"rps": 1, "trace": str(trace)}}
    for path in ("/v1/plan", "/v1/simulate", "/v1/render"):
        body = problem(client.post(path, json=spec), 422)
        assert fields(body) == ["traffic.trace"]


# ---- the page and the document ----

def test_the_page_and_its_assets_ship_in_the_package(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    for asset in ("/static/app.js", "/static/app.css"):
        assert asset in page.text
        response = client.get(asset)
        assert response.status_code == 200
        assert len(response.text) > 1000
        # offline: nothing is loaded from another host
        assert "http://" not in response.text.replace("http://www.w3.org/2000/svg", "")
        assert "https://" not in response.text
    assert "https://" not in page.text
    assert "http://" not in page.text


def test_static_files_stay_in_their_folder(client: TestClient) -> None:
    assert client.get("/static/../app.py").status_code == 404
    assert client.get("/static/%2e%2e/app.py").status_code == 404


def test_openapi_documents_every_route_with_the_spec_models(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    assert set(doc["paths"]) == {"/healthz", "/v1/models", "/v1/hardware", "/v1/glossary",
                                 "/v1/explain/{term}", "/v1/estimate", "/v1/plan",
                                 "/v1/render", "/v1/simulate"}
    body = doc["paths"]["/v1/plan"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"]["$ref"].endswith("/WorkloadSpec")
    estimate = doc["paths"]["/v1/estimate"]["post"]["requestBody"]["content"]
    assert estimate["application/json"]["schema"]["$ref"].endswith("/EstimateRequest")
    assert PROBLEM in doc["paths"]["/v1/plan"]["post"]["responses"]["422"]["content"]


def test_the_cli_starts_without_the_web_stack() -> None:
    code = "import sys, eksplain.cli.main; print('fastapi' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def test_serve_without_the_extra_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from eksplain.cli.main import app

    monkeypatch.setitem(sys.modules, "uvicorn", None)  # as if `eksplain[serve]` were missing
    result = CliRunner().invoke(app, ["serve", "--port", "0"])
    assert result.exit_code == 2
    assert "pip install 'eksplain[serve]'" in result.output


def test_a_model_config_sent_inline_is_estimated_like_the_catalogue_entry(
        client: TestClient) -> None:
    inline = json.dumps({**LLAMA31_8B_CONFIG, "_name_or_path": "my-org/my-llama"})
    response = client.post("/v1/estimate", json={"model": inline, "hardware": "h100"})
    assert response.status_code == 200, response.text
    catalogue = client.post("/v1/estimate", json={"model": "meta-llama/Llama-3.1-8B",
                                                   "hardware": "h100"}).json()
    assert response.json()["memory_per_device"]["weights_bytes"] == (
        catalogue["memory_per_device"]["weights_bytes"])
    plan = client.post("/v1/plan", json={**CHAT, "model": inline})
    assert plan.status_code == 200, plan.text


def test_a_broken_inline_config_is_422_on_the_model_field(client: TestClient) -> None:
    for inline in ("{not json", "[1, 2]", json.dumps({"hidden_size": 8})):
        body = problem(client.post("/v1/estimate", json={"model": inline, "hardware": "h100"}),
                       422)
        assert fields(body) == ["model"], inline


@pytest.mark.parametrize("change", [{"num_attention_heads": 0}, {"num_hidden_layers": -1},
                                    {"hidden_size": 0}, {"intermediate_size": -5},
                                    {"vocab_size": -1}, {"hidden_size": "wide"}])
def test_an_inline_config_with_impossible_sizes_is_422_not_500(client: TestClient,
                                                             change: dict[str, Any]) -> None:
    inline = json.dumps({**LLAMA31_8B_CONFIG, **change})
    body = problem(client.post("/v1/estimate", json={"model": inline, "hardware": "h100"}), 422)
    assert fields(body) == ["model"]
