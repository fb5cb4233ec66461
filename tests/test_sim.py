"""The simulator: queueing theory, conservation, determinism, traces, agreement with estimate."""

from __future__ import annotations

import dataclasses
import json
import math
import random
from pathlib import Path

import pytest
from typer.testing import CliRunner

from eksplain import api
from eksplain.api import EstimateRequest, estimate
from eksplain.calibration import load_calibration
from eksplain.cli.main import app
from eksplain.errors import InputError
from eksplain.hardware import load_catalog
from eksplain.sim import (
    Bursty,
    Daily,
    EngineLimits,
    Exponential,
    Fixed,
    LinearStepModel,
    LogNormal,
    Poisson,
    SimConfig,
    SimResult,
    estimator_step_model,
    parse_trace,
    simulate_replicas,
)
from eksplain.sim.metrics import BINS_PER_DECADE, Histogram

# Batching off: one sequence per replica, a token budget and a cache no request can exhaust.
# Each request is one prefill step of its prompt at 0.1 ms a token and makes one token, so its
# service time is prompt x 0.1 ms: Exponential(10,000) tokens = exponential with mean 1 s.
NO_BATCHING = EngineLimits(max_num_seqs=1, max_num_batched_tokens=10**9, kv_blocks=10**9)
PER_TOKEN = LinearStepModel(per_prefill_token_s=1e-4)


def _erlang_c(servers: int, load: float) -> float:
    """Probability an arrival waits in M/M/c with offered load a = lambda / mu (Erlang C)."""
    below = sum(load**k / math.factorial(k) for k in range(servers))
    top = load**servers / math.factorial(servers) * servers / (servers - load)
    return top / (below + top)


def test_mmc_mean_queueing_delay_matches_erlang_c() -> None:
    # M/M/2 at rho = 0.5 (lambda 1/s, mu 1/s): Wq = C(2, 1) / (2 - 1) = 1/3 s.
    # Standard error: twelve seeds of 250k requests spread with a standard deviation of 0.95%
    # of Wq about a mean of -0.2%, so the 3% bar is three standard deviations. (At rho = 0.75
    # the spread was 2.2%: waits are longer-correlated, and the bar would be 1.4 of them.)
    servers, rate = 2, 1.0
    expected = _erlang_c(servers, rate) / (servers - rate)
    cfg = SimConfig(duration_s=250_000 / rate, replicas=servers, limits=NO_BATCHING,
                    routing="central-queue", seed=0)
    result = simulate_replicas(cfg, PER_TOKEN, Poisson(rate), (Exponential(10_000), Fixed(1)))
    assert result.completed > 240_000
    assert result.queue_wait.mean_s == pytest.approx(expected, rel=0.03)


def test_md1_mean_queueing_delay_matches_pollaczek_khinchine() -> None:
    # M/D/1 at rho = 0.5, service 1 s: Wq = rho D / (2 (1 - rho)) = 0.5 s.
    # Standard error: six seeds of 300k requests spread with a standard deviation of 0.5% of
    # Wq (so about 0.6% at 200k): 3% is five standard deviations.
    rate = 0.5
    expected = rate * 1.0 / (2 * (1 - rate))
    cfg = SimConfig(duration_s=200_000 / rate, replicas=1, limits=NO_BATCHING, seed=0)
    result = simulate_replicas(cfg, PER_TOKEN, Poisson(rate), (Fixed(10_000), Fixed(1)))
    assert result.queue_wait.mean_s == pytest.approx(expected, rel=0.03)


SMALL = EngineLimits(max_num_seqs=8, max_num_batched_tokens=256, kv_blocks=40)
STEP = LinearStepModel(fixed_s=0.01, per_seq_s=0.001, per_prefill_token_s=1e-5)


def _small_run(seed: int = 3, routing: str = "least-outstanding") -> SimResult:
    cfg = SimConfig(duration_s=300, replicas=2, limits=SMALL, routing=routing, seed=seed)
    # Up to 600 + 200 tokens = 50 blocks: longer than the 40-block cache, so some fail;
    # eight sequences of ~300 tokens outgrow it, so some are preempted.
    lengths = (Exponential(150), Exponential(60))
    return simulate_replicas(cfg, STEP, Poisson(3.0), lengths)


