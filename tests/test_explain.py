"""The glossary (every seed term, in our own words) and its figures for the user's workload."""

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from eksplain import api
from eksplain.catalog import resolve_model
from eksplain.cli.main import app
from eksplain.errors import CatalogError
from eksplain.estimate import EstimateRequest
from eksplain.explain import explain, glossary
from eksplain.explain.glossary import find_term, normalise
from eksplain.explain.impacts import IMPACTS, Impact, Workload, bubble_fraction
from eksplain.search import DECISION_TERMS

ROOT = Path(__file__).resolve().parents[1]
SEED = ROOT.parent / "shared" / "seed" / "glossary.md"
ENTRIES = glossary()
LLAMA_8B = "meta-llama/Llama-3.1-8B"


def _seed() -> str:
    if not SEED.is_file():
        pytest.skip("../shared/seed/glossary.md is not beside this checkout")
    return SEED.read_text()


def _rows(impact: Impact | None) -> dict[str, tuple[str, ...]]:
    assert impact is not None
    return {row[0]: row for row in impact.rows}


def test_every_seed_term_has_an_entry() -> None:
    names = re.findall(r"^\*\*(.+?)\*\*", _seed(), re.M)
    assert len(names) == 69
    terms = {e.term for e in ENTRIES}
    assert sorted(set(names) - terms) == []
    for name in names:  # and each resolves by its own name
        assert find_term(ENTRIES, name).term == name


def test_keys_and_aliases_are_unique_and_related_keys_exist() -> None:
    keys = [e.key for e in ENTRIES]
    assert len(keys) == len(set(keys))
    seen: dict[str, str] = {}
    for e in ENTRIES:
        for name in (e.key, normalise(e.term), *e.aliases):
            assert seen.setdefault(normalise(name), e.key) == e.key, name
        assert e.related
        assert set(e.related) <= set(keys)
        assert e.key not in e.related
        assert e.definition
        assert e.infrastructure
        assert e.eksplain


@pytest.mark.parametrize(("text", "key"), [
    ("hpa", "hpa"), ("PagedAttention", "attention"), ("fsx", "fsx-lustre"), ("bf16", "fp16-bf16"),
    ("dp", "data-parallelism"), ("tp", "model-parallelism"), ("KV cache", "attention"),
    ("Tensor Parallelism", "model-parallelism"), ("pp", "pipeline-parallelism"),
])
def test_aliases_resolve(text: str, key: str) -> None:
    assert find_term(ENTRIES, text).key == key


def test_unknown_term_suggests_the_nearest() -> None:
    with pytest.raises(CatalogError, match=r"Did you mean.*quantization"):
        find_term(ENTRIES, "quantisaton")


def test_entries_are_in_our_own_words() -> None:
    # No run of 6 words of the seed's prose reappears in an entry (facts carry over, prose not).
    def runs(text: str) -> set[tuple[str, ...]]:
        words = re.findall(r"[a-z0-9]+", text.lower())
        return {tuple(words[i:i + 6]) for i in range(len(words) - 5)}

    seed = runs(re.sub(r"^\*\*.+?\*\*", "", _seed(), flags=re.M))
    for e in ENTRIES:
        shared = runs(" ".join((e.definition, e.infrastructure, e.eksplain))) & seed
        assert not shared, (e.key, shared)


def test_every_plan_decision_term_is_in_the_glossary() -> None:
    for key in DECISION_TERMS:
        assert find_term(ENTRIES, key)


def test_every_impact_key_is_an_entry_and_computes_for_the_default_workload() -> None:
    keys = {e.key for e in ENTRIES}
    assert set(IMPACTS) <= keys
    for fn in set(IMPACTS.values()):
        key = next(k for k, f in IMPACTS.items() if f is fn)
        ex = explain(key)
        assert ex.impact is not None, (key, ex.impact_error)
        assert ex.impact.rows or ex.impact.notes
        for row in ex.impact.rows:
            assert len(row) == len(ex.impact.headers)


