"""Where a request's CPU goes: sample the router (or the gateway) under load and sum by component.

    python bench/profile.py [--target router|gateway] [--store redis|embedded] [--seconds 10]
                            [--concurrency 16] [--tool py-spy|pyinstrument]

Starts the provider simulator (zero latency, its own process), a redis-server when ``--store
redis``, and either a process driving ``RequestRouter.complete`` in a loop (``router``) or a
gateway process plus a load generator (``gateway``). With ``py-spy`` (default) the measured process
is sampled from outside (no overhead in it) and every sample is filed under the component its
innermost frame belongs to (aiohttp, redis-py, fakeredis, the event loop, this project's modules
...), next to the hottest functions of this project; with ``pyinstrument`` the router process
profiles itself and its call tree is reported. Text goes to stdout and to
bench/results/profile-<target>-<store>[-pyinstrument].txt. This is how the optimisations listed in
docs/BENCHMARKS.md were found.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import multiprocessing
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    RESULTS,
    BenchKey,
    install_uvloop,
    redis_server,
    simulator_config,
    write_pool,
)

MODEL = "gpt-4o-mini"
MESSAGES = [{"role": "user", "content": "Say hello to the benchmark."}]
COMPONENTS = (
    ("asyncio/runners.py", "event loop (uvloop, C code)"),
    ("asyncio/streams.py", "socket writes (asyncio streams over uvloop)"),
    ("redis/", "redis-py"),
    ("fakeredis/", "fakeredis (embedded store)"),
    ("kernel/embedded/", "embedded store (kernel/embedded, Lua included)"),
    ("aiohttp/", "aiohttp"),
    ("yarl/", "aiohttp"),
    ("multidict/", "aiohttp"),
    ("tiktoken", "tiktoken"),
    ("json/", "json"),
    ("prometheus_client/", "prometheus-client"),
    ("structlog", "structlog"),
    ("router/providers/", "router: provider adapters"),
    ("router/gateway/", "router: gateway"),
    ("router/", "router: request path"),
    ("keys/", "keys: manager and engine"),
    ("manager.py", "keys: manager and engine"),
    ("engine.py", "keys: manager and engine"),
    ("asyncio/", "asyncio (stdlib)"),
)


# -- the process under load ---------------------------------------------------------------------
def drive_router(spec: dict[str, Any], ready: Any) -> None:
    """A spawned process: RequestRouter.complete in a loop with ``concurrency`` callers."""
    install_uvloop()
    asyncio.run(_drive_router(spec, ready))


async def _drive_router(spec: dict[str, Any], ready: Any) -> None:
    from kernel.settings import Settings
    from keys.manager import KeyManager
    from router.request_router import RequestRouter

    overrides = {"REDIS_KEY_PREFIX": f"prof{os.getpid()}", "LOG_LEVEL": "WARNING"}
    if spec["redis_url"]:
        overrides["REDIS_URL"] = spec["redis_url"]
    settings = Settings.from_env({}, **overrides)
    manager = KeyManager(key_store_path=spec["keys_path"], settings=settings, environ=spec["env"])
    async with RequestRouter(manager, settings=settings) as router:
        for _ in range(200):
            await router.complete(list(MESSAGES), MODEL, max_tokens=16)
        profiler = None
        if spec["tool"] == "pyinstrument":
            from pyinstrument import Profiler

            profiler = Profiler(async_mode="disabled")
            profiler.start()
        ready.set()
        stop = time.perf_counter() + spec["seconds"]
        done = 0

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < stop:
                await router.complete(list(MESSAGES), MODEL, max_tokens=16)
                done += 1

        cpu0 = time.process_time()
        await asyncio.gather(*(worker() for _ in range(spec["concurrency"])))
        cpu = time.process_time() - cpu0
        if profiler is not None:
            profiler.stop()
            tree = profiler.output_text(unicode=False, color=False)
            await asyncio.to_thread(Path(spec["tree_path"]).write_text, tree)
        print(json.dumps({"requests": done, "cpu_us_per_request": cpu / max(1, done) * 1e6}))


# -- py-spy samples -------------------------------------------------------------------------------
def component(frame: str) -> str | None:
    where = frame[frame.rfind("(") + 1 :]
    for marker, name in COMPONENTS:
        if where.startswith(marker) or f"/{marker}" in where:
            return name
    return None


def summarise(raw: str, top: int = 25) -> str:
    by_component: collections.Counter[str] = collections.Counter()
    ours: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        total += samples
        frames = stack.split(";")
        name = next(
            (c for c in map(component, reversed(frames)) if c),
            "other (C extensions, dataclass code)",
        )
        by_component[name] += samples
        for frame in {re.sub(r":\d+\)$", ")", f) for f in frames}:
            inclusive[frame] += samples
        for frame in reversed(frames):
            if re.search(r"\((router|keys|lua)/|\((manager|engine)\.py", frame):
                ours[re.sub(r":\d+\)$", ")", frame)] += samples
                break
    lines = [f"{total} samples", "", "share of samples by component (innermost frame):"]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in by_component.most_common()]
    lines += ["", f"this project's {top} hottest functions (innermost frame of ours):"]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in ours.most_common(top)]
    lines += ["", f"the {2 * top} functions most often on the stack (inclusive, under 80%):"]
    below = [(name, n) for name, n in inclusive.most_common() if n < 0.8 * total]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in below[: 2 * top]]
    return "\n".join(lines)


def py_spy(pid: int, seconds: float, path: Path) -> str:
    binary = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    command = [binary, "record", "-p", str(pid), "-d", str(int(seconds)), "-r", "400"]
    command += ["-f", "raw", "-o", str(path)]
    subprocess.run(command, check=True, capture_output=True)
    return path.read_text()


# -- orchestration ----------------------------------------------------------------------------------
def profile_router(args: argparse.Namespace, base: dict[str, Any], tmp: Path) -> str:
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    tree = tmp / "tree.txt"
    spec = {**base, "tool": args.tool, "tree_path": str(tree)}
    child = ctx.Process(target=drive_router, args=(spec, ready))
    child.start()
    try:
        if not ready.wait(120):
            raise SystemExit("the router process did not start")
        if args.tool == "pyinstrument":
            child.join(args.seconds + 120)
            return tree.read_text() if tree.exists() else "(the router process wrote no profile)"
        return summarise(py_spy(child.pid or 0, args.seconds - 1, tmp / "samples.txt"))
    finally:
        child.join(args.seconds + 120)
        if child.is_alive():
            child.terminate()


def profile_gateway(args: argparse.Namespace, base: dict[str, Any], tmp: Path) -> str:
    import psutil  # type: ignore[import-untyped]

    from bench.memory import _load
    from bench.overhead import gateway_settings
    from router.demo.gateway import GatewayProcess

    if not base["redis_url"]:
        raise SystemExit("--target gateway profiles the gateway on Redis: use --store redis")
    settings = gateway_settings(base["redis_url"])
    with GatewayProcess(base["keys_path"], base["env"], settings=settings) as gateway:
        asyncio.run(_load(gateway.url, gateway.virtual_key, 2, 8))  # warm
        out = tmp / "samples.txt"
        binary = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        command = [binary, "record", "-p", str(gateway.pid), "-d", str(int(args.seconds - 1))]
        command += ["-r", "400", "-f", "raw", "-o", str(out)]
        spy = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        process = psutil.Process(gateway.pid)
        before = process.cpu_times()
        load = asyncio.run(_load(gateway.url, gateway.virtual_key, args.seconds, args.concurrency))
        after = process.cpu_times()
        spy.wait(timeout=120)
        rate = load["served"] / load["elapsed"]
        served = max(1, load["served"])
        user = (after.user - before.user) / served * 1e6
        system = (after.system - before.system) / served * 1e6
        return (
            f"{rate:.0f} requests/s while sampled; the gateway's CPU per request: {user:.0f} us "
            f"user, {system:.0f} us system (py-spy samples wall time of a runnable thread: on a "
            "busy machine a socket write that wakes another process is over-counted)\n"
            + summarise(out.read_text())
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--target", choices=["router", "gateway"], default="router")
    parser.add_argument("--store", choices=["redis", "embedded"], default="redis")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--tool", choices=["py-spy", "pyinstrument"], default="py-spy")
    args = parser.parse_args()
    from router.simulator import SimulatorProcess

    keys = [BenchKey(f"p{i:02d}", rpm=1_000_000, tpm=1_000_000_000) for i in range(10)]
    with (
        tempfile.TemporaryDirectory(prefix="bench-profile-") as tmp,
        redis_server() as redis_url,
        SimulatorProcess(simulator_config(keys)) as sim,
    ):
        keys_path, env = write_pool(Path(tmp), keys, sim.base_url_for("openai"))
        base = {
            "redis_url": redis_url if args.store == "redis" else None,
            "keys_path": str(keys_path),
            "env": env,
            "seconds": args.seconds,
            "concurrency": args.concurrency,
        }
        if args.target == "router":
            text = profile_router(args, base, Path(tmp))
        else:
            text = profile_gateway(args, base, Path(tmp))
    header = f"profile of the {args.target} on the {args.store} store, {args.concurrency} in flight"
    report = f"{header}\n{text}\n"
    print(report)
    RESULTS.mkdir(parents=True, exist_ok=True)
    suffix = "" if args.tool == "py-spy" else f"-{args.tool}"
    (RESULTS / f"profile-{args.target}-{args.store}{suffix}.txt").write_text(report)


if __name__ == "__main__":
    main()
