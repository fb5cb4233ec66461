"""Load on `eksplain serve`: 50 concurrent clients against /v1/estimate, then /v1/plan.

    python bench/bench_serve.py [--seconds 30] [--clients 50]

Starts `eksplain serve` on 127.0.0.1 (a free port), and talks to it over loopback only. Each
client holds one keep-alive connection and sends its next request when the last one is
answered (a closed loop), for a bounded time per route; the report gives throughput and the
p50/p99 latency the clients saw. The clients speak plain HTTP/1.1 over asyncio streams with
pre-encoded requests, as load generators such as wrk do, so that on a small machine the load
generator takes little of the CPU the server needs.

Target (issue "eksplain serve"): p99 of /v1/estimate under 100 ms with 50 clients.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"  # loopback only: the benchmark sends nothing anywhere else
ESTIMATES: list[dict[str, Any]] = [
    {"model": "meta-llama/Llama-3.1-8B", "hardware": "h100", "batch": 32, "seq_len": 4096},
    {"model": "llama-3.1-70b", "hardware": "p5.48xlarge", "tp": 8},
    {"model": "llama-3.1-8b", "hardware": "l40s", "batch": 16, "input_tokens": 1024,
     "output_tokens": 256},
]
PLANS: list[dict[str, Any]] = [
    {"model": "meta-llama/Llama-3.1-8B", "task": "inference", "precision": ["bf16", "fp8"],
     "tokens": {"input_mean": 1024, "input_p95": 2048, "output_mean": 256, "output_p95": 512},
     "traffic": {"rps": 20, "peak_to_mean": 2.0}, "slo": {"ttft_p95": 0.5, "tpot_p95": 0.05}},
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def start_server(port: int, workers: int) -> subprocess.Popen[bytes]:
    eksplain = Path(sys.executable).with_name("eksplain")
    proc = subprocess.Popen([str(eksplain), "serve", "--host", HOST, "--port", str(port),
                             "--workers", str(workers)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection((HOST, port), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("eksplain serve did not start")


def encode(path: str, body: dict[str, Any]) -> bytes:
    data = json.dumps(body).encode()
    head = (f"POST {path} HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\n\r\n")
    return head.encode() + data


async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                   request: bytes) -> int:
    """Send one request and read its whole response; the status code."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    length = next(int(line.split(":", 1)[1]) for line in lines
                  if line.lower().startswith("content-length:"))
    await reader.readexactly(length)
    return int(lines[0].split()[1])


async def client(port: int, requests: list[bytes], until: float, start: int,
                 latencies: list[float], errors: list[int]) -> None:
    reader, writer = await asyncio.open_connection(HOST, port)
    i = start
    try:
        while time.perf_counter() < until:
            sent = time.perf_counter()
            status = await exchange(reader, writer, requests[i % len(requests)])
            latencies.append(time.perf_counter() - sent)
            if status != 200:
                errors.append(status)
            i += 1
    finally:
        writer.close()


async def load(port: int, path: str, bodies: list[dict[str, Any]], clients: int,
               seconds: float) -> tuple[list[float], list[int], float]:
    latencies: list[float] = []
    errors: list[int] = []
    requests = [encode(path, body) for body in bodies]
    await client(port, requests, time.perf_counter() + 1.0, 0, [], [])  # warm the caches
    start = time.perf_counter()
    until = start + seconds
    await asyncio.gather(*(client(port, requests, until, n, latencies, errors)
                           for n in range(clients)))
    return latencies, errors, time.perf_counter() - start


def _stat(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process and its children (the workers), from Linux's /proc;
    None elsewhere."""
    try:
        pids = [pid] + [int(p.name) for p in Path("/proc").iterdir()
                        if p.name.isdigit() and _is_child(int(p.name), pid)]
        return sum(int(f[11]) + int(f[12]) for f in map(_stat, pids)) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return None


def _is_child(pid: int, parent: int) -> bool:
    try:
        return int(_stat(pid)[1]) == parent
    except (OSError, IndexError, ValueError):
        return False


def report(path: str, latencies: list[float], errors: list[int], elapsed: float,
           clients: int, cpu_s: float | None) -> None:
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    print(f"{path}: {clients} clients, {elapsed:.1f} s: {len(ordered):,} requests, "
          f"{len(ordered) / elapsed:,.1f} requests/s; latency p50 "
          f"{statistics.median(ordered) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, max "
          f"{ordered[-1] * 1000:.1f} ms; {len(errors)} errors")
    if cpu_s is not None:  # what the server spent, whatever else the machine was running
        print(f"  server CPU {cpu_s / len(ordered) * 1000:.2f} ms per request")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--workers", type=int, default=1, help="server processes")
    args = parser.parse_args()
    port = free_port()
    proc = start_server(port, args.workers)
    try:
        for path, bodies in (("/v1/estimate", ESTIMATES), ("/v1/plan", PLANS)):
            before = cpu_seconds(proc.pid)
            result = asyncio.run(load(port, path, bodies, args.clients, args.seconds))
            after = cpu_seconds(proc.pid)
            used = after - before if after is not None and before is not None else None
            report(path, *result, args.clients, used)
        print(f"load average (1, 5, 15 min): {os.getloadavg()}")
        print("target: /v1/estimate p99 < 100 ms")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


if __name__ == "__main__":
    main()
