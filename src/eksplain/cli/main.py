"""The ``eksplain`` command. Each command: parse options, one facade call, format the result.

User errors (``EksplainError``, invalid values) print one clean message and exit with code 2.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console

from eksplain import api
from eksplain.errors import EksplainError, InputError
from eksplain.units import parse_duration

app = typer.Typer(
    name="eksplain",
    help="Size, plan and explain AI/ML workloads on Amazon EKS.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

T = TypeVar("T")
EXIT_USER_ERROR = 2


def _console() -> Console:
    return Console(highlight=False)


def _fail(message: str) -> None:
    Console(stderr=True, highlight=False, soft_wrap=True).print(
        f"[red]error:[/red] {message}", markup=True)
    raise typer.Exit(EXIT_USER_ERROR)


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "input"
        parts.append(f"--{field.replace('_', '-')}: {err['msg']}")
    return "; ".join(parts)


def _call(fn: Callable[[], T]) -> T:
    """Run a facade call, turning user errors into a clean message and exit code 2."""
    try:
        return fn()
    except EksplainError as exc:
        _fail(str(exc))
    except ValidationError as exc:
        _fail(_validation_message(exc))
    raise AssertionError("unreachable")  # pragma: no cover


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False) + "\n")


@app.command()
def estimate(
    model: Annotated[str, typer.Argument(
        help="Catalogue id or alias, or a path to a config.json.")],
    hardware: Annotated[str, typer.Option(help="Accelerator (h100, l40s, trainium2 ...) or EC2 "
                                                "instance type (p5.48xlarge).")],
    task: Annotated[str, typer.Option(help="inference, training or embedding (no output "
                                           "tokens; also on CPU-only instance types).")
                    ] = "inference",
    devices: Annotated[int | None, typer.Option(help="Accelerators used (default: 1, or all of "
                                                     "an instance type).")] = None,
    dtype: Annotated[str, typer.Option(help="Weights: bf16, fp16, fp32, fp8, int8, awq, gptq, "
                                            "nf4.")] = "bf16",
    kv_dtype: Annotated[str, typer.Option(
        help="KV cache: auto (= compute dtype) or fp8.")] = "auto",
    batch: Annotated[int, typer.Option(help="Concurrent sequences (serving) or micro-batch "
                                            "per device (training).")] = 1,
    seq_len: Annotated[int, typer.Option(help="Tokens per sequence (prompt + output).")] = 4096,
    tp: Annotated[int, typer.Option(help="Tensor-parallel degree.")] = 1,
    pp: Annotated[int, typer.Option(help="Pipeline-parallel degree.")] = 1,
    dp: Annotated[int | None, typer.Option(help="Data-parallel degree (training default: "
                                                "devices / (TP x PP x CP)).")] = None,
    cp: Annotated[int, typer.Option(help="Context-parallel degree.")] = 1,
    ep: Annotated[int, typer.Option(help="Expert-parallel degree (MoE).")] = 1,
    zero: Annotated[int, typer.Option(help="DeepSpeed ZeRO stage 0-3.")] = 0,
    fsdp: Annotated[str, typer.Option(help="FSDP sharding: none, full or hybrid.")] = "none",
    method: Annotated[str, typer.Option(help="full, lora or qlora.")] = "full",
    lora_rank: Annotated[int, typer.Option(help="LoRA rank.")] = 16,
    optimizer: Annotated[str, typer.Option(help="adamw, adamw-8bit, sgd or adafactor.")] = "adamw",
    recompute: Annotated[str, typer.Option(help="Activation recomputation: none, selective, "
                                                "full.")] = "none",
    precision: Annotated[str, typer.Option(help="Training precision: mixed, bf16 or "
                                                "fp32.")] = "mixed",
    engine: Annotated[str, typer.Option(help="Serving engine: vllm, sglang, trtllm, hf, "
                                             "neuron.")] = "vllm",
    gpu_memory_utilization: Annotated[float | None, typer.Option(
        help="Share of device memory the engine may use (vLLM default 0.9).")] = None,
    max_num_seqs: Annotated[int | None, typer.Option(help="Engine max sequences per step.")] = None,
    max_num_batched_tokens: Annotated[int | None, typer.Option(
        help="Engine token budget per step.")] = None,
    input_tokens: Annotated[int | None, typer.Option(
        help="Prompt tokens per request: adds serving speed and cost.")] = None,
    output_tokens: Annotated[int | None, typer.Option(
        help="Generated tokens per request: adds serving speed and cost.")] = None,
    tpot_target: Annotated[str | None, typer.Option(
        help="Find the largest batch whose time per output token stays under this, e.g. "
             "50ms.")] = None,
    tokens: Annotated[str | None, typer.Option(
        help="Training data size in tokens, e.g. 300B: adds time and cost to train.")] = None,
    global_batch: Annotated[int | None, typer.Option(
        help="Training sequences per optimizer step (default: --batch x DP).")] = None,
    region: Annotated[str, typer.Option(help="AWS region of the prices.")] = "us-east-1",
    capacity_type: Annotated[str, typer.Option(help="on-demand or spot.")] = "on-demand",
    utilization: Annotated[float, typer.Option(
        help="Average share of peak throughput used, for dollars per token.")] = 1.0,
    storage: Annotated[str, typer.Option(
        help="Checkpoint storage: fsx-lustre, s3, efs, ebs-gp3, ebs-io2, "
             "instance-nvme.")] = "fsx-lustre",
    price_file: Annotated[Path | None, typer.Option(
        help="CSV of your own prices (instance_type, region, capacity_type, "
             "price_usd_per_hour).")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Memory per device, speed and cost for serving or training one model on one hardware
    choice."""
    fields = {
        "model": model, "hardware": hardware, "task": task, "devices": devices, "dtype": dtype,
        "kv_dtype": kv_dtype, "batch": batch, "seq_len": seq_len, "tp": tp, "pp": pp, "dp": dp,
        "cp": cp, "ep": ep, "zero": zero, "fsdp": fsdp, "method": method, "lora_rank": lora_rank,
        "optimizer": optimizer, "recompute": recompute, "precision": precision, "engine": engine,
        "gpu_memory_utilization": gpu_memory_utilization, "max_num_seqs": max_num_seqs,
        "max_num_batched_tokens": max_num_batched_tokens, "input_tokens": input_tokens,
        "output_tokens": output_tokens, "tokens": tokens, "global_batch": global_batch,
        "region": region, "capacity_type": capacity_type, "utilization": utilization,
        "storage": storage,
    }

    def call() -> api.Estimate:
        if tpot_target is not None:
            fields["tpot_target_s"] = parse_duration(tpot_target)
        offerings = api.load_price_file(price_file) if price_file else ()
        return api.estimate(api.EstimateRequest.model_validate(fields), offerings)

    result = _call(call)
    if json_output:
        _print_json(result.to_dict())
        return
    from eksplain.cli.format import estimate_summary, estimate_table, speed_lines

    console = _console()
    lines = estimate_summary(result)
    for line in lines[:2]:
        console.print(line)
    console.print(estimate_table(result))
    for line in lines[2:] + speed_lines(result):
        console.print(line)


