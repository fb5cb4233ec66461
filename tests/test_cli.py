"""The command line through CliRunner: output, JSON contract, clean errors with exit code 2."""

import json

import pytest
from typer.testing import CliRunner

from eksplain.cli.main import app

ESTIMATE = ["estimate", "meta-llama/Llama-3.1-8B", "--hardware", "h100-80gb", "--task",
            "inference", "--batch", "32", "--seq-len", "4096"]


def test_estimate_issue_example_json(runner: CliRunner) -> None:
    result = runner.invoke(app, [*ESTIMATE, "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["model"]["params_total"] == 8_030_261_248
    assert data["model"]["params_active"] == 8_030_261_248
    mem = data["memory_per_device"]
    assert round(mem["weights_bytes"] / 2**30, 2) == 14.96
    assert round(mem["kv_cache_bytes"] / 2**30, 2) == 16.00
    keys = {"weights_bytes", "kv_cache_bytes", "activations_bytes", "gradients_bytes",
            "optimizer_states_bytes", "overhead_bytes", "total_bytes"}
    assert keys <= set(mem)
    assert all(isinstance(mem[k], int) for k in keys)
    assert mem["total_bytes"] == sum(mem[k] for k in keys - {"total_bytes"})
    assert data["hardware"]["id"] == "nvidia-h100-sxm5-80gb"
    assert data["hardware"]["devices"] == 1
    assert isinstance(data["fits"], bool)
    assert {"bytes_per_token", "capacity_tokens", "max_concurrency"} <= set(data["kv_cache"])


def test_same_input_same_bytes(runner: CliRunner) -> None:
    first = runner.invoke(app, [*ESTIMATE, "--json"]).output
    assert runner.invoke(app, [*ESTIMATE, "--json"]).output == first


def test_estimate_table(runner: CliRunner) -> None:
    result = runner.invoke(app, ESTIMATE)
    assert result.exit_code == 0
    assert "14.96" in result.output
    assert "16.00" in result.output
    assert "fits" in result.output


def test_training_estimate(runner: CliRunner) -> None:
    result = runner.invoke(app, ["estimate", "llama-3.1-8b", "--hardware", "p5.48xlarge",
                                 "--task", "training", "--fsdp", "full", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["parallelism"]["dp"] == 8
    assert data["memory_per_device"]["optimizer_states_bytes"] > 0
    assert "kv_cache" not in data


def test_user_errors_exit_2_without_traceback(runner: CliRunner) -> None:
    cases = [
        (["estimate", "llama-3.1-8", "--hardware", "h100"], "Did you mean"),
        (["estimate", "llama-3.1-8b", "--hardware", "h10"], "Unknown accelerator"),
        (["estimate", "llama-3.1-8b", "--hardware", "h100", "--devices", "8", "--tp", "3"],
         "valid --tp values"),
        (["estimate", "llama-3.1-8b", "--hardware", "h100", "--batch", "0"], "--batch"),
        (["estimate", "llama-3.1-8b", "--hardware", "h100", "--task", "trainin"], "--task"),
        (["estimate", "mixtral-8x7b", "--hardware", "p5.48xlarge", "--ep", "3"], "EP=3"),
        (["hardware", "--family", "g7x"], "Unknown instance family"),
        (["hardware", "--min-memory", "lots"], "as a size"),
    ]
    for args, message in cases:
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output, (args, result.output)
        assert "Traceback" not in result.output


def test_hardware_and_models_json(runner: CliRunner) -> None:
    hw = json.loads(runner.invoke(app, ["hardware", "--family", "p5", "--json"]).output)
    p5 = next(r for r in hw if r["instance_type"] == "p5.48xlarge")
    assert p5["allocatable"]["extended_resources"]["nvidia.com/gpu"] == 8
    assert p5["offering"]["price_usd_per_hour"] > 0
    models = json.loads(runner.invoke(app, ["models", "--json"]).output)
    assert len(models) >= 60
    assert all(m["params_total"] > 0 for m in models)


def test_validate_command(runner: CliRunner) -> None:
    result = runner.invoke(app, ["validate", "--json"])
    assert result.exit_code == 0
    data = json.loads(result.output)
    assert data["summary"]["weights"]["cases"] >= 5


def test_speed_and_cost_json(runner: CliRunner) -> None:
    # Issue example: TPOT and dollars per million tokens for Llama-3.1-8B at batch 1 on an H100.
    result = runner.invoke(app, ["estimate", "meta-llama/Llama-3.1-8B", "--hardware",
                                 "h100-80gb", "--task", "inference", "--batch", "1",
                                 "--input-tokens", "1024", "--output-tokens", "256", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    speed, cost = data["speed"], data["cost"]
    for key in ("ttft_s", "tpot_s", "decode_tokens_per_s", "prefill_tokens_per_s",
                "requests_per_s"):
        assert speed[key] > 0, key
    assert 0.004 < speed["tpot_s"] < 0.02  # memory-bound: 16 GB at 3.35 TB/s is 4.8 ms
    for key in ("usd_per_hour", "usd_per_month", "usd_per_million_output_tokens"):
        assert cost[key] > 0, key
    assert cost["usd_per_month"] == round(cost["usd_per_hour"] * 730, 2)


def test_training_speed_json(runner: CliRunner) -> None:
    result = runner.invoke(app, ["estimate", "llama-3.1-8b", "--hardware", "p5.48xlarge",
                                 "--task", "training", "--fsdp", "full", "--seq-len", "4096",
                                 "--tokens", "10B", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    speed = data["speed"]
    for key in ("step_time_s", "tokens_per_s_per_device", "tflops_per_device", "mfu",
                "time_to_train_s"):
        assert speed[key] > 0, key
    assert 0 < speed["mfu"] < 1
    tokens_per_s = speed["tokens_per_s_per_device"] * 8
    assert speed["time_to_train_s"] == round(10e9 / tokens_per_s, 1)
    assert data["cost"]["usd_total"] > 0
    assert data["checkpoint"]["interval_s"] > data["checkpoint"]["write_s"]


def test_speed_and_cost_input_errors(runner: CliRunner, tmp_path) -> None:  # type: ignore[no-untyped-def]
    bad_price = tmp_path / "prices.csv"
    bad_price.write_text("instance_type,region\np5.48xlarge,us-east-1\n")
    cases = [
        (["--input-tokens", "200000", "--output-tokens", "10"], "maximum context"),
        (["--tpot-target", "fast"], "as a duration"),
        (["--task", "training", "--tokens", "many"], "as a count"),
        (["--price-file", str(bad_price)], "needs the columns"),
        (["--task", "training", "--storage", "floppy"], "Unknown storage"),
    ]
    for extra, message in cases:
        result = runner.invoke(app, ["estimate", "llama-3.1-8b", "--hardware", "h100", *extra])
        assert result.exit_code == 2, (extra, result.output)
        assert message in result.output, (extra, result.output)


def test_price_file_overrides(runner: CliRunner, tmp_path) -> None:  # type: ignore[no-untyped-def]
    prices = tmp_path / "spot.csv"
    prices.write_text("instance_type,region,capacity_type,price_usd_per_hour,price_date\n"
                      "p5.4xlarge,us-east-1,spot,2.50,2026-11-28\n")
    result = runner.invoke(app, ["estimate", "llama-3.1-8b", "--hardware", "h100",
                                 "--capacity-type", "spot", "--price-file", str(prices),
                                 "--json"])
    assert result.exit_code == 0, result.output
    cost = json.loads(result.output)["cost"]
    assert cost["usd_per_hour"] == 2.5
    assert "two minutes" in cost["note"]


def test_unknown_region_keeps_speed_and_says_price_unknown(runner: CliRunner) -> None:
    result = runner.invoke(app, ["estimate", "llama-3.1-8b", "--hardware", "h100",
                                 "--input-tokens", "512", "--output-tokens", "128",
                                 "--region", "eu-west-1", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["speed"]["tpot_s"] > 0
    assert data["cost"]["price_known"] is False
    assert data["cost"]["usd_per_hour"] is None
    assert "eu-west-1" in data["cost"]["note"]


def test_hybrid_fsdp_shards_over_the_devices_of_one_node(runner: CliRunner) -> None:
    # Hybrid FSDP shards inside a node and replicates across nodes (methodology section 6).
    # Llama-3.1-8B, mixed precision under FSDP: two fp32 AdamW moments = 8 B per parameter,
    # 8 x 8,030,261,248 = 64,242,089,984 B before sharding.
    # 2 x g5.12xlarge (4 A10G each): / 4 = 16,060,522,496 B (14.96 GiB), not / 8.
    # 2 x trn1.32xlarge (16 Trainium devices each): / 16 = 4,015,130,624 B, not / 8.
    for hardware, devices, expected in (("g5.12xlarge", "8", 16_060_522_496),
                                        ("trn1.32xlarge", "32", 4_015_130_624)):
        result = runner.invoke(app, ["estimate", "llama-3.1-8b", "--hardware", hardware,
                                     "--devices", devices, "--task", "training", "--fsdp",
                                     "hybrid", "--seq-len", "1024", "--json"])
        assert result.exit_code == 0, result.output
        mem = json.loads(result.output)["memory_per_device"]
        assert mem["optimizer_states_bytes"] == expected, hardware


def test_formats_need_their_compute_capability(runner: CliRunner) -> None:
    # accelerators.csv: T4 7.5, V100 7.0, A10G 8.6, A100 8.0, H100 9.0. vLLM's minimums
    # (data/quantization.yaml): bf16 8.0 (no bf16 below Ampere; vLLM says to use fp16), fp8 8.0
    # (W8A16 through FP8 Marlin on 8.0-8.6, W8A8 from 8.9), AWQ 7.5; FP8 training 8.9.
    refused = [
        (["--hardware", "t4", "--dtype", "fp8"], "compute capability 8.0", "7.5"),
        (["--hardware", "v100-32gb", "--dtype", "fp8"], "compute capability 8.0", "7.0"),
        (["--hardware", "t4"], "compute capability 8.0", "--dtype fp16"),
        (["--hardware", "v100-32gb", "--dtype", "awq"], "compute capability 7.5", "7.0"),
        (["--hardware", "a100-80gb", "--dtype", "fp8", "--task", "training"],
         "compute capability 8.9", "8.0"),
    ]
    for args, need, detail in refused:
        result = runner.invoke(app, ["estimate", "llama-3.1-8b", "--seq-len", "1024", *args])
        assert result.exit_code == 2, (args, result.output)
        text = " ".join(result.output.split())  # the error box wraps lines
        assert need in text, (args, result.output)
        assert detail in text, (args, result.output)
        assert "Traceback" not in result.output
    accepted = [["--hardware", "t4", "--dtype", "fp16"], ["--hardware", "a10g", "--dtype", "fp8"],
                ["--hardware", "a100-80gb", "--dtype", "fp8"], ["--hardware", "t4", "--dtype",
                                                                  "awq"]]
    for args in accepted:
        result = runner.invoke(app, ["estimate", "llama-3.1-8b", "--seq-len", "1024", *args])
        assert result.exit_code == 0, (args, result.output)


def test_embeddings_price_their_input_tokens(runner: CliRunner) -> None:
    # An embedding request has no output tokens; its cost is per input token (methodology
    # section 10): $ per million input tokens = $/hour / (input tokens/s x 3,600) x 1e6, with
    # input tokens/s = requests/s x 512 tokens. g6.xlarge (one L4): $0.8048/hour.
    result = runner.invoke(app, ["estimate", "BAAI/bge-large-en-v1.5", "--hardware", "l4",
                                 "--batch", "64", "--input-tokens", "512", "--output-tokens",
                                 "0", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    requests_per_s = data["speed"]["requests_per_s"]
    assert requests_per_s > 0
    expected = 0.8048 / (requests_per_s * 512 * 3600) * 1e6
    # The JSON rounds dollars to 4 decimals.
    assert data["cost"]["usd_per_million_input_tokens"] == pytest.approx(expected, abs=5e-5)
    assert data["cost"]["usd_per_million_output_tokens"] is None
    assert data["max_batch"] == 256
    assert data["max_seq_len"] == 512
