"""Instructions Redis executes per pool script call (valgrind callgrind): exact, unlike timings.

    python bench/script_instructions.py --against /work/main [--calls 200] [--tpm 100000000]

For each variant (this checkout's scripts, the other checkout's: only the Lua differs, the Python
bindings are this checkout's) a redis-server runs under ``valgrind --tool=callgrind``; after a
warm-up the counters are zeroed, ``--calls`` reservations run, then their settles, then as many
releases (``callgrind_control`` dumps between the phases), plain and with three budgets and a
usage record. Prints instructions per call: on a shared machine the noise of ``INFO
commandstats`` (bench/script_cost.py) hides differences of a few percent; this does not.
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import free_port
from bench.reserve import MODEL, make_store, pool
from bench.script_cost import read_scripts, use
from keys.engine import CapacityEngine
from lua import Script


def _ctl(pid: int, flag: str) -> None:
    subprocess.run(["callgrind_control", flag, str(pid)], check=True, capture_output=True)


async def _phases(url: str, pid: int, calls: int, usage: bool, tpm: int) -> None:
    import redis.asyncio as aioredis

    from lua.usage_records import BudgetRecord, UsageArgs, budget_field

    store = make_store(url, "cg", 4)
    engine = CapacityEngine(store)
    await engine.configure([k.model_copy(update={"tpm": tpm}) for k in pool(10)])
    fields = [budget_field("user", "alice"), budget_field("team", "ml"), "global"]
    admin = aioredis.Redis.from_url(url)
    record = BudgetRecord(10**15, "month", "UTC").encode()
    await admin.hset(store.keys.budgets, mapping=dict.fromkeys(fields, record))
    await admin.aclose()
    names = {"key": "k00001", "model": MODEL, "user": "alice", "team": "ml"}
    budgets = fields if usage else []
    for _ in range(3):  # warm: scripts loaded, records exist
        held = await engine.reserve(MODEL, 100, budgets=budgets, cost_nanos=650_000)
        await engine.settle(held, actual_tokens=60)
    _ctl(pid, "-z")
    reserved = [
        await engine.reserve(MODEL, 100, budgets=budgets, cost_nanos=650_000) for _ in range(calls)
    ]
    _ctl(pid, "-d")
    for held in reserved:
        args = UsageArgs('{"x":1}', 10**6, 86400, 86400, 1000, names, 40, 60, 650_000)
        await engine.settle(
            held, actual_tokens=60, cost_nanos=650_000, usage=args if usage else None
        )
    _ctl(pid, "-d")
    reserved = [await engine.reserve(MODEL, 100) for _ in range(calls)]
    _ctl(pid, "-z")
    for held in reserved:
        await engine.release(held)
    _ctl(pid, "-d")
    await store.close()


def run_variant(scripts: dict[str, Script], calls: int, usage: bool, tpm: int) -> list[float]:
    """Instructions per reserve, settle and release call with these scripts."""
    import redis

    port = free_port()
    with tempfile.TemporaryDirectory() as out:
        server = subprocess.Popen(
            [
                *("valgrind", "--tool=callgrind", f"--callgrind-out-file={out}/cg.out"),
                *("redis-server", "--port", str(port), "--save", "", "--appendonly", "no"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        admin = redis.Redis(port=port)
        for _ in range(300):
            try:
                admin.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.1)
        use(scripts)
        asyncio.run(_phases(f"redis://127.0.0.1:{port}", server.pid, calls, usage, tpm))
        admin.shutdown(nosave=True)
        server.wait()
        parts = sorted(glob.glob(f"{out}/cg.out.*"), key=lambda f: int(f.rsplit(".", 1)[1]))
        totals = []
        for part in parts[:3]:
            text = Path(part).read_text()
            line = next(x for x in text.splitlines() if x.startswith(("summary:", "totals:")))
            totals.append(int(line.split()[1]) / calls)
        return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--against", required=True, help="the other checkout's root")
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--tpm", type=int, default=10**8, help="each key's TPM limit")
    args = parser.parse_args()
    variants = {
        "other": read_scripts(Path(args.against)),
        "this": read_scripts(Path(__file__).resolve().parent.parent),
    }
    for usage in (False, True):
        for name, scripts in variants.items():
            reserve, settle, release = run_variant(scripts, args.calls, usage, args.tpm)
            print(
                f"{'budgets+usage' if usage else 'plain':13s} {name:5s} reserve {reserve:9,.0f}"
                f"  settle {settle:9,.0f}  release {release:9,.0f} instructions/call",
                flush=True,
            )


if __name__ == "__main__":
    main()
