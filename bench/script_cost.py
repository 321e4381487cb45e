"""Redis's own time per pool script call, this checkout's scripts against another checkout's.

    python bench/script_cost.py --against /work/main [--calls 1000] [--rounds 4] [--keys 10]

One redis-server, one pool (limits far above the load). Per round, each variant in turn (the
order alternates between rounds, so the machine's noise hits both alike) runs ``--calls``
reservations and then settles them, plain and with three budgets and a usage record (as a routed
call under budgets writes it), and reads ``INFO commandstats`` (``CONFIG RESETSTAT`` before each
batch): microseconds per EVALSHA inside Redis. Both variants run through this checkout's Python
bindings; only the Lua source differs (the scripts' KEYS and ARGV must be the same). Prints the
best and the median per variant and script.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import importlib.util
import json
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import lua.release
import lua.reserve
import lua.settle
from bench.common import redis_server
from bench.reserve import MODEL, _given, make_store, pool
from keys.engine import CapacityEngine
from lua import Script

SCRIPTS = {"reserve": lua.reserve, "settle": lua.settle, "release": lua.release}


def _expander(root: Path) -> Callable[[str, Callable[[str], str]], str]:
    """The checkout's own ``-- include:`` expansion (lua/includes.py), or, for a checkout from
    before it, the plain one: every included text in full."""
    path = root / "lua" / "includes.py"
    if path.exists():
        spec = importlib.util.spec_from_file_location(f"includes_{uuid.uuid4().hex}", path)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module.expand  # type: ignore[no-any-return]

    def plain(source: str, read: Callable[[str], str]) -> str:
        names = []
        for line in source.splitlines():
            if not line.startswith("-- include: "):
                break
            names.append(line.removeprefix("-- include: ").strip())
        return "\n".join([*(read(n) for n in names), source])

    return plain


def read_scripts(root: Path) -> dict[str, Script]:
    """The pool's scripts of a checkout, expanded as that checkout's loader expands them."""

    def text(name: str) -> str:
        return (root / "lua" / f"{name}.lua").read_text(encoding="utf-8")

    expand = _expander(root)
    out = {}
    for name in SCRIPTS:
        source = expand(text(name), text)
        out[name] = Script(name, source, hashlib.sha1(source.encode()).hexdigest())  # noqa: S324
    return out


def use(scripts: dict[str, Script]) -> None:
    for name, module in SCRIPTS.items():
        module.SCRIPT = scripts[name]  # type: ignore[attr-defined]


async def measure(url: str, calls: int, with_usage: bool) -> dict[str, float]:
    import redis.asyncio as aioredis

    from kernel.usage_record import UsageRecord
    from lua.usage_records import BudgetRecord, UsageArgs, budget_field

    admin = aioredis.Redis.from_url(url, decode_responses=True)
    store = make_store(url, f"c{uuid.uuid4().hex[:6]}", 4)
    engine = CapacityEngine(store)
    await engine.configure(pool(10))
    fields = [budget_field("user", "alice"), budget_field("team", "ml"), "global"]
    await admin.hset(
        store.keys.budgets,
        mapping=dict.fromkeys(fields, BudgetRecord(10**15, "month", "UTC").encode()),
    )
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
    ).to_json()
    names = {"key": "k00001", "model": MODEL, "user": "alice", "team": "ml"}

    async def per_call() -> float:
        stats = await admin.info("commandstats")
        return float(stats["cmdstat_evalsha"]["usec_per_call"])

    try:
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
                usage = UsageArgs(record, 10**6, 86400, 86400, 1000, names, 40, 60, 650_000)
            await engine.settle(reservation, actual_tokens=60, cost_nanos=650_000, usage=usage)
        settle = await per_call()
        held = [await engine.reserve(MODEL, 100) for _ in range(calls)]
        await admin.config_resetstat()
        for reservation in held:
            await engine.release(reservation)
        release = await per_call()
    finally:
        await store.close()
        await admin.aclose()
    suffix = "+usage" if with_usage else ""
    return {f"reserve{suffix}": reserve, f"settle{suffix}": settle, f"release{suffix}": release}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--against", required=True, help="the other checkout's root")
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--redis-url", help="a Redis to use (default: start one)")
    args = parser.parse_args()
    variants = {
        "this": read_scripts(Path(__file__).resolve().parent.parent),
        "other": read_scripts(Path(args.against)),
    }
    samples: dict[str, dict[str, list[float]]] = {v: {} for v in variants}
    with redis_server() if not args.redis_url else _given(args.redis_url) as url:
        for r in range(args.rounds):
            order = list(variants) if r % 2 == 0 else list(reversed(variants))
            for name in order:
                use(variants[name])
                for with_usage in (False, True):
                    for script, us in asyncio.run(measure(url, args.calls, with_usage)).items():
                        samples[name].setdefault(script, []).append(us)
    out: dict[str, Any] = {}
    for name, per_script in samples.items():
        out[name] = {
            s: {"best": min(v), "median": statistics.median(v)} for s, v in per_script.items()
        }
    print(json.dumps(out, indent=2))
    for script in samples["this"]:
        this, other = out["this"][script]["best"], out["other"][script]["best"]
        print(f"{script:16s} other {other:7.1f}  this {this:7.1f} us  ({this / other - 1:+.0%})")


if __name__ == "__main__":
    main()
