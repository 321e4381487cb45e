"""Capacity-engine benchmark: reserve+settle latency and throughput vs pool size, next to a no-op.

    python bench/reserve.py [--seconds 4] [--concurrency 32] [--processes 1 4]
                            [--sizes 10 1000 10000] [--redis-url URL]

Starts its own redis-server on a free loopback port (or uses --redis-url), builds pools of 10,
1,000 and 10,000 keys serving one model (limits far above the load: the engine's cost is measured,
not running out of room), and from 1 and 4 processes (started together behind a barrier):

* latency: one call at a time per process for ``--probe-seconds``: reserve p50/p99;
* throughput: ``--concurrency`` reserve+settle pairs in flight per process for ``--seconds``;
* the ceiling: a no-op script (``return 1`` on one key) through the same client, same server;
* server time: Redis's own ``INFO commandstats`` microseconds per call of reserve, settle and the
  no-op, each measured alone (``CONFIG RESETSTAT`` before each): the part of the cost that is the
  script itself, free of client and machine noise.

Targets (DESIGN.md): reserve latency flat within 1.5x from 10 to 10,000 keys; reserve+settle
throughput >= 50% of the no-op's. Prints a table and writes bench/results/reserve.json.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import multiprocessing
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import install_uvloop, percentile, print_table, redis_server, write_results
from kernel.settings import Settings
from kernel.store import Store, create_store
from keys.engine import CapacityEngine
from keys.models import APIKey
from lua import Script

NOOP_SOURCE = "return 1"
NOOP = Script("noop", NOOP_SOURCE, hashlib.sha1(NOOP_SOURCE.encode()).hexdigest())  # noqa: S324
MODEL = "gpt-4o"


def pool(size: int) -> list[APIKey]:
    # generous limits: the benchmark measures the engine's cost, not running out of room
    return [
        APIKey.model_validate(
            {
                "key_id": f"k{i:05d}",
                "model_name": MODEL,
                "provider": "openai",
                "rpm": 10**6,
                "tpm": 10**8,
            }
        )
        for i in range(size)
    ]


def make_store(url: str, prefix: str, concurrency: int) -> Store:
    settings = Settings.from_env(
        {}, REDIS_URL=url, REDIS_KEY_PREFIX=prefix, REDIS_MAX_CONNECTIONS=concurrency + 4
    )
    return create_store(settings)


# -- one process --------------------------------------------------------------------------------
async def _measure(
    url: str, prefix: str, mode: str, size: int, args: dict[str, Any], barrier: Any
) -> dict[str, Any]:
    store = make_store(url, prefix, args["concurrency"])
    engine = CapacityEngine(store)
    if mode != "noop":
        await engine.configure(pool(size))  # every replica loads the same keys

    async def one() -> float:
        started = time.perf_counter()
        if mode == "noop":
            await store.run(NOOP, [store.keys.pool_config], [])
            return time.perf_counter() - started
        reservation = await engine.reserve(MODEL, 100)
        took = time.perf_counter() - started
        await engine.settle(reservation, actual_tokens=60)
        return took

    for _ in range(50):  # warm: scripts loaded, connections open
        await one()
    await asyncio.get_running_loop().run_in_executor(None, barrier.wait)
    probe: list[float] = []
    stop = time.perf_counter() + args["probe_seconds"]
    while time.perf_counter() < stop:
        probe.append(await one())
    loaded: list[float] = []
    stop = time.perf_counter() + args["seconds"]

    async def worker() -> None:
        while time.perf_counter() < stop:
            loaded.append(await one())

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(args["concurrency"])))
    elapsed = time.perf_counter() - began
    await store.close()
    return {"probe": probe, "loaded": loaded, "elapsed": elapsed}


def _process(
    url: str, prefix: str, mode: str, size: int, args: dict[str, Any], barrier: Any, out: Any
) -> None:
    install_uvloop()
    out.put(asyncio.run(_measure(url, prefix, mode, size, args, barrier)))


def run_case(
    url: str, mode: str, size: int, processes: int, args: dict[str, Any]
) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    prefix = f"b{uuid.uuid4().hex[:6]}"
    barrier, out = ctx.Barrier(processes), ctx.Queue()
    workers = [
        ctx.Process(target=_process, args=(url, prefix, mode, size, args, barrier, out))
        for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    parts = [out.get(timeout=600) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
    probe = [x for part in parts for x in part["probe"]]
    loaded = [x for part in parts for x in part["loaded"]]
    elapsed = max(part["elapsed"] for part in parts)
    row: dict[str, Any] = {
        "mode": mode,
        "keys": size,
        "processes": processes,
        "concurrency": args["concurrency"],
        "ops_per_s": len(loaded) / elapsed,
        "p50_ms": percentile(loaded, 50) * 1000,
        "p99_ms": percentile(loaded, 99) * 1000,
        "alone_p50_ms": percentile(probe, 50) * 1000,
        "alone_p99_ms": percentile(probe, 99) * 1000,
        "prefix": prefix,
    }
    return row


# -- server time ----------------------------------------------------------------------------------
async def server_times(url: str, prefix: str, size: int, calls: int) -> dict[str, float]:
    """Redis's own microseconds per call of reserve, settle and the no-op, each alone."""
    import redis.asyncio as aioredis

    admin = aioredis.Redis.from_url(url, decode_responses=True)
    store = make_store(url, prefix, 4)
    engine = CapacityEngine(store)
    await engine.configure(pool(size))

    async def per_call() -> float:
        stats = await admin.info("commandstats")
        return float(stats["cmdstat_evalsha"]["usec_per_call"])

    try:
        await admin.config_resetstat()
        held = [await engine.reserve(MODEL, 100) for _ in range(calls)]
        reserve = await per_call()
        await admin.config_resetstat()
        for reservation in held:
            await engine.settle(reservation, actual_tokens=60)
        settle = await per_call()
        await admin.config_resetstat()
        for _ in range(calls):
            await store.run(NOOP, [store.keys.pool_config], [])
        noop = await per_call()
    finally:
        await store.close()
        await admin.aclose()
    return {"reserve_us": reserve, "settle_us": settle, "noop_us": noop}