def test_default_workload_is_stated_and_sized() -> None:
    ex = explain("attention")
    assert ex.workload is not None
    assert ex.workload.default
    assert ex.workload.devices == 1
    assert "one device" in ex.workload.describe()
    mine = explain("attention", model="meta-llama/Llama-3.1-70B")
    # 70B in bf16 is 131 GiB: two H100s hold the weights (65.7 GiB each) but leave a 3.7 GiB KV
    # pool (11 requests of 768 tokens), so four is the fewest that hold 32 requests.
    assert mine.workload is not None
    assert not mine.workload.default
    assert mine.workload.devices == 4


def test_attention_kv_cache_grows_linearly() -> None:
    # Llama-3.1-8B: 2 (K, V) x 8 KV heads x 128 head dim x 32 layers x 2 bytes = 128 KiB/token,
    # so 2k tokens hold 0.25 GiB, 8k 1 GiB, 32k 4 GiB, 128k 16 GiB per sequence.
    rows = _rows(explain("attention").impact)
    assert {k: r[1] for k, r in rows.items()} == {
        "2,048": "0.25", "8,192": "1.00", "32,768": "4.00", "131,072": "16.00"}
    fits = {k: int(r[2].replace(",", "")) for k, r in rows.items()}  # whole sequences: floors
    assert 4 * fits["8,192"] <= fits["2,048"] < 4 * (fits["8,192"] + 1)


def test_encoders_have_no_kv_cache() -> None:
    ex = explain("attention", model="BAAI/bge-large-en-v1.5")
    assert ex.impact is not None
    assert not ex.impact.rows
    assert "no KV cache" in ex.impact.notes[0]
    assert ex.workload is not None
    assert ex.workload.output_tokens == 0


def test_tensor_parallel_halves_the_weights() -> None:
    # 8,030,261,248 params x 2 bytes = 14.96 GiB; TP=2 splits all but the 65 norms (266,240
    # params, replicated): (16,060,522,496 - 532,480) / 2 + 532,480 bytes = 7.48 GiB.
    rows = _rows(explain("tp").impact)
    assert rows["1"][1] == "14.96"
    assert rows["2"][1] == "7.48"


def test_pipeline_bubble() -> None:
    # 1F1B: the bubble is (p - 1) / m of the ideal time (Narayanan et al. 2021, Megatron-LM,
    # section 2.2.1), so (p - 1) / (m + p - 1) of the step: 1/9 for p=2, m=8; 7/39 for p=8, m=32.
    assert bubble_fraction(2, 8) == pytest.approx(1 / 9)
    assert bubble_fraction(8, 32) == pytest.approx(7 / 39)
    impact = explain("pp").impact
    assert impact is not None
    assert impact.rows[0] == ("2", "8", "11.1%")
    assert impact.rows[-1] == ("8", "32", "17.9%")


def test_zero_stages_shard_model_states() -> None:
    # DeepSpeed's estimators, Llama-3.1-8B (8.03e9 params) over 8 GPUs, Adam with mixed precision:
    # DDP 16 B/param = 119.66 GiB; ZeRO-1/2 4 + 16/8 B/param = 44.87 GiB; ZeRO-3 18/8 B/param
    # = 16.83 GiB; FSDP 16/8 B/param = 14.96 GiB.
    rows = _rows(explain("data-parallelism").impact)
    assert [rows[k][1] for k in ("DDP (ZeRO-0)", "ZeRO-1", "ZeRO-2", "ZeRO-3", "FSDP")] == [
        "119.66", "44.87", "44.87", "16.83", "14.96"]
    assert rows["DDP (ZeRO-0)"][3] == "no"
    assert rows["FSDP"][3] == "yes"


def test_efa_against_tcp() -> None:
    # p5.48xlarge: 3,200 Gbps / 8 bits / 8 GPUs = 50 GB/s per GPU; EFA at the calibrated 0.8 of
    # it is 40 GB/s, TCP over ENA at 0.5 is 25 GB/s (data/calibration.yaml comms).
    rows = _rows(explain("efa").impact)
    assert rows["EFA"][1] == "40.0"
    assert rows["ENA (TCP)"][1] == "25.0"
    assert float(rows["ENA (TCP)"][2]) > float(rows["EFA"][2])  # step time
    assert float(rows["ENA (TCP)"][3]) > float(rows["EFA"][3])  # exposed communication