@pytest.mark.parametrize("routing", ["round-robin", "least-outstanding", "central-queue"])
def test_every_arrival_is_completed_failed_or_in_flight(routing: str) -> None:
    r = _small_run(routing=routing)
    assert r.arrived == r.completed + r.failed + r.in_flight
    assert r.completed > 100
    assert r.failed > 0
    assert r.preemptions > 0


def _json(r: SimResult) -> str:
    return json.dumps(dataclasses.asdict(r), sort_keys=True)


def test_same_seed_same_result_byte_for_byte() -> None:
    assert _json(_small_run(seed=7)) == _json(_small_run(seed=7))
    assert _json(_small_run(seed=7)) != _json(_small_run(seed=8))


def test_overload_stops_at_the_queue_cap_and_says_so() -> None:
    cfg = SimConfig(duration_s=3600, replicas=1, limits=SMALL, queue_cap=500)
    r = simulate_replicas(cfg, STEP, Poisson(50.0), (Fixed(100), Fixed(100)))
    assert "without bound" in r.stopped
    assert "500" in r.stopped
    assert r.simulated_s < 3600
    assert r.arrived == r.completed + r.failed + r.in_flight


@pytest.mark.parametrize(("text", "line", "words"), [
    ("timestamp_s,input_tokens,output_tokens\n0,10,5\n2,10,5\n1,10,5\n", 4, "before"),
    ("timestamp_s,input_tokens,output_tokens\n-1,10,5\n", 2, "negative"),
    ("timestamp_s,input_tokens\n0,10\n", 1, "output_tokens"),
    ("timestamp_s,input_tokens,output_tokens\n0,10,5\n1,ten,5\n", 3, "not a number"),
    ("timestamp_s,input_tokens,output_tokens\n0,10\n", 2, "values"),
])
def test_trace_errors_name_the_line(text: str, line: int, words: str) -> None:
    with pytest.raises(InputError, match=rf"t\.csv:{line}: .*{words}"):
        parse_trace(text.splitlines(), "t.csv")


def test_trace_replays_its_rows() -> None:
    trace = parse_trace(["output_tokens,timestamp_s,input_tokens", "3,0.5,7", "4,1.5,8"], "t")
    assert trace.rows == ((0.5, 7, 3), (1.5, 8, 4))
    cfg = SimConfig(duration_s=60, replicas=1, limits=SMALL)
    r = simulate_replicas(cfg, STEP, trace, (Fixed(1), Fixed(1)))
    assert (r.arrived, r.completed, r.output_tokens) == (2, 2, 7)


def test_lognormal_fit_has_the_mean_and_p95() -> None:
    d = LogNormal.fit(256, 700)
    assert math.exp(d.mu + d.sigma**2 / 2) == pytest.approx(256)
    assert math.exp(d.mu + 1.6448536 * d.sigma) == pytest.approx(700)
    with pytest.raises(InputError, match="lognormal"):
        LogNormal.fit(100, 1000)  # p95 over 3.87 x the mean


@pytest.mark.parametrize("process", [
    Poisson(20.0), Bursty(20.0, peak_to_mean=2, burst_s=2, burst_share=0.2),
    Daily(20.0, peak_to_mean=3, start_hour=5),
])
def test_arrival_processes_keep_their_mean_rate(process: Poisson | Bursty | Daily) -> None:
    rng = random.Random(1)
    times = []
    for t, _, _ in process.arrivals(rng, (Fixed(1), Fixed(1))):
        if t > 3600:
            break
        times.append(t)
    expected = 20.0 * 3600
    if isinstance(process, Daily):  # hour 5 of the planner's daily curve
        expected = process.hourly_rps()[5] * 3600
    # Poisson counts: sd = sqrt(72,000) = 0.4%. Bursts: 360 cycles of 2 s bursts and 8 s calm
    # (exponential) put sqrt(360 x (0.8^2 x 2^2 + 0.2^2 x 8^2)) = 43 s more or less in bursts,
    # at 40 - 15 = 25 more requests/s: sd 1.5%. The bar is four of those.
    assert len(times) == pytest.approx(expected, rel=0.06)


