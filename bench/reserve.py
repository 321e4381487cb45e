"""Capacity-engine benchmark: reserve+settle latency and throughput vs pool size, next to a no-op.

    python bench/reserve.py [--seconds 5] [--concurrency 32] [--processes 1 4] [--sizes 10 1000 10000]

Starts its own redis-server on a free loopback port (or uses --redis-url), builds pools of 10,
1,000 and 10,000 keys serving one model, and measures from 1 and 4 processes:

* reserve latency (p50/p99) and reserve+settle pairs per second, with the default strategy;
* a no-op EVALSHA (``return 1`` on one key) on the same server and the same client: the ceiling.

Targets (DESIGN.md): reserve latency flat within 1.5x from 10 to 10,000 keys; reserve+settle
throughput >= 50% of the no-op's. Prints a table and writes bench/results/reserve.json.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import multiprocessing
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from keys.engine import CapacityEngine
from keys.models import APIKey
from lua import Script
from router.settings import Settings
from router.store import create_store

RESULTS = Path(__file__).resolve().parent / "results"
NOOP_SOURCE = "return 1"
NOOP = Script("noop", NOOP_SOURCE, hashlib.sha1(NOOP_SOURCE.encode()).hexdigest())  # noqa: S324


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_redis() -> tuple[subprocess.Popen[bytes], str, str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit(
            "redis-server not found: install it (apt-get install redis-server) or pass --redis-url"
        )
    port, workdir = free_port(), tempfile.mkdtemp(prefix="bench-redis-")
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            workdir,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    return proc, f"redis://127.0.0.1:{port}/0", workdir


def pool(size: int) -> list[APIKey]:
    # generous limits: the benchmark measures the engine's cost, not running out of room
    return [
        APIKey(
            key_id=f"k{i:05d}",
            model_name="gpt-4o",
            provider="openai",
            rpm=1_000_000,
            tpm=100_000_000,
        )
        for i in range(size)
    ]


async def _measure(
    url: str, prefix: str, mode: str, seconds: float, concurrency: int
) -> dict[str, Any]:
    store = create_store(
        Settings.from_env(
            {}, REDIS_URL=url, REDIS_KEY_PREFIX=prefix, REDIS_MAX_CONNECTIONS=concurrency + 4
        )
    )
    engine = CapacityEngine(store)
    if mode != "noop":
        await engine.configure(
            pool(int(prefix.split("-")[-1]))
        )  # every replica loads the same keys
    reserve_lat: list[float] = []
    pairs = 0
    stop = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal pairs
        while time.perf_counter() < stop:
            started = time.perf_counter()
            if mode == "noop":
                await store.run(NOOP, [store.keys.pool_config], [])
                reserve_lat.append(time.perf_counter() - started)
            else:
                reservation = await engine.reserve("gpt-4o", 100)
                reserve_lat.append(time.perf_counter() - started)
                await engine.settle(reservation, actual_tokens=60)
            pairs += 1

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - began
    await store.close()
    return {"ops": pairs, "elapsed": elapsed, "latencies": reserve_lat}


def measure(url: str, prefix: str, mode: str, seconds: float, concurrency: int) -> dict[str, Any]:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    return asyncio.run(_measure(url, prefix, mode, seconds, concurrency))


def run_case(
    url: str, mode: str, size: int, processes: int, seconds: float, concurrency: int
) -> dict[str, Any]:
    prefix = f"b{uuid.uuid4().hex[:6]}-{size}"
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(processes) as workers:
        parts = workers.starmap(measure, [(url, prefix, mode, seconds, concurrency)] * processes)
    latencies = sorted(x for part in parts for x in part["latencies"])
    ops = sum(part["ops"] for part in parts)
    elapsed = max(part["elapsed"] for part in parts)
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 100 else [latencies[-1]] * 99
    return {
        "mode": mode,
        "keys": size,
        "processes": processes,
        "concurrency": concurrency,
        "ops_per_s": ops / elapsed,
        "p50_ms": q[49] * 1000,
        "p99_ms": q[98] * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=32, help="in-flight calls per process")
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 1000, 10000])
    parser.add_argument("--redis-url")
    parser.add_argument("--out", default=str(RESULTS / "reserve.json"))
    args = parser.parse_args()
    proc = workdir = None
    url = args.redis_url
    if not url:
        proc, url, workdir = start_redis()
    rows = []
    try:
        for processes in args.processes:
            rows.append(run_case(url, "noop", 0, processes, args.seconds, args.concurrency))
            for size in args.sizes:
                rows.append(
                    run_case(url, "reserve+settle", size, processes, args.seconds, args.concurrency)
                )
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait()
            shutil.rmtree(workdir or "", ignore_errors=True)
    print(f"{'mode':16} {'keys':>6} {'procs':>5} {'ops/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
    for row in rows:
        print(
            f"{row['mode']:16} {row['keys']:>6} {row['processes']:>5} {row['ops_per_s']:>9.0f} "
            f"{row['p50_ms']:>8.3f} {row['p99_ms']:>8.3f}"
        )
    summary = {}
    for processes in args.processes:
        noop = next(r for r in rows if r["mode"] == "noop" and r["processes"] == processes)
        cases = [r for r in rows if r["mode"] != "noop" and r["processes"] == processes]
        smallest, largest = cases[0], cases[-1]
        summary[f"{processes}_process"] = {
            "p50_ratio_largest_vs_smallest_pool": largest["p50_ms"] / smallest["p50_ms"],
            "pairs_vs_noop_calls": min(c["ops_per_s"] for c in cases) / noop["ops_per_s"],
        }
    print(json.dumps(summary, indent=2))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "benchmark": "reserve",
                "seconds": args.seconds,
                "machine": {
                    "cpus": os.cpu_count(),
                    "python": platform.python_version(),
                    "platform": platform.platform(),
                    "redis": subprocess.run(
                        ["redis-server", "--version"], capture_output=True, text=True
                    ).stdout.strip(),
                },
                "rows": rows,
                "summary": summary,
            },
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
