"""Gateway memory: resident set size idle and under load, with 10 and 10,000 keys in the pool.

    python bench/memory.py [--keys 10 10000] [--seconds 20] [--concurrency 64]

For each pool size: a keys.json of that many keys (secrets in a file secret store, limits far above
the load), a real redis-server, the provider simulator (zero latency, its own process) and one
gateway process (``python -m router serve``), all started by the script. The gateway's RSS
(psutil) is read:

* ``cold``: once it is ready, before any request;
* ``idle``: after a few requests (the first loads the tokenizer's tables) and a few quiet seconds;
* ``load``: sampled every 0.25 s while ``--concurrency`` requests are kept in flight for
  ``--seconds`` (the peak is reported), with the requests/s it served and its CPU per request;
* ``after``: a few seconds after the load stopped (growth here would mean a leak).

Also reported: how long the gateway took to become ready (loading and indexing the pool).
Prints a table and writes bench/results/memory.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    BenchKey,
    install_uvloop,
    print_table,
    redis_server,
    write_results,
)
from router.demo.gateway import GatewayProcess

MODEL = "gpt-4o-mini"
SETTLE_SECONDS = 3.0


def write_pool_files(directory: Path, size: int, base_url: str) -> tuple[Path, dict[str, str]]:
    """keys.json with ``size`` keys and a secrets file (the ``file`` secret store) for them."""
    keys = [BenchKey(f"m{i:05d}", rpm=1_000_000, tpm=1_000_000_000) for i in range(size)]
    keys_path = directory / "keys.json"
    keys_path.write_text(json.dumps({"keys": [k.entry(base_url) for k in keys]}))
    secrets_path = directory / "secrets.json"
    secrets_path.write_text(json.dumps({k.key_id: k.secret for k in keys}))
    secrets_path.chmod(0o600)
    return keys_path, {"SECRET_STORE_TYPE": "file", "SECRETS_FILE": str(secrets_path)}


async def _load(url: str, key: str, seconds: float, concurrency: int) -> dict[str, Any]:
    """Keep ``concurrency`` chat completions in flight against the gateway for ``seconds``."""
    import aiohttp

    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 16}
    headers = {"Authorization": f"Bearer {key}"}
    done = failed = 0
    stop = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal done, failed
            while time.perf_counter() < stop:
                async with session.post(
                    url + "/v1/chat/completions", json=body, headers=headers
                ) as answer:
                    await answer.read()
                    if answer.status == 200:
                        done += 1
                    else:
                        failed += 1

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    return {"served": done, "failed": failed, "elapsed": elapsed}


def measure(size: int, args: argparse.Namespace) -> dict[str, Any]:
    import psutil  # type: ignore[import-untyped]

    from router.simulator import SimulatorConfig, SimulatorProcess

    with (
        tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp,
        redis_server() as redis_url,
        SimulatorProcess(SimulatorConfig(open_access=True, request_log_size=0)) as sim,
    ):
        keys_path, secret_env = write_pool_files(Path(tmp), size, sim.base_url_for("openai"))
        settings = {
            **secret_env,
            "REDIS_URL": redis_url,
            "USER_RPM_DEFAULT": "100000000",
            "GLOBAL_RPM_MAX": "100000000",
            "LOG_LEVEL": "WARNING",
        }
        began = time.perf_counter()
        with GatewayProcess(keys_path, {}, settings=settings, startup_timeout=600) as gateway:
            ready_seconds = time.perf_counter() - began
            process = psutil.Process(gateway.pid)
            time.sleep(SETTLE_SECONDS)
            cold = process.memory_info().rss
            install_uvloop()
            # a few requests load what the first one needs (the tokenizer's tables, ~75 MiB)
            asyncio.run(_load(gateway.url, gateway.virtual_key, 0.5, 1))
            time.sleep(SETTLE_SECONDS)
            idle = process.memory_info().rss
            peak = idle
            series: list[tuple[float, float]] = []
            cpu0 = process.cpu_times()

            async def sampled() -> dict[str, Any]:
                nonlocal peak
                job = asyncio.ensure_future(
                    _load(gateway.url, gateway.virtual_key, args.seconds, args.concurrency)
                )
                start = time.perf_counter()
                while not job.done():
                    rss = process.memory_info().rss
                    peak = max(peak, rss)
                    series.append((round(time.perf_counter() - start, 2), rss / 2**20))
                    await asyncio.wait({job}, timeout=0.25)
                return job.result()

            load = asyncio.run(sampled())
            cpu1 = process.cpu_times()
            end_of_load = process.memory_info().rss
            time.sleep(SETTLE_SECONDS)
            after = process.memory_info().rss
    cpu = (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)
    mib = 1024 * 1024
    return {
        "keys": size,
        "ready_seconds": ready_seconds,
        "rss_cold_mib": cold / mib,
        "rss_idle_mib": idle / mib,
        "rss_load_peak_mib": peak / mib,
        "rss_end_of_load_mib": end_of_load / mib,
        "rss_after_mib": after / mib,
        "requests_per_s": load["served"] / load["elapsed"],
        "failed": load["failed"],
        "gateway_cpu_us_per_request": cpu / max(1, load["served"]) * 1e6,
        "gateway_cpu_share": cpu / load["elapsed"],
        "rss_series_mib": series,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--keys", type=int, nargs="+", default=[10, 10_000])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--out")
    args = parser.parse_args()
    rows = []
    for size in args.keys:
        print(f"{size} keys", file=sys.stderr, flush=True)
        rows.append(measure(size, args))
    print_table(
        rows,
        [
            ("keys", "keys", "d"),
            ("ready_seconds", "ready s", ".1f"),
            ("rss_cold_mib", "cold MiB", ".1f"),
            ("rss_idle_mib", "idle MiB", ".1f"),
            ("rss_load_peak_mib", "load peak MiB", ".1f"),
            ("rss_after_mib", "after MiB", ".1f"),
            ("requests_per_s", "req/s", ".0f"),
            ("gateway_cpu_us_per_request", "cpu us/req", ".0f"),
            ("gateway_cpu_share", "cpu share", ".2f"),
            ("failed", "failed", "d"),
        ],
    )
    path = write_results(
        "memory",
        {
            "settings": {
                "seconds": args.seconds,
                "concurrency": args.concurrency,
                "pid": os.getpid(),
            },
            "rows": rows,
        },
        args.out,
    )
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