@pytest.mark.parametrize("budget", [None, 100])
def test_estimator_agreement_at_constant_load(budget: int | None) -> None:
    """Below saturation, at the rate the estimator gives for batch 32, a replica runs about 32
    sequences and its throughput and mean TPOT are the estimator's loaded ones: with the H100's
    8,192-token budget (None: the engine default) a 512-token prompt is prefilled in one
    compute-bound step in a share 64 / 512 of the steps; with a 100-token budget in 68-token
    chunks in 64 / 68 of them (B x prompt / output = 64 prompt tokens a step on average)."""
    batch = 32
    est = estimate(EstimateRequest(model="meta-llama/Llama-3.1-8B", hardware="h100",
                                   batch=batch, input_tokens=512, output_tokens=256,
                                   max_num_batched_tokens=budget))
    speed = est.speed.serving
    assert speed is not None
    assert est.kv is not None
    tokens = budget or load_calibration().token_budget("h100")
    assert tokens == (budget or 8192)
    model = estimator_step_model(est, load_catalog(), (512, 256))
    cfg = SimConfig(duration_s=600, replicas=1, seed=1,
                    limits=EngineLimits(256, tokens, est.kv.blocks))
    r = simulate_replicas(cfg, model, Poisson(speed.requests_per_s), (Fixed(512), Fixed(256)))
    running = sum(s.running for s in r.timeline) / len(r.timeline)
    # Poisson counts over 600 s at 15.7/s: sd 0.3%.
    assert r.output_tokens_per_s == pytest.approx(speed.output_tokens_per_s, rel=0.05)
    assert r.tpot.mean_s == pytest.approx(speed.tpot_s, rel=0.05)
    assert speed.tpot_s == pytest.approx(batch / speed.output_tokens_per_s, rel=1e-9)
    if budget is not None:
        assert running == pytest.approx(batch, rel=0.05)
    else:  # whole prompts: Poisson arrivals queue for the next chunk step, and count as running
        assert batch <= running <= 1.15 * batch


def test_whole_prompt_prefill_steps_raise_tpot_over_the_decode_step() -> None:
    """vLLM's 8,192-token budget prefills a 512-token prompt in one step, which is compute-bound
    (about 14 ms against 8 ms for a decode step of 32 on an H100): the simulated mean TPOT is
    over 10% above the pure decode step, as the estimator's loaded TPOT says."""
    est = estimate(EstimateRequest(model="meta-llama/Llama-3.1-8B", hardware="h100",
                                   batch=32, input_tokens=512, output_tokens=256))
    speed = est.speed.serving
    assert speed is not None
    assert est.kv is not None
    model = estimator_step_model(est, load_catalog(), (512, 256))
    cfg = SimConfig(duration_s=300, replicas=1, seed=1,
                    limits=EngineLimits(256, 8192, est.kv.blocks))
    r = simulate_replicas(cfg, model, Poisson(speed.requests_per_s), (Fixed(512), Fixed(256)))
    decode_s = 32 / speed.decode_tokens_per_s
    assert r.tpot.mean_s > 1.1 * decode_s
    assert speed.tpot_s > 1.1 * decode_s