def test_checkpoint_size_and_storage() -> None:
    # 14 bytes per parameter (bf16 weights + fp32 master and two Adam moments): 8.03e9 x 14
    # = 112 GB.
    impact = explain("checkpoint").impact
    assert impact is not None
    assert "112 GB" in impact.title
    rows = _rows(impact)
    # each of the 8 nodes writes its eighth to S3 at 10 GB/s per client (under p5.48xlarge's
    # 400 GB/s network): 112.42e9 / 8 / 10e9 = 1.41 s. FSx at its 1.2 TiB minimum, 125 MB/s per
    # TiB: 150 MB/s for the whole file system, so 112.42e9 / 150e6 = 749 s = 12.5 min.
    assert rows["s3"][1] == "1.41 s"
    assert rows["fsx-lustre"][1] == "12.5 min"


def test_cold_start_adds_warmup_and_on_a_new_node_provisioning_and_image_pull() -> None:
    # data/startup.yaml: engine warm-up 48 s, and on a new node 90 s of provisioning and a
    # 300 s image pull, on top of the weight load.
    storage = _rows(explain("storage-class").impact)
    cold = _rows(explain("auto-scaling").impact)
    for name, row in cold.items():
        load = float(storage[name][1])
        assert float(row[1]) == pytest.approx(load + 48, abs=1)
        assert float(row[2]) == pytest.approx(load + 48 + 90 + 300, abs=1)
    assert _rows(explain("container-registry").impact)[
        "15-20 GB GPU serving image from ECR"][1] == "300"


def test_quantization_shrinks_weights_and_parameters_table() -> None:
    rows = _rows(explain("quantization").impact)
    bf16, fp8, awq = (float(rows[f][1]) for f in ("bf16", "fp8", "awq"))
    # fp8 halves the projection matrices but not the 16-bit embeddings and LM head (2 x 525M
    # params), so 8.46 GiB; AWQ 4.156 bits per matrix weight: 5.33 GiB.
    assert (bf16, fp8, awq) == (14.96, 8.46, 5.33)
    params = _rows(explain("parameter").impact)
    assert params["fp32"][1] == "29.92"


def test_terms_without_figures_say_what_they_drive() -> None:
    ex = explain("kubelet")
    assert ex.impact is None
    assert ex.workload is None
    assert ex.entry.eksplain


def test_cli_explain_and_glossary(runner: CliRunner) -> None:
    out = runner.invoke(app, ["explain", "kv cache"])
    assert out.exit_code == 0, out.output
    assert "the default workload" in out.output
    assert "KV cache by context length" in out.output
    data = json.loads(runner.invoke(app, ["explain", "tp", "--json"]).output)
    assert data["key"] == "model-parallelism"
    assert data["impact"]["rows"]
    assert data["workload"]["devices"] == 1
    bad = runner.invoke(app, ["explain", "quantisaton"])
    assert bad.exit_code == 2
    assert "quantization" in bad.output
    listing = json.loads(runner.invoke(app, ["glossary", "--json"]).output)
    assert len(listing) == len(ENTRIES) == 69
    assert "Glossary (69 terms" in runner.invoke(app, ["glossary"]).output


def test_workload_for_a_model_that_does_not_fit_one_node() -> None:
    model = resolve_model("meta-llama/Llama-3.1-405B")
    ex = explain("attention", model="meta-llama/Llama-3.1-405B")
    assert ex.workload is not None
    assert "does not fit" in ex.workload.sizing
    assert isinstance(ex.workload, Workload)
    assert ex.workload.model == model


def test_storage_load_time_is_capped_by_the_network() -> None:
    # 8B in bf16 is 16.06e9 bytes; p5.4xlarge has 100 Gbps = 12.5 GB/s of network and
    # 10,000 Mbps = 1.25 GB/s of EBS bandwidth. S3 10.625 GB/s per client: 1.5 s; EFS 1.573:
    # 10.2 s; gp3 (2.097) and io2 (4.194) capped at 1.25 GB/s: 12.8 s; FSx at its 1.2 TiB
    # minimum with 125 MB/s per TiB moves 150 MB/s: 107.1 s; local NVMe 16 GB/s: 1.0 s.
    rows = _rows(explain("storage-class").impact)
    assert {k: r[1] for k, r in rows.items()} == {
        "s3": "1.5", "fsx-lustre": "107.1", "efs": "10.2", "ebs-gp3": "12.8", "ebs-io2": "12.8",
        "instance-nvme": "1.0"}


