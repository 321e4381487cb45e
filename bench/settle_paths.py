"""Embeddings and leases one at a time, in process on Redis: latency and CPU per call, for A/B runs
of two checkouts (issue 18: their settles off the answer's path).

    python bench/settle_paths.py [--seconds 2] [--rounds 2] [--calls embed lease]
                                 [--settle deferred inline] [--trees . /path/to/other/checkout]
                                 [--gap-ms 5]

One provider simulator (its own process, zero latency) and one redis-server serve every case; a
pool of two keys of ``text-embedding-3-small`` with limits far above the load. Each case (checkout,
``SETTLE_MODE``, call) runs in a fresh process that imports the router from its checkout
(``--trees``: the first on ``sys.path``), cases interleaved round by round:

* ``embed``: ``RequestRouter.embed`` of one short text (reserve, the provider's embeddings call,
  settle with the usage record);
* ``lease``: ``RequestRouter.lease(kind="embedding")`` whose block only records its usage: the
  router's own cost of a lease (reserve, then settle), no provider call.

``--gap-ms``: each answer is followed by that pause (a caller's think time, not in the latencies;
the CPU spent meanwhile, a deferred settle's, is counted). Reports, per case, the median over
rounds of p50 and p99 latency and of the process's CPU time per call. Writes bench/results/settle-paths.json (``--out`` to change).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    ROOT,
    BenchKey,
    install_uvloop,
    median,
    percentile,
    print_table,
    redis_server,
    simulator_config,
    write_pool,
    write_results,
)

MODEL = "text-embedding-3-small"
TEXT = "Embed this sentence for the benchmark."


def run_case(spec: dict[str, Any]) -> dict[str, Any]:
    """Entry point of a spawned process: the router imported from ``spec["tree"]``."""
    sys.path.insert(0, spec["tree"])
    for name in [m for m in sys.modules if m.split(".")[0] in ("router", "keys", "kernel", "lua")]:
        del sys.modules[name]  # none expected; never the other checkout's
    install_uvloop()
    import router

    assert Path(router.__file__ or "").resolve().is_relative_to(Path(spec["tree"]).resolve())
    return asyncio.run(_run_case(spec))


async def _run_case(spec: dict[str, Any]) -> dict[str, Any]:
    from kernel.settings import Settings
    from keys.manager import KeyManager
    from router.request_router import RequestRouter

    settings = Settings.from_env(
        {},
        REDIS_URL=spec["redis_url"],
        REDIS_KEY_PREFIX=f"settle{time.monotonic_ns()}",
        SETTLE_MODE=spec["settle"],
        LOG_LEVEL="WARNING",
    )
    manager = KeyManager(key_store_path=spec["keys_path"], settings=settings, environ=spec["env"])
    client = RequestRouter(manager, settings=settings)
    await client.start()

    async def embed() -> None:
        answer = await client.embed(TEXT, model=MODEL)
        assert answer["success"], answer

    async def lease() -> None:
        async with client.lease(MODEL, tokens=8, kind="embedding") as held:
            held.record(prompt_tokens=8)

    call = embed if spec["call"] == "embed" else lease
    try:
        for _ in range(spec["warmup"]):
            await call()
        latencies: list[float] = []
        stop = time.perf_counter() + spec["seconds"]
        cpu0 = time.process_time()
        while time.perf_counter() < stop:
            started = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - started)
            if spec["gap_ms"]:  # the caller's think time: not in the latencies
                await asyncio.sleep(spec["gap_ms"] / 1000)
        cpu = time.process_time() - cpu0
    finally:
        await client.close()
    return {
        "calls": len(latencies),
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "cpu_us_per_call": cpu / max(1, len(latencies)) * 1e6,
    }


def measure(spec: dict[str, Any]) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1) as pool:
        result: dict[str, Any] = pool.apply(run_case, (spec,))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=2.0, help="per case and round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=100, help="calls before measuring")
    parser.add_argument(
        "--calls", nargs="+", default=["embed", "lease"], choices=["embed", "lease"]
    )
    parser.add_argument("--settle", nargs="+", default=["deferred"], choices=["deferred", "inline"])
    parser.add_argument("--trees", nargs="+", default=[str(ROOT)], help="checkouts to compare")
    parser.add_argument(
        "--gap-ms", type=float, default=0.0, help="the caller's pause after each answer"
    )
    parser.add_argument("--out")
    args = parser.parse_args()
    from router.simulator import SimulatorProcess

    keys = [BenchKey(f"e{i}", rpm=1_000_000, tpm=1_000_000_000, model=MODEL) for i in range(2)]
    cases = [
        {"tree": str(Path(tree).resolve()), "settle": settle, "call": call}
        for call in args.calls
        for settle in args.settle
        for tree in args.trees
    ]
    results: list[list[dict[str, Any]]] = [[] for _ in cases]
    with (
        tempfile.TemporaryDirectory(prefix="bench-settle-") as tmp,
        redis_server() as redis_url,
        SimulatorProcess(simulator_config(keys)) as sim,
    ):
        keys_path, env = write_pool(Path(tmp), keys, sim.base_url_for("openai"))
        base = {"redis_url": redis_url, "keys_path": str(keys_path), "env": env}
        base |= {"seconds": args.seconds, "warmup": args.warmup, "gap_ms": args.gap_ms}
        for index in range(args.rounds):
            for case, got in zip(cases, results, strict=True):
                print(f"round {index + 1}/{args.rounds}: {case}", file=sys.stderr, flush=True)
                got.append(measure({**base, **case}))
    rows = [
        {
            **case,
            "calls": sum(r["calls"] for r in got),
            **{k: median([r[k] for r in got]) for k in ("p50_ms", "p99_ms", "cpu_us_per_call")},
        }
        for case, got in zip(cases, results, strict=True)
    ]
    print_table(
        rows,
        [
            ("call", "call", ""),
            ("settle", "settle", ""),
            ("tree", "checkout", ""),
            ("calls", "calls", "d"),
            ("p50_ms", "p50 ms", ".3f"),
            ("p99_ms", "p99 ms", ".3f"),
            ("cpu_us_per_call", "cpu us/call", ".0f"),
        ],
    )
    settings = {"seconds": args.seconds, "rounds": args.rounds, "gap_ms": args.gap_ms}
    path = write_results("settle-paths", {"settings": settings, "rows": rows}, args.out)
    print(f"results: {path}")


if __name__ == "__main__":
    main()