async def usage_server_times(url: str, prefix: str, size: int, calls: int) -> dict[str, float]:
    """Redis's microseconds per reserve and settle without and with issue 15's work: three
    budgets checked and reserved (global, user, team), and a usage record with its rollups
    written by the settle. Alternated in one run, so the difference is the usage log's cost."""
    import redis.asyncio as aioredis

    from kernel.usage_record import UsageRecord
    from lua.usage_records import BudgetRecord, UsageArgs, budget_field

    admin = aioredis.Redis.from_url(url, decode_responses=True)
    store = make_store(url, prefix, 4)
    engine = CapacityEngine(store)
    await engine.configure(pool(size))
    fields = ["global", budget_field("user", "alice"), budget_field("team", "ml")]
    budget = BudgetRecord(10**15, "month", "UTC").encode()
    await admin.hset(store.keys.budgets, mapping=dict.fromkeys(fields, budget))
    record = UsageRecord(
        ts=time.time(),
        request_id=uuid.uuid4().hex,
        user="alice",
        team="ml",
        requested_model=MODEL,
        model=MODEL,
        provider="openai",
        key_id="k00001",
        prompt_tokens=40,
        completion_tokens=60,
        cost=0.00065,
        latency_ms=412.5,
        attempts=1,
    )
    names = {"key": "k00001", "model": MODEL, "user": "alice", "team": "ml"}

    async def per_call() -> float:
        stats = await admin.info("commandstats")
        return float(stats["cmdstat_evalsha"]["usec_per_call"])

    async def measure(with_usage: bool) -> tuple[float, float]:
        budgets = fields if with_usage else []
        await admin.config_resetstat()
        held = [
            await engine.reserve(MODEL, 100, budgets=budgets, cost_nanos=650_000)
            for _ in range(calls)
        ]
        reserve = await per_call()
        await admin.config_resetstat()
        for reservation in held:
            usage = None
            if with_usage:
                usage = UsageArgs(
                    record.to_json(), 10**6, 86400, 86400, 1000, names, 40, 60, 650_000
                )
            await engine.settle(reservation, actual_tokens=60, cost_nanos=650_000, usage=usage)
        return reserve, await per_call()

    try:
        plain, usage = [], []
        for _ in range(3):  # alternated: the machine's noise hits both alike
            plain.append(await measure(False))
            usage.append(await measure(True))
    finally:
        await store.close()
        await admin.aclose()
    return {
        "reserve_us": min(r for r, _ in plain),
        "settle_us": min(t for _, t in plain),
        "reserve_budgets_us": min(r for r, _ in usage),
        "settle_record_us": min(t for _, t in usage),
    }


