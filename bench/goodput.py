"""Goodput: a pool with known limits under twice its capacity for minutes, from 1 and 4 processes.

    python bench/goodput.py [--seconds 180] [--processes 1 4] [--limits gcra strict]
                            [--systems router litellm] [--keys 4] [--rpm 60]
                            [--configured-rpm N | --learned] [--shards 1 3] [--out PATH]

The provider simulator (its own process) enforces per-key limits exactly as configured: token
buckets of ``--rpm`` requests per minute, refilled continuously (``gcra``, how OpenAI and Anthropic
limit), or additionally a sliding 60-second window that may never hold more than ``--rpm``
(``strict``). The same limits are configured on the router side, and every run offers twice the
pool's capacity at a steady rate, open loop (a request is sent on schedule whether or not the
previous ones finished), split evenly over ``--processes`` processes that share one real
redis-server (started by the script):

* ``router``: this project's ``RequestRouter`` (capacity-aware strategy, default settings; a
  request that finds no room waits up to ``RESERVE_WAIT_SECONDS`` = 2 s, then is refused locally);
* ``litellm``: LiteLLM's ``Router`` with ``routing_strategy="usage-based-routing-v2"`` and the
  same Redis, the rpm of every deployment set to the key's limit (LiteLLM's documented way to
  respect provider limits across instances).

Rated capacity of a run of ``T`` seconds is the most the provider's limits can ever admit in it
(docs/BENCHMARKS.md explains the choice):

* ``gcra``: each bucket starts full (``rpm``) and refills ``rpm`` per minute: ``keys x rpm x
  (1 + T/60)``;
* ``strict``: no 60-second window above ``rpm``: ``keys x rpm x T/60`` (``T`` a multiple of 60).

Reported per run: successes completed within ``[0, T]`` as a share of the rated capacity, the
steady-state share (successes in ``[60, T]`` against ``rpm/60`` per second: no initial burst),
429s the simulator answered (the goal is zero), requests refused locally, and the largest number
of requests any key admitted in a 60-second window (the simulator's exact sweep) next to its
limit. Prints a table, writes bench/results/goodput.json.

Target (DESIGN.md): goodput >= 99% of rated capacity with zero 429s, also from 4 processes.

``--configured-rpm N`` configures the router and LiteLLM with ``N`` requests per minute per key
while the simulator still enforces ``--rpm``: a key configured above what its provider really
allows, or half used by another application. Only the provider's own answers (its rate-limit
headers, its 429s) can tell a router so; capacity and the load stay based on ``--rpm``.

``--learned`` tells the router (and LiteLLM) no limits at all (keys.json holds ids, providers and
models only; "told" is 0): the router learns each key's limits from its first answer (issue 19).
LiteLLM has no such thing: told nothing, it does not limit (run ``--systems router``).

``--shards 1 3`` runs the router with each POOL_SHARDS (the pool split into shards, each key in
one by its quota group: issue 18), on the same one Redis: goodput and 429s against the
single-shard pool (LiteLLM runs once).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import multiprocessing
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    BenchKey,
    install_uvloop,
    print_table,
    redis_server,
    simulator_config,
    write_pool,
    write_results,
)

MODEL = "gpt-4o-mini"
MAX_TOKENS = 16
STEADY_FROM = 60.0


# -- one load process ---------------------------------------------------------------------------------
def drive(spec: dict[str, Any]) -> dict[str, Any]:
    """Entry point of a spawned process: offer ``rate`` requests/s from ``start_at`` for ``seconds``."""
    install_uvloop()
    return asyncio.run(_drive(spec))


async def _drive(spec: dict[str, Any]) -> dict[str, Any]:
    call, close = await (_router(spec) if spec["system"] == "router" else _litellm(spec))
    outcomes: Counter[str] = Counter()
    done_at: list[float] = []
    start_at, seconds, rate = spec["start_at"], spec["seconds"], spec["rate"]

    async def one(i: int) -> None:
        outcome = await call(f"goodput request {i} from {spec['index']}")
        outcomes[outcome] += 1
        if outcome == "success":
            done_at.append(time.time() - start_at)

    await asyncio.sleep(max(0.0, start_at - time.time()))
    tasks = []
    i = 0
    while True:
        due = start_at + i / rate
        if due - start_at >= seconds:
            break
        await asyncio.sleep(max(0.0, due - time.time()))
        tasks.append(asyncio.create_task(one(i)))
        i += 1
    await asyncio.gather(*tasks)
    await close()
    return {"offered": i, "outcomes": dict(outcomes), "done_at": done_at}


async def _router(spec: dict[str, Any]) -> tuple[Any, Any]:
    from kernel.settings import Settings
    from keys.manager import KeyManager
    from router.request_router import RequestRouter

    settings = Settings.from_env(
        {},
        REDIS_URL=spec["redis_url"],
        REDIS_KEY_PREFIX=spec["prefix"],
        LOG_LEVEL="WARNING",
        POOL_SHARDS=spec.get("shards", 1),
    )
    manager = KeyManager(key_store_path=spec["keys_path"], settings=settings, environ=spec["env"])
    router = RequestRouter(manager, settings=settings)
    await router.start()

    async def call(prompt: str) -> str:
        answer = await router.send_one_shot(prompt, MODEL, max_tokens=MAX_TOKENS)
        return "success" if answer["success"] else f"local:{answer['error_type']}"

    return call, router.close


async def _litellm(spec: dict[str, Any]) -> tuple[Any, Any]:
    import logging

    import litellm
    from litellm.router import Router

    litellm.suppress_debug_info = True
    for name in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy", "httpx"):
        logging.getLogger(name).setLevel(logging.ERROR)
    host, port = spec["redis_url"].removeprefix("redis://").split("/")[0].split(":")
    model_list = [
        {
            "model_name": MODEL,
            "litellm_params": {
                "model": f"openai/{MODEL}",
                "api_base": spec["sim_url"] + "/v1",
                "api_key": key["secret"],
                "rpm": key["rpm"],
            },
        }
        for key in spec["keys"]
    ]
    router = Router(
        model_list=model_list,
        routing_strategy="usage-based-routing-v2",
        redis_host=host,
        redis_port=int(port),
    )

    async def call(prompt: str) -> str:
        try:
            await router.acompletion(
                model=MODEL, messages=[{"role": "user", "content": prompt}], max_tokens=MAX_TOKENS
            )
        except Exception as exc:
            return "local:" + type(exc).__name__
        return "success"

    async def close() -> None:
        return None

    return call, close


# -- one run -------------------------------------------------------------------------------------------
def run(
    system: str, limits: str, processes: int, args: argparse.Namespace, shards: int = 1
) -> dict[str, Any]:
    from router.simulator import SimulatorProcess

    strict = limits == "strict"
    keys = [
        BenchKey(f"g{i}", rpm=args.rpm, tpm=10_000_000, strict=strict) for i in range(args.keys)
    ]
    configured_rpm = 0 if args.learned else (args.configured_rpm or args.rpm)
    # what the router and LiteLLM are told (the simulator enforces ``keys``); with --learned
    # nothing: the router learns each key's limits from the provider's answers (issue 19)
    told = [
        dataclasses.replace(k, rpm=None, tpm=None)
        if args.learned
        else dataclasses.replace(k, rpm=configured_rpm)
        for k in keys
    ]
    capacity_rate = args.keys * args.rpm / 60.0
    seconds = float(args.seconds)
    with (
        tempfile.TemporaryDirectory(prefix="bench-goodput-") as tmp,
        redis_server() as redis_url,
        SimulatorProcess(simulator_config(keys, completion_tokens=8)) as sim,
    ):
        keys_path, env = write_pool(Path(tmp), told, sim.base_url_for("openai"))
        start_at = time.time() + 8.0  # every process loaded and connected by then
        base = {
            "system": system,
            "redis_url": redis_url,
            "prefix": "goodput",
            "keys_path": str(keys_path),
            "env": env,
            "sim_url": sim.base_url,
            "keys": [{"secret": k.secret, "rpm": k.rpm} for k in told],
            "start_at": start_at,
            "seconds": seconds,
            "rate": 2 * capacity_rate / processes,
            "shards": shards,
        }
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(processes) as pool:
            parts = pool.map(drive, [{**base, "index": i} for i in range(processes)])
        stats = sim.stats()
    outcomes: Counter[str] = Counter()
    for part in parts:
        outcomes.update(part["outcomes"])
    done = sorted(t for part in parts for t in part["done_at"])
    in_run = sum(1 for t in done if 0.0 <= t <= seconds)
    steady = sum(1 for t in done if STEADY_FROM <= t <= seconds)
    burst = 0 if strict else args.keys * args.rpm
    capacity = capacity_rate * seconds + burst
    per_key = {k.key_id: stats["keys"].get(k.key_id, {}).get(MODEL, {}) for k in keys}
    windows = [s.get("max_window_requests", 0) for s in per_key.values()]
    return {
        "system": system,
        "limits": limits,
        "processes": processes,
        "shards": shards,
        "seconds": seconds,
        "keys": args.keys,
        "rpm_per_key": args.rpm,
        "configured_rpm_per_key": configured_rpm,
        "offered": sum(part["offered"] for part in parts),
        "rated_capacity": capacity,
        "successes_in_run": in_run,
        "successes_total": len(done),
        "goodput_share": in_run / capacity,
        "steady_share": steady / (capacity_rate * (seconds - STEADY_FROM))
        if seconds > STEADY_FROM
        else None,
        "provider_429s": int(stats["totals"].get("rate_limited", 0)),
        "local_refusals": sum(n for name, n in outcomes.items() if name.startswith("local:")),
        "outcomes": dict(outcomes),
        "max_60s_requests_per_key": max(windows) if windows else 0,
        "max_60s_by_key": dict(zip(per_key, windows, strict=True)),
        "admitted_by_simulator": int(stats["totals"].get("admitted_requests", 0)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 4])
    parser.add_argument(
        "--limits", nargs="+", default=["gcra", "strict"], choices=["gcra", "strict"]
    )
    parser.add_argument(
        "--systems", nargs="+", default=["router", "litellm"], choices=["router", "litellm"]
    )
    parser.add_argument("--keys", type=int, default=4)
    parser.add_argument("--rpm", type=int, default=60, help="limit of every key")
    parser.add_argument(
        "--configured-rpm",
        type=int,
        help="what the router and LiteLLM are told each key allows (default: --rpm)",
    )
    parser.add_argument(
        "--shards", type=int, nargs="+", default=[1], help="POOL_SHARDS of the router's runs"
    )
    parser.add_argument(
        "--learned",
        action="store_true",
        help="tell the router no limits at all: it learns them from the provider's answers",
    )
    parser.add_argument("--out")
    args = parser.parse_args()
    rows = []
    for limits in args.limits:
        for system in args.systems:
            for shards in args.shards if system == "router" else [1]:
                for processes in args.processes:
                    print(
                        f"{system}, {limits} limits, {processes} process(es), "
                        f"{shards} shard(s), {args.seconds:.0f} s",
                        file=sys.stderr,
                        flush=True,
                    )
                    rows.append(run(system, limits, processes, args, shards))
    print_table(
        rows,
        [
            ("system", "system", ""),
            ("limits", "limits", ""),
            ("processes", "procs", "d"),
            ("shards", "shards", "d"),
            ("offered", "offered", "d"),
            ("rated_capacity", "capacity", ".0f"),
            ("successes_in_run", "served", "d"),
            ("goodput_share", "share", ".3f"),
            ("steady_share", "steady", ".3f"),
            ("provider_429s", "429s", "d"),
            ("local_refusals", "refused", "d"),
            ("max_60s_requests_per_key", "max 60s/key", "d"),
            ("rpm_per_key", "limit", "d"),
            ("configured_rpm_per_key", "told", "d"),
        ],
    )
    path = write_results(
        "goodput",
        {
            "settings": {
                "seconds": args.seconds,
                "keys": args.keys,
                "rpm": args.rpm,
                "configured_rpm": 0 if args.learned else (args.configured_rpm or args.rpm),
                "offered_load": "2x rated capacity, open loop",
                "model": MODEL,
            },
            "rows": rows,
        },
        args.out,
    )
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