@app.command()
def plan(
    spec: Annotated[Path | None, typer.Argument(help="Workload spec (YAML).")] = None,
    model: Annotated[str | None, typer.Option(help="Model, when no spec file is given.")] = None,
    task: Annotated[str, typer.Option(help="inference, batch-inference, embedding, "
                                           "fine-tuning or pre-training.")] = "inference",
    rps: Annotated[float | None, typer.Option(help="Mean requests per second.")] = None,
    ttft_p95: Annotated[str | None, typer.Option(help="TTFT SLO at p95, e.g. 500ms.")] = None,
    tpot_p95: Annotated[str | None, typer.Option(help="TPOT SLO at p95, e.g. 50ms.")] = None,
    top: Annotated[int, typer.Option(help="Alternatives to show.")] = 5,
    explain: Annotated[bool, typer.Option(
        "--explain", help="Show every decision's terms and every rejected candidate.")] = False,
    price_file: Annotated[Path | None, typer.Option(help="CSV of your own prices.")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    verify: Annotated[bool, typer.Option(
        "--verify", help="Simulate the choice under the spec's traffic and check its p95 "
                         "targets; fall back to the next of the top candidates when they "
                         "miss.")] = False,
    verify_duration: Annotated[str, typer.Option(
        help="Simulated time for --verify, e.g. 1h or 15m.")] = "1h",
) -> None:
    """The cheapest configuration that meets a workload spec, with alternatives and reasons."""

    def call() -> tuple[api.WorkloadSpec, api.Plan]:
        if spec is not None:
            workload = api.load_spec(spec)
        else:
            if model is None:
                raise InputError("Give a spec file or --model.",
                                 hint="eksplain plan examples/chat-llama-3.1-8b.yaml")
            quick: dict[str, Any] = {"model": model, "task": task, "slo": {}}
            if rps is not None:
                quick["traffic"] = {"rps": rps}
            for key, value in (("ttft_p95", ttft_p95), ("tpot_p95", tpot_p95)):
                if value is not None:
                    quick["slo"][key] = value
            workload = api.spec_from_dict(quick, "command-line spec")
        offerings = api.load_price_file(price_file) if price_file else ()
        return workload, api.plan(workload, offerings)

    workload, result = _call(call)
    checked = _verify(workload, result, top, verify_duration, price_file) if verify else None
    if json_output:
        _print_json(api.plan_dict(result, None if explain else top, workload, checked))
        return
    from eksplain.cli.format import plan_lines

    console = _console()
    for line in plan_lines(result, top, explain):
        console.print(line)
    _print_verification(console, checked)


def _print_verification(console: Console, checked: api.Verification | None) -> None:
    if checked is None:
        return
    from eksplain.cli.format_verify import verification_lines

    for line in verification_lines(checked):
        console.print(line)


def _verify(workload: api.WorkloadSpec, planned: api.Plan, top: int, duration: str,
            price_file: Path | None) -> api.Verification:
    """``plan --verify``: the facade's verification, with a progress bar on a terminal."""
    seconds = _call(lambda: parse_duration(duration))
    progress = _SimProgress(seconds * (1 + top))

    def call() -> api.Verification:
        offerings = api.load_price_file(price_file) if price_file else ()
        return api.verify(workload, planned, api.VerifyOptions(duration_s=seconds, top=top),
                          offerings, progress)

    try:
        return _call(call)
    finally:
        progress.close()


@app.command()
def render(
    spec: Annotated[Path, typer.Argument(
        help="Workload spec (YAML), or the JSON of `eksplain plan --json`.")],
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Directory to write the manifests to.")] = None,
    stdout: Annotated[bool, typer.Option(
        "--stdout", help="Print one multi-document YAML stream instead of writing files.")] = False,
    check: Annotated[bool, typer.Option(
        "--check", help="Validate every object (schemas and cross-object checks) first.")] = False,
    force: Annotated[bool, typer.Option(
        "--force", help="Write into an existing directory (only the rendered files).")] = False,
    autoscaler: Annotated[str, typer.Option(help="hpa (Prometheus adapter) or keda.")] = "hpa",
    namespace: Annotated[str | None, typer.Option(
        help="Namespace (default: the model's short name).")] = None,
    cluster_name: Annotated[str, typer.Option(
        help="Cluster name in Karpenter's discovery tags and node role.")] = "eksplain",
    model_bucket: Annotated[str, typer.Option(
        help="S3 bucket of the model cache.")] = "my-model-bucket",
    hf_token_secret: Annotated[str, typer.Option(
        help="Secret holding HF_TOKEN (you create it).")] = "hf-token",
    fsx_subnet: Annotated[str | None, typer.Option(
        help="Subnet FSx for Lustre file systems are created in (default: a REPLACE-ME "
             "placeholder).")] = None,
    fsx_security_groups: Annotated[str | None, typer.Option(
        help="Security groups of the FSx for Lustre file systems, comma-separated (default: a "
             "placeholder).")] = None,
    efs_file_system: Annotated[str | None, typer.Option(
        help="EFS file system (fs-...) of an EFS model cache (default: a placeholder).")] = None,
    price_file: Annotated[Path | None, typer.Option(help="CSV of your own prices.")] = None,
) -> None:
    """Kubernetes manifests for a serving or training plan: one YAML file per concern,
    kustomization.yaml and a README, validated offline with --check."""

    def call() -> api.Rendered:
        if (output is None) == (not stdout):
            raise InputError("Give exactly one of --output DIR and --stdout.",
                             hint="eksplain render examples/chat-llama-3.1-8b.yaml -o out/")
        if autoscaler not in ("hpa", "keda"):
            raise InputError(f"--autoscaler must be hpa or keda, not {autoscaler!r}.")
        options = api.RenderOptions(
            namespace=namespace, cluster_name=cluster_name,
            autoscaler="keda" if autoscaler == "keda" else "hpa",
            hf_token_secret=hf_token_secret, model_bucket=model_bucket,
            **{k: v for k, v in (("fsx_subnet_id", fsx_subnet),
                                 ("fsx_security_group_ids", fsx_security_groups),
                                 ("efs_file_system_id", efs_file_system)) if v is not None})
        offerings = api.load_price_file(price_file) if price_file else ()
        if spec.suffix.lower() == ".json":
            planned = api.load_plan_json(spec)
            return api.render(planned.spec, output, check=check, force=force, options=options,
                              offerings=offerings, expect_choice=planned.choice_label)
        return api.render(api.load_spec(spec), output, check=check, force=force,
                          options=options, offerings=offerings)

    result = _call(call)
    if stdout:
        sys.stdout.write(api.render_stream(result))
        return
    from eksplain.cli.format import render_lines

    console = _console()
    for line in render_lines(result):
        console.print(line)


@app.command("explain")
def explain_term(
    term: Annotated[str, typer.Argument(help="A glossary term, key or alias (hpa, kv cache, "
                                             "tp ...).")],
    model: Annotated[str | None, typer.Option(
        help="Model to quantify for (default: Llama-3.1-8B).")] = None,
    hardware: Annotated[str | None, typer.Option(
        help="Accelerator or instance type (default: h100).")] = None,
    input_tokens: Annotated[int, typer.Option(help="Prompt tokens per request.")] = 512,
    output_tokens: Annotated[int, typer.Option(help="Generated tokens per request.")] = 256,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """A glossary term: what it is, why it matters, and what it means for your workload."""
    result = _call(lambda: api.explain(term, model, hardware, input_tokens, output_tokens))
    if json_output:
        from eksplain.serialize import explanation_dict

        _print_json(explanation_dict(result))
        return
    from eksplain.cli.format import explanation_lines

    console = _console()
    for line in explanation_lines(result):
        console.print(line)


@app.command()
def glossary(
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Every glossary term with its key and a one-line definition."""
    entries = _call(api.glossary)
    if json_output:
        from eksplain.serialize import glossary_entry_dict

        _print_json([glossary_entry_dict(e) for e in entries])
        return
    from eksplain.cli.format import glossary_table

    _console().print(glossary_table(entries))


@app.command()
def schema() -> None:
    """Print the JSON Schema of the workload spec."""
    _print_json(api.spec_schema())


@app.command()
def hardware(
    family: Annotated[str | None, typer.Option(help="Instance family, e.g. g6e or p5.")] = None,
    min_memory: Annotated[str | None, typer.Option(
        help="Minimum total accelerator memory, e.g. 48GiB.")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List EC2 instance types with their accelerators and prices."""
    rows = _call(lambda: api.hardware(family, min_memory))
    if json_output:
        _print_json([api.hardware_row_dict(r) for r in rows])
        return
    from eksplain.cli.format import hardware_table

    _console().print(hardware_table(rows))


@app.command()
def models(
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the bundled model catalogue."""
    entries = _call(api.models)
    if json_output:
        _print_json([api.model_entry_dict(e) for e in entries])
        return
    from eksplain.cli.format import models_table

    _console().print(models_table(entries))


@app.command()
def validate(
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Predicted vs measured for the reference set of published measurements."""
    from eksplain import validation

    report = _call(validation.run)
    if json_output:
        _print_json(validation.report_dict(report))
        return
    sys.stdout.write(validation.render_markdown(report))


class _SimProgress:
    """A progress bar on stderr, shown only on a terminal once a run has taken a second."""

    def __init__(self, total_s: float) -> None:
        import time

        from rich.progress import Progress

        self._clock = time.monotonic
        self._start = self._clock()
        self._total = total_s
        console = Console(stderr=True)
        self._shown = console.is_terminal
        self._bar = Progress(console=console, transient=True)
        self._task: Any = None

    def __call__(self, done_s: float) -> None:
        if self._task is None:
            if not self._shown or self._clock() - self._start < 1.0:
                return
            self._bar.start()
            self._task = self._bar.add_task("simulating", total=self._total)
        self._bar.update(self._task, completed=done_s)

    def close(self) -> None:
        if self._task is not None:
            self._bar.stop()


def _write_chart(path: Path, build: Callable[[], api.Chart]) -> None:
    """Draw a chart to ``path`` (its suffix picks the format); say where on stderr, so that
    ``--json`` output on stdout stays clean."""

    def draw() -> bytes:
        return api.chart_bytes(build(), path.suffix)

    data = _call(draw)
    try:
        path.write_bytes(data)
    except OSError as exc:
        _fail(f"Cannot write the chart {path}: {exc.strerror}.")
    Console(stderr=True, highlight=False).print(f"chart written to {path}", markup=False)


@app.command()
def simulate(
    spec: Annotated[Path | None, typer.Argument(
        help="Workload spec (YAML) of a serving workload.")] = None,
    duration: Annotated[str, typer.Option(help="Simulated time, e.g. 1h or 30m.")] = "1h",
    trace: Annotated[Path | None, typer.Option(
        help="CSV trace (timestamp_s, input_tokens, output_tokens) to replay.")] = None,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same "
                                           "output.")] = 0,
    replicas: Annotated[int | None, typer.Option(
        help="A fixed number of replicas (autoscaling off).")] = None,
    routing: Annotated[str, typer.Option(
        help="round-robin, least-outstanding or central-queue.")] = "least-outstanding",
    autoscale: Annotated[str, typer.Option(
        help="hpa, keda (scales to zero) or off (the plan's peak replicas).")] = "hpa",
    token_budget: Annotated[int | None, typer.Option(
        help="The engine's max_num_batched_tokens (default: calibrated).")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    chart: Annotated[Path | None, typer.Option(
        help="Also draw load, replicas, queue and latency over time to this file (.png, .svg "
             "or .html).")] = None,
    sweep: Annotated[Path | None, typer.Option(
        help="Run the scenarios of this sweep file (YAML) instead of one spec.")] = None,
    jobs: Annotated[int | None, typer.Option(
        help="Local processes for --sweep (default: one per CPU).")] = None,
    ray: Annotated[str | None, typer.Option(
        help="Run --sweep on the Ray cluster at this address (local: start one here).")] = None,
) -> None:
    """Simulate the plan's choice under the spec's traffic: latency percentiles, SLO
    attainment, replicas, nodes, cold starts, faults and cost over time."""
    if sweep is not None:
        _simulate_sweep(sweep, jobs, ray, json_output, chart)
        return
    if spec is None:
        _fail("Give a spec file, or --sweep FILE. (eksplain simulate "
              "examples/chat-llama-3.1-8b.yaml)")
        return
    seconds = _call(lambda: parse_duration(duration))
    progress = _SimProgress(seconds)

    def call() -> api.Simulation:
        workload = api.load_spec(spec)
        # --trace, else the spec's traffic.trace (a path relative to the spec file).
        named = workload.traffic.trace
        trace_path = trace or (spec.parent / named if named else None)
        options = api.SimulateOptions(
            duration_s=seconds, seed=seed, replicas=replicas, routing=routing,
            trace=api.load_trace(trace_path) if trace_path else None, autoscale=autoscale,
            token_budget=token_budget)
        return api.simulate(workload, options, progress=progress)

    try:
        result = _call(call)
    finally:
        progress.close()
    from eksplain.cli.format import simulation_lines

    _report(chart, lambda: api.simulation_chart(result),
            api.simulation_dict(result) if json_output else None, lambda: simulation_lines(result))


def _report(chart: Path | None, draw: Callable[[], api.Chart], as_json: dict[str, Any] | None,
            lines: Callable[[], Iterable[object]]) -> None:
    """A simulation's or sweep's outputs: the chart when asked, then JSON or the text lines."""
    if chart is not None:
        _write_chart(chart, draw)
    if as_json is not None:
        _print_json(as_json)
        return
    console = _console()
    for line in lines():
        console.print(line)


class _SweepProgress:
    """Scenarios done, on stderr: a bar on a terminal, else a line every tenth of the sweep
    (so a long sweep in CI shows it is alive)."""

    def __init__(self) -> None:
        from rich.progress import Progress

        self._console = Console(stderr=True, highlight=False)
        self._bar = Progress(console=self._console, transient=True)
        self._task: Any = None
        self._said = 0

    def __call__(self, done: int, total: int) -> None:
        if not self._console.is_terminal:
            step = max(total // 10, 1)
            if done // step > self._said or done == total:
                self._said = done // step
                self._console.print(f"sweep: {done}/{total} scenarios done", markup=False)
            return
        if self._task is None:
            self._bar.start()
            self._task = self._bar.add_task("simulating", total=total)
        self._bar.update(self._task, completed=done)

    def close(self) -> None:
        if self._task is not None:
            self._bar.stop()


def _simulate_sweep(path: Path, jobs: int | None, ray: str | None, json_output: bool,
                    chart: Path | None) -> None:
    """``simulate --sweep``: every scenario of the file, then one table, JSON and chart."""
    progress = _SweepProgress()
    try:
        result = _call(lambda: api.sweep(api.load_sweep(path), jobs, ray, progress))
    finally:
        progress.close()
    from eksplain.cli.format_sweep import sweep_lines

    _report(chart, lambda: api.sweep_chart(result),
            api.sweep_dict(result) if json_output else None, lambda: sweep_lines(result))



@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on; 0.0.0.0 exposes it to the "
                                           "network.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    workers: Annotated[int, typer.Option(
        min=1, help="Server processes (one per CPU core serves the most requests).")] = 1,
) -> None:
    """Serve the HTTP API (/v1, OpenAPI at /openapi.json) and the web page (/)."""
    try:  # imported here: the CLI's other commands start without the web stack
        import uvicorn

        import eksplain.serve  # noqa: F401  (fails here, with the hint, when the extra is missing)
    except ImportError as exc:
        _fail(f"eksplain serve needs {exc.name}: pip install 'eksplain\\[serve]'")  # \[: not markup
    uvicorn.run("eksplain.serve:create_app", factory=True, host=host, port=port,
                workers=workers, log_level="info")


def run() -> None:
    """Console-script entry point."""
    app()