def summarise(rows: list[dict[str, Any]], processes: list[int]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for count in processes:
        noop = next(r for r in rows if r["mode"] == "noop" and r["processes"] == count)
        cases = sorted(
            (r for r in rows if r["mode"] != "noop" and r["processes"] == count),
            key=lambda r: r["keys"],
        )
        smallest, largest = cases[0], cases[-1]
        summary[f"{count}_process"] = {
            "alone_p50_ratio_largest_vs_smallest_pool": largest["alone_p50_ms"]
            / smallest["alone_p50_ms"],
            "loaded_p50_ratio_largest_vs_smallest_pool": largest["p50_ms"] / smallest["p50_ms"],
            "pairs_vs_noop_calls": min(c["ops_per_s"] for c in cases) / noop["ops_per_s"],
        }
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=4.0, help="throughput phase per case")
    parser.add_argument("--probe-seconds", type=float, default=1.5, help="latency phase per case")
    parser.add_argument("--concurrency", type=int, default=32, help="in-flight calls per process")
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 1000, 10000])
    parser.add_argument("--server-calls", type=int, default=2000)
    parser.add_argument("--redis-url")
    parser.add_argument("--out")
    parser.add_argument(
        "--usage-only",
        action="store_true",
        help="only Redis's time per reserve/settle without and with budgets and a usage record",
    )
    args = parser.parse_args()
    if args.usage_only:
        with redis_server() if not args.redis_url else _given(args.redis_url) as url:
            for size in args.sizes:
                prefix = f"u{uuid.uuid4().hex[:6]}"
                times = asyncio.run(usage_server_times(url, prefix, size, args.server_calls))
                print(json.dumps({"keys": size, **times}), flush=True)
        return
    options = {
        "seconds": args.seconds,
        "probe_seconds": args.probe_seconds,
        "concurrency": args.concurrency,
    }
    rows: list[dict[str, Any]] = []
    server: dict[str, dict[str, float]] = {}
    with redis_server() if not args.redis_url else _given(args.redis_url) as url:
        for processes in args.processes:
            print(f"{processes} process(es): no-op", file=sys.stderr, flush=True)
            rows.append(run_case(url, "noop", 0, processes, options))
            for size in args.sizes:
                print(f"{processes} process(es): {size} keys", file=sys.stderr, flush=True)
                rows.append(run_case(url, "reserve+settle", size, processes, options))
        for size in args.sizes:
            prefix = f"s{uuid.uuid4().hex[:6]}"
            server[str(size)] = asyncio.run(server_times(url, prefix, size, args.server_calls))
    for row in rows:
        times = server.get(str(row["keys"]))
        if row["mode"] == "noop":
            row["server_us_per_call"] = min(t["noop_us"] for t in server.values())
        elif times:
            row["server_us_per_call"] = (times["reserve_us"] + times["settle_us"]) / 2
    print_table(
        rows,
        [
            ("mode", "mode", ""),
            ("keys", "keys", "d"),
            ("processes", "procs", "d"),
            ("ops_per_s", "ops/s", ".0f"),
            ("p50_ms", "p50 ms", ".3f"),
            ("p99_ms", "p99 ms", ".3f"),
            ("alone_p50_ms", "alone p50", ".3f"),
            ("alone_p99_ms", "alone p99", ".3f"),
            ("server_us_per_call", "server us/call", ".1f"),
        ],
    )
    summary = summarise(rows, args.processes)
    summary["server_us"] = server
    print(json.dumps(summary, indent=2))
    path = write_results(
        "reserve",
        {"settings": {**options, "sizes": args.sizes}, "rows": rows, "summary": summary},
        args.out,
    )
    print(f"wrote {path}", file=sys.stderr)


class _given:
    """A Redis URL the caller runs (context manager, like redis_server)."""

    def __init__(self, url: str) -> None:
        self.url = url

    def __enter__(self) -> str:
        return self.url

    def __exit__(self, *exc: object) -> None:
        return None


if __name__ == "__main__":
    main()