def test_cli_simulate_json_is_deterministic(runner: CliRunner) -> None:
    args = ["simulate", "examples/chat-llama-3.1-8b.yaml", "--duration", "1m", "--seed", "4",
            "--json"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert first.output == runner.invoke(app, args).output
    data = json.loads(first.output)
    req = data["requests"]
    assert req["arrived"] == req["completed"] + req["failed"] + req["in_flight"]
    assert data["seed"] == 4
    assert len(data["timeline"]) == 1


def test_cli_simulate_table(runner: CliRunner) -> None:
    result = runner.invoke(app, ["simulate", "examples/chat-llama-3.1-8b.yaml", "--duration",
                                 "1m", "--replicas", "7"], env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.output
    assert "7 replicas" in result.output
    assert "TTFT" in result.output
    assert "faults: 0 spot interruptions" in result.output
    assert "instance-hours" in result.output


def test_cli_simulate_bad_trace_names_the_line(runner: CliRunner, tmp_path: Path) -> None:
    trace = tmp_path / "t.csv"
    trace.write_text("timestamp_s,input_tokens,output_tokens\n0,10,5\n1,10,x\n")
    result = runner.invoke(app, ["simulate", "examples/chat-llama-3.1-8b.yaml", "--trace",
                                 str(trace)])
    assert result.exit_code == 2
    assert "t.csv:3: output_tokens 'x' is not a number" in result.output


def test_cli_simulate_rejects_training_specs(runner: CliRunner) -> None:
    result = runner.invoke(app, ["simulate", "examples/lora-llama-3.1-8b.yaml"])
    assert result.exit_code == 2
    assert "online generation" in result.output


def test_simulate_facade_replays_a_trace(tmp_path: Path) -> None:
    trace = tmp_path / "t.csv"
    trace.write_text("timestamp_s,input_tokens,output_tokens\n0.0,100,20\n0.5,200,30\n")
    spec = api.load_spec(Path("examples/chat-llama-3.1-8b.yaml"))
    sim = api.simulate(spec, api.SimulateOptions(duration_s=60, replicas=1,
                                                 trace=api.load_trace(trace)))
    assert sim.traffic == "trace of 2 requests"
    assert (sim.result.completed, sim.result.output_tokens) == (2, 50)


def test_runs_of_decode_steps_take_the_time_of_each_step() -> None:
    """One request alone: a prefill step, then output - 1 decode steps whose time grows with
    the context; planned as runs of identical steps at the middle step's time, which is exact
    for a step time linear in the context."""
    prompt, output = 100, 50
    model = LinearStepModel(fixed_s=0.01, per_seq_s=0.001, per_context_token_s=1e-5,
                            per_prefill_token_s=1e-4)
    cfg = SimConfig(duration_s=60, replicas=1, limits=EngineLimits(4, 512, 1000))
    trace = parse_trace(["timestamp_s,input_tokens,output_tokens", f"0,{prompt},{output}"], "t")
    r = simulate_replicas(cfg, model, trace, (Fixed(1), Fixed(1)))
    ttft = model.step_time_s(0, 0, prompt)
    decode = sum(model.step_time_s(1, prompt + i, 0) for i in range(output - 1))
    assert r.ttft.mean_s == pytest.approx(ttft, rel=1e-9)
    assert r.e2e.mean_s == pytest.approx(ttft + decode, rel=1e-9)


def test_an_arrival_joins_the_batch_at_the_next_step_boundary() -> None:
    """A second request arriving during the first one's decode run is admitted at the step
    boundary after it arrives, not at the end of the run."""
    model = LinearStepModel(fixed_s=0.01)  # every step 10 ms
    cfg = SimConfig(duration_s=60, replicas=1, limits=EngineLimits(4, 512, 1000))
    trace = parse_trace(["timestamp_s,input_tokens,output_tokens", "0,10,100", "0.125,10,5"],
                        "t")
    r = simulate_replicas(cfg, model, trace, (Fixed(1), Fixed(1)))
    # Steps end at 10, 20, ... ms: the second request waits from 125 ms to the 130 ms boundary.
    assert r.queue_wait.max_s == pytest.approx(0.005, abs=1e-9)
    assert r.completed == 2


def test_progress_hears_each_simulated_minute() -> None:
    heard: list[float] = []
    cfg = SimConfig(duration_s=180, replicas=1, limits=SMALL)
    simulate_replicas(cfg, STEP, Poisson(1.0), (Fixed(10), Fixed(10)), heard.append)
    assert heard == [60.0, 120.0, 180.0]


def test_cli_simulate_replays_the_specs_own_trace(runner: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "trace.csv").write_text("timestamp_s,input_tokens,output_tokens\n0,100,20\n")
    spec = tmp_path / "spec.yaml"
    spec.write_text("model: meta-llama/Llama-3.1-8B\ntask: inference\n"
                    "traffic: {rps: 1, trace: trace.csv}\n")
    result = runner.invoke(app, ["simulate", str(spec), "--duration", "1m", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["traffic"] == "trace of 1 request"
    assert data["requests"]["completed"] == 1


def test_cli_simulate_unknown_routing(runner: CliRunner) -> None:
    result = runner.invoke(app, ["simulate", "examples/chat-llama-3.1-8b.yaml", "--duration",
                                 "1m", "--routing", "round-robbin"])
    assert result.exit_code == 2
    assert "round-robin" in result.output


def test_histogram_percentiles_are_at_most_one_bin_high() -> None:
    h = Histogram()
    values = [i / 1000 for i in range(1, 10_001)]  # 1 ms .. 10 s
    for v in values:
        h.add(v)
    s = h.summary()
    bin_ratio = 10 ** (1 / BINS_PER_DECADE)  # 1.0116
    for got, true in ((s.p50_s, 5.0), (s.p90_s, 9.0), (s.p99_s, 9.9)):
        assert true <= got <= true * bin_ratio
    assert s.max_s == 10.0
    assert s.mean_s == pytest.approx(sum(values) / len(values))
