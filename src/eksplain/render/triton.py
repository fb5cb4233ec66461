"""Triton Inference Server with the TensorRT-LLM backend (engine: trtllm).

TensorRT-LLM serves a compiled engine, not the Hugging Face checkpoint: before the server starts,
an init container with the pod's GPUs compiles one for exactly the plan's layout, and writes a
Triton model repository that points at it.

    convert     examples/models/core/<family>/convert_checkpoint.py --tp_size --pp_size (bf16,
                fp16), or examples/quantization/quantize.py --qformat (fp8, AWQ), into a
                TensorRT-LLM checkpoint sharded for TP x PP ranks
    build       trtllm-build --max_batch_size (the plan's batch) --max_input_len (the spec's p95
                prompt) --max_seq_len (the context), into the model cache, once per layout:
                a later pod (or, on a shared cache, another replica) finds it and skips both
    repository  the backend's inflight_batcher_llm templates (ensemble, preprocessing,
                tensorrt_llm, postprocessing, tensorrt_llm_bls) filled with fill_template.py
    serve       tritonserver on the repository; with TP x PP ranks, one tritonserver per rank
                under mpirun, as the backend's scripts/launch_triton_server.py starts them

Commands follow Triton's TensorRT-LLM guide and the backend's README for the TensorRT-LLM version
pinned in data/images.yaml (row ``triton_trtllm``, with its sources). The image does not ship the
converters or the repository templates: the rendered README says what the user's image adds.
"""

from __future__ import annotations

import shlex
from typing import Any

from eksplain.errors import RenderError
from eksplain.render.context import CACHE_MOUNT, WORK_MOUNT, EngineBuild, RenderContext

__all__ = ["build_of", "engine_build_container", "engine_dir", "model_dir",
           "repository_dir", "server_command"]

MODELS = ("preprocessing", "postprocessing", "tensorrt_llm", "ensemble", "tensorrt_llm_bls")


def build_of(ctx: RenderContext) -> EngineBuild:
    """The plan's engine build settings (RenderError for a context without them)."""
    if ctx.engine_build is None:
        raise RenderError("the Triton server needs the plan's engine build settings.")
    return ctx.engine_build


def model_dir(ctx: RenderContext) -> str:
    """Where the Hugging Face checkpoint is: the S3 copy, or a download into the shared cache."""
    return f"{CACHE_MOUNT}/{ctx.model_id}"


def engine_dir(ctx: RenderContext) -> str:
    """The compiled engine's directory: one per model, TensorRT-LLM version, GPU and layout
    (an engine runs only on the GPU type and with the limits it was built for)."""
    b = build_of(ctx)
    version = ctx.engine["trtllm_version"]
    gpu = ctx.device.id
    layout = (f"tp{b.tp}-pp{b.pp}-{b.weight_format}-batch{b.max_batch_size}"
              f"-in{b.max_input_len}-seq{b.max_seq_len}")
    return f"{CACHE_MOUNT}/trtllm/{ctx.model_id}/{version}-{gpu}/{layout}"


def repository_dir() -> str:
    return f"{WORK_MOUNT}/triton-repository"


def _convert(ctx: RenderContext, b: EngineBuild, out: str) -> list[str]:
    """The command that writes a TensorRT-LLM checkpoint sharded for TP x PP ranks."""
    row, src = ctx.engine, str(ctx.engine["source_dir"])
    shards = ["--tp_size", str(b.tp), "--pp_size", str(b.pp)]
    dtype = row["dtypes"].get(b.weight_format)
    if dtype is not None:
        family = row["converters"].get(b.model_type)
        if family is None:
            raise RenderError(f"render has no TensorRT-LLM converter for model_type "
                              f"{b.model_type}.",
                              hint="use engine: vllm, or one of the model types "
                                   + ", ".join(sorted(row["converters"])))
        script = f"{src}/examples/models/core/{family}/convert_checkpoint.py"
        return ["python3", script, "--model_dir", model_dir(ctx), "--output_dir", out,
                "--dtype", dtype, *shards]
    qformat = row["quantize_formats"].get(b.weight_format)
    if qformat is None:
        raise RenderError(f"render builds TensorRT-LLM engines from bf16, fp16, fp8 or AWQ "
                          f"weights, not {b.weight_format}.",
                          hint="use engine: vllm, or set precision to one of those")
    return ["python3", f"{src}/examples/quantization/quantize.py", "--model_dir",
            model_dir(ctx), "--output_dir", out, "--dtype", "bfloat16", "--qformat", qformat,
            *shards]


def _sh(parts: list[str]) -> str:
    """A shell command line: words quoted, except those that use the script's ``$tmp``."""
    return " ".join(f'"{p}"' if "$tmp" in p else shlex.quote(p) for p in parts)


def _fill(ctx: RenderContext, model: str, values: dict[str, str]) -> str:
    fill = f"{ctx.engine['source_dir']}/triton_backend/tools/fill_template.py"
    pairs = ",".join(f"{k}:{v}" for k, v in values.items())
    return shlex.join(["python3", fill, "-i", f"{repository_dir()}/{model}/config.pbtxt", pairs])


