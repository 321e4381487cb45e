"""A key pool sharded across Redis Cluster (POOL_SHARDS, issue 18) against one Redis.

    python bench/cluster.py [--seconds 4] [--processes 4] [--concurrency 32] [--keys 300]
                            [--shards 3]

Starts a throw-away redis-server and a throw-away three-master Redis Cluster (no replicas, slots
split evenly by ``redis-cli --cluster create``) on free loopback ports, and runs the same many-key
load against each: ``--processes`` processes (started together behind a barrier), each with
``--concurrency`` reserve+settle pairs in flight for ``--seconds``, on a pool of ``--keys`` keys
(each its own quota group, limits far above the load: the store's cost is measured, not running
out of room). Three cases:

* ``redis``: one Redis, POOL_SHARDS=1 (today's pool);
* ``cluster-1``: the cluster with POOL_SHARDS=1: the whole pool on one master;
* ``cluster-N``: the cluster with POOL_SHARDS=``--shards``.

Per case and master: the share of the pool's script calls (``INFO commandstats``: evalsha, eval)
and the master's CPU (``INFO cpu``: used_cpu_user + used_cpu_sys) over the loaded phase. From them:
Redis CPU per call (all masters' CPU / calls; a call is one reserve and one settle) and the
planning table: masters (and shards) needed for 1k, 10k and 100k calls/s with each master's main
thread kept at ``--utilisation`` of a core. Target (issue 18): no master runs more than 40% of the
script calls with POOL_SHARDS=3 on 3 masters. Prints tables and writes bench/results/cluster.json.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import multiprocessing
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import install_uvloop, print_table, redis_server, write_results
from bench.reserve import MODEL, pool
from kernel.settings import Settings
from kernel.store import create_store
from keys.shards import create_engine

LOADS = (1_000, 10_000, 100_000)


# -- one process --------------------------------------------------------------------------------
async def _load(spec: dict[str, Any], barrier: Any) -> dict[str, Any]:
    settings = Settings.from_env(
        {},
        REDIS_URL=spec["url"],
        REDIS_CLUSTER=spec["cluster"],
        REDIS_KEY_PREFIX=spec["prefix"],
        POOL_SHARDS=spec["shards"],
        REDIS_MAX_CONNECTIONS=spec["concurrency"] + 8,
    )
    store = create_store(settings)
    engine = create_engine(store, spec["shards"])
    await engine.configure(pool(spec["keys"]))  # every replica loads the same keys
    shards_used: dict[int, int] = {}

    async def one() -> None:
        reservation = await engine.reserve(MODEL, 100)
        shards_used[reservation.shard] = shards_used.get(reservation.shard, 0) + 1
        await engine.settle(reservation, actual_tokens=60)

    for _ in range(100):  # warm: scripts loaded, connections open
        await one()
    shards_used.clear()
    await asyncio.get_running_loop().run_in_executor(None, barrier.wait)
    stop = time.perf_counter() + spec["seconds"]
    done = 0

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < stop:
            await one()
            done += 1

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(spec["concurrency"])))
    elapsed = time.perf_counter() - began
    await store.close()
    return {"calls": done, "elapsed": elapsed, "shards_used": shards_used}


def _process(spec: dict[str, Any], barrier: Any, out: Any) -> None:
    install_uvloop()
    out.put(asyncio.run(_load(spec, barrier)))


# -- the masters' own counters ------------------------------------------------------------------
async def master_stats(urls: list[str], reset: bool = False) -> list[dict[str, float]]:
    """Per master: script calls and their microseconds (commandstats), CPU seconds (cpu)."""
    import redis.asyncio as aioredis

    out = []
    for url in urls:
        client = aioredis.Redis.from_url(url, decode_responses=True)
        try:
            if reset:
                await client.config_resetstat()
            commands = await client.info("commandstats")
            cpu = await client.info("cpu")
        finally:
            await client.aclose()
        scripts = [commands.get(f"cmdstat_{name}", {}) for name in ("evalsha", "eval")]
        out.append(
            {
                "script_calls": float(sum(s.get("calls", 0) for s in scripts)),
                "script_usec": float(sum(s.get("usec", 0) for s in scripts)),
                "cpu_s": float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"]),
            }
        )
    return out


def run_case(
    name: str, urls: list[str], cluster: bool, shards: int, args: argparse.Namespace
) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    spec = {
        "url": urls[0],
        "cluster": cluster,
        "shards": shards,
        "prefix": f"c{uuid.uuid4().hex[:6]}",
        "keys": args.keys,
        "concurrency": args.concurrency,
        "seconds": args.seconds,
    }
    barrier, out = ctx.Barrier(args.processes + 1), ctx.Queue()
    workers = [
        ctx.Process(target=_process, args=(spec, barrier, out)) for _ in range(args.processes)
    ]
    for worker in workers:
        worker.start()
    barrier.wait(timeout=300)
    before = asyncio.run(master_stats(urls, reset=True))
    time.sleep(args.seconds)
    after = asyncio.run(master_stats(urls))
    parts = [out.get(timeout=600) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
    calls = sum(p["calls"] for p in parts)
    elapsed = max(p["elapsed"] for p in parts)
    return summarise(name, shards, calls, elapsed, before, after, parts)


def summarise(
    name: str,
    shards: int,
    calls: int,
    elapsed: float,
    before: list[dict[str, float]],
    after: list[dict[str, float]],
    parts: list[dict[str, Any]],
) -> dict[str, Any]:
    scripts = [a["script_calls"] for a in after]  # reset at the start of the loaded phase
    cpu = [max(0.0, a["cpu_s"] - b["cpu_s"]) for a, b in zip(after, before, strict=True)]
    total_scripts = sum(scripts) or 1.0
    used: dict[str, int] = {}
    for part in parts:
        for shard, count in part["shards_used"].items():
            used[str(shard)] = used.get(str(shard), 0) + count
    return {
        "case": name,
        "masters": len(after),
        "shards": shards,
        "calls_per_s": calls / elapsed,
        "script_share_per_master": [s / total_scripts for s in scripts],
        "max_master_share": max(scripts) / total_scripts,
        "cpu_share_per_master": [c / elapsed for c in cpu],
        "redis_cpu_us_per_call": sum(cpu) / max(1, calls) * 1e6,
        "script_us_per_call": sum(a["script_usec"] for a in after) / max(1, calls),
        "calls_per_shard": used,
    }


# -- planning -----------------------------------------------------------------------------------
def plan(cpu_us_per_call: float, utilisation: float) -> list[dict[str, Any]]:
    """Masters needed per load: each master's main thread (one core) kept at ``utilisation``;
    POOL_SHARDS = masters (a multiple of them: shard tags fill equal slot ranges)."""
    per_master = utilisation * 1e6 / cpu_us_per_call
    rows = []
    for load in LOADS:
        masters = max(1, math.ceil(load / per_master))
        rows.append(
            {
                "calls_per_s": load,
                "calls_per_s_per_master": per_master,
                "masters": masters,
                "pool_shards": masters if masters > 1 else 1,
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=4.0, help="loaded phase per case")
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=32, help="pairs in flight per process")
    parser.add_argument("--keys", type=int, default=300, help="keys in the pool (one group each)")
    parser.add_argument("--shards", type=int, default=3, help="POOL_SHARDS of the sharded case")
    parser.add_argument("--utilisation", type=float, default=0.7, help="of a core, per master")
    parser.add_argument("--out")
    args = parser.parse_args()
    from tests.servers import redis_cluster  # the test suite's cluster: same setup as its tests

    rows: list[dict[str, Any]] = []
    with redis_server() as url:
        print("one Redis, POOL_SHARDS=1", file=sys.stderr, flush=True)
        rows.append(run_case("redis", [url], False, 1, args))
    with redis_cluster(3) as cluster:
        urls = [node.url for node in cluster.nodes]
        print("cluster, POOL_SHARDS=1", file=sys.stderr, flush=True)
        rows.append(run_case("cluster-1", urls, True, 1, args))
        print(f"cluster, POOL_SHARDS={args.shards}", file=sys.stderr, flush=True)
        rows.append(run_case(f"cluster-{args.shards}", urls, True, args.shards, args))
    for row in rows:
        row["shares"] = " ".join(f"{s:.0%}" for s in row["script_share_per_master"])
        row["cpu"] = " ".join(f"{c:.0%}" for c in row["cpu_share_per_master"])
    print_table(
        rows,
        [
            ("case", "case", ""),
            ("calls_per_s", "calls/s", ",.0f"),
            ("shares", "script calls per master", ""),
            ("max_master_share", "max master", ".0%"),
            ("cpu", "CPU per master", ""),
            ("redis_cpu_us_per_call", "Redis CPU us/call", ".1f"),
            ("script_us_per_call", "script us/call", ".1f"),
        ],
    )
    tables = {
        row["case"]: plan(row["redis_cpu_us_per_call"], args.utilisation)
        for row in (rows[0], rows[-1])
    }
    for case, table in tables.items():
        print(f"\nplanned from {case}'s Redis CPU per call")
        print_table(
            table,
            [
                ("calls_per_s", "calls/s", ",d"),
                ("calls_per_s_per_master", "per master", ",.0f"),
                ("masters", "masters", "d"),
                ("pool_shards", "POOL_SHARDS", "d"),
            ],
        )
    sharded = rows[-1]
    path = write_results(
        "cluster",
        {
            "rows": rows,
            "plan": tables,
            "utilisation": args.utilisation,
            "target_max_master_share_met": sharded["max_master_share"] <= 0.40,
        },
        args.out,
    )
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