def test_dollars_per_million_tokens_follow_price_and_throughput() -> None:
    # $ per million output tokens = $/hour / (output tokens/s x 3,600) x 1e6; p5.4xlarge is
    # $6.88/hour on demand in us-east-1 (data/offerings.csv, 2026-07-20).
    est = api.estimate(EstimateRequest(model=LLAMA_8B, hardware="h100", batch=32,
                                       input_tokens=512, output_tokens=256))
    assert est.speed.serving is not None
    expected = 6.88 / (est.speed.serving.output_tokens_per_s * 3600) * 1e6
    rows = _rows(explain("tokenization").impact)
    assert float(rows["output (generated) tokens"][1]) == pytest.approx(expected, abs=0.001)
    # the same link on each instance of the comparison
    compare = _rows(explain("gpu").impact)
    assert float(compare["p5.4xlarge"][3]) == pytest.approx(expected, abs=0.001)
    assert compare["inf2.xlarge"][1] == "aws-inferentia2"


def test_batching_trades_latency_for_throughput() -> None:
    rows = list(_rows(explain("batch-size").impact).values())
    tpot = [float(r[1]) for r in rows]
    tokens = [float(r[2].replace(",", "")) for r in rows]
    assert tpot == sorted(tpot)
    assert tokens == sorted(tokens)
    # batch 1: one sequence, so output tokens/s is 1 / TPOT (within the rounding of both)
    assert tokens[0] == pytest.approx(1000 / tpot[0], rel=0.02)


def test_embedding_requests_and_dollars() -> None:
    # $ per million requests = $6.88 / (requests/s x 3,600) x 1e6 on p5.4xlarge.
    ex = explain("embedding")
    assert ex.workload is not None
    assert ex.workload.model.id == "BAAI/bge-large-en-v1.5"  # an embedding model by default
    rows = _rows(ex.impact)
    rps = float(rows["requests/s per replica"][1].replace(",", ""))
    assert float(rows["$ per million requests"][1]) == pytest.approx(
        6.88 / (rps * 3600) * 1e6, rel=0.001)


def test_training_time_and_cost() -> None:
    # hours = 1e9 tokens / (tokens/s per device x 8 devices) / 3,600; dollars = hours x $55.04
    # (p5.48xlarge on demand, us-east-1; the EKS control plane fee is reported apart).
    est = api.estimate(EstimateRequest(model=LLAMA_8B, hardware="p5.48xlarge", task="training",
                                       seq_len=4096, fsdp="full", recompute="selective",
                                       tokens="1e9"))
    assert est.speed.training is not None
    hours = 1e9 / (est.speed.training.tokens_per_s_per_device * 8) / 3600
    full = _rows(explain("training").impact)["full"]
    assert float(full[3]) == pytest.approx(hours, abs=0.05)
    assert float(full[4].replace(",", "")) == pytest.approx(hours * 55.04, rel=0.005)
    trainium = _rows(explain("trainium").impact)
    assert trainium["trn1.32xlarge"][1] == "aws-trainium"
    assert trainium["p5.48xlarge"][4] == full[3]


def test_bad_hardware_is_an_error_and_formats_without_kernels_are_marked(
        runner: CliRunner) -> None:
    bad = runner.invoke(app, ["explain", "attention", "--hardware", "zz9"])
    assert bad.exit_code == 2
    assert "Unknown accelerator" in bad.output
    rows = _rows(explain("quantization", hardware="inf2.xlarge").impact)
    assert rows["awq"][2] == "no kernels here"  # AWQ has CUDA kernels only
    assert rows["fp8"][2] == "yes"
    assert rows["awq"][4].startswith("g4dn.xlarge")  # the cheapest GPU that holds it