def _repository(ctx: RenderContext, b: EngineBuild) -> list[str]:
    """Copy the backend's in-flight batching templates and fill them for the plan's batch."""
    batch = str(b.max_batch_size)
    templates = f"{ctx.engine['source_dir']}/triton_backend/all_models/inflight_batcher_llm"
    common = {"triton_max_batch_size": batch}
    return [
        shlex.join(["rm", "-rf", repository_dir()]),
        shlex.join(["cp", "-r", templates, repository_dir()]),
        _fill(ctx, "preprocessing", {"tokenizer_dir": model_dir(ctx), **common,
                                     "preprocessing_instance_count": "1"}),
        _fill(ctx, "postprocessing", {"tokenizer_dir": model_dir(ctx), **common,
                                      "postprocessing_instance_count": "1"}),
        _fill(ctx, "tensorrt_llm", {
            "triton_backend": "tensorrtllm", **common, "decoupled_mode": "true",
            "max_beam_width": "1", "engine_dir": f"{engine_dir(ctx)}/engine",
            "batching_strategy": "inflight_fused_batching",
            "max_queue_delay_microseconds": "0",
            "encoder_input_features_data_type": "TYPE_FP16", "logits_datatype": "TYPE_FP32"}),
        _fill(ctx, "ensemble", {**common, "logits_datatype": "TYPE_FP32"}),
        _fill(ctx, "tensorrt_llm_bls", {**common, "decoupled_mode": "true",
                                        "bls_instance_count": "1",
                                        "logits_datatype": "TYPE_FP32"}),
    ]


def _download(ctx: RenderContext) -> list[str]:
    """On a shared cache, fetch the checkpoint into it once (the S3 copy is already there)."""
    if ctx.cache == "s3":
        return []
    code = (f"from huggingface_hub import snapshot_download; "
            f"snapshot_download({ctx.model_id!r}, local_dir={model_dir(ctx)!r})")
    return [f"[ -f {shlex.quote(model_dir(ctx) + '/config.json')} ] || "
            + shlex.join(["python3", "-c", code])]


def build_script(ctx: RenderContext) -> str:
    """The init container's script: build the engine unless the cache holds it, then write the
    model repository. A build goes to a directory of its own and is renamed into place, so two
    pods that build at once on a shared cache never read a half-written engine."""
    b = build_of(ctx)
    out = engine_dir(ctx)
    build = ["trtllm-build", "--checkpoint_dir", "$tmp/checkpoint", "--output_dir",
             "$tmp/engine", "--max_batch_size", str(b.max_batch_size), "--max_input_len",
             str(b.max_input_len), "--max_seq_len", str(b.max_seq_len), "--gemm_plugin", "auto"]
    steps = [
        "set -eu",
        *_download(ctx),
        f"out={shlex.quote(out)}",
        'tmp="$out.tmp-$HOSTNAME"',
        'if [ ! -f "$out/engine/config.json" ]; then',
        '  rm -rf "$tmp" && mkdir -p "$tmp"',
        "  " + _sh(_convert(ctx, b, "$tmp/checkpoint")),
        "  " + _sh(build),
        '  rm -rf "$tmp/checkpoint"',
        '  mv -T "$tmp" "$out" || rm -rf "$tmp"',
        "fi",
        *_repository(ctx, b),
    ]
    return "\n".join(steps) + "\n"


def engine_build_container(ctx: RenderContext) -> dict[str, Any]:
    """The init container that compiles the engine, with the server's GPUs, size and volumes
    (the server starts only when it has finished)."""
    from eksplain.render.workload import env, resources, security, server_mounts

    mounts = [{**m, "readOnly": False} if m["name"] == "model-cache" else m
              for m in server_mounts(ctx)]
    return {
        "name": "build-engine", "image": ctx.image(ctx.engine_key),
        "imagePullPolicy": "IfNotPresent", "command": ["bash", "-c"],
        "args": [build_script(ctx)], "env": env(ctx), "resources": resources(ctx),
        "securityContext": security(), "volumeMounts": mounts,
    }


def _rank(ctx: RenderContext, rank: int) -> list[str]:
    row = ctx.engine
    return ["tritonserver", f"--model-repository={repository_dir()}",
            f"--http-port={row['port']}", f"--grpc-port={row['grpc_port']}",
            f"--metrics-port={row['metrics_port']}", "--disable-auto-complete-config",
            f"--backend-config=python,shm-region-prefix-name=prefix{rank}_"]


def server_command(ctx: RenderContext) -> tuple[list[str], list[str]]:
    """tritonserver on the repository; one per rank under mpirun when TP x PP > 1 (only rank 0
    serves requests: the others run the engine's shards)."""
    b = build_of(ctx)
    world = b.tp * b.pp
    if world == 1:
        command = _rank(ctx, 0)
        return command[:1], command[1:]
    args: list[str] = []
    for rank in range(world):
        args += [*([":"] if rank else []), "-n", "1", *_rank(ctx, rank)]
    return ["mpirun"], args

