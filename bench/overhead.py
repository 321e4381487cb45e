"""Router overhead: what a call costs through the router compared with a direct call, and with LiteLLM.

    python bench/overhead.py [--seconds 4] [--rounds 3] [--concurrency 1 16 64] [--keys 10]
                             [--modes direct router router-redis router-redis-inline gateway
                              litellm litellm-usage litellm-direct]

One provider simulator (its own process, zero latency, OpenAI wire format) serves every mode;
a pool of ``--keys`` keys with limits far above the load (so capacity is reserved and settled on
every call but never runs out). Each mode runs in a fresh process of its own (so LiteLLM's
background tasks never share a loop with the router), and at each concurrency level keeps that many
calls in flight for ``--seconds``:

* ``direct``: the router's own OpenAI adapter straight to the simulator, keys in turn: the baseline;
* ``router``: ``RequestRouter.complete`` in-process on the embedded store (no Redis: the default);
* ``router-fakeredis``: ``router`` on the embedded store before issue 18 (fakeredis running the
  scripts; bench/fakeredis_store.py), to compare the old store with the new one in one run;
* ``router-redis``: the same on a real redis-server (what several processes share);
* ``router-redis-inline``: the same with ``SETTLE_MODE=inline`` (each settle on its answer's path);
* ``gateway``: the adapter pointed at ``python -m router serve`` (HTTP hop + router, Redis store)
  with a virtual key; skipped while the gateway does not exist in this checkout;
* ``litellm``: LiteLLM's ``Router`` in-process, default ``simple-shuffle`` strategy, no Redis;
* ``litellm-usage``: LiteLLM's ``Router`` with ``usage-based-routing-v2`` (in-memory), the strategy
  that honours rpm/tpm like ours;
* ``litellm-direct``: ``litellm.acompletion`` without a Router: LiteLLM's own client cost.

Added latency = a mode's percentile minus ``direct``'s percentile at the same concurrency in the same
round; the reported number is the median over ``--rounds`` rounds (modes interleaved), and the
spread over rounds says how noisy the machine was. CPU time per request (process CPU / requests) is
reported too: it is the least noisy measure of what the router itself costs.

Targets (DESIGN.md, issue 18): in process on Redis, added latency p50 <= 0.35 ms, p99 <= 1.5 ms, at
least 20x lower than LiteLLM's Router; on the embedded store, added p50 <= 0.6 ms. Prints a table and writes bench/results/overhead.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    BenchKey,
    install_uvloop,
    median,
    percentile,
    print_table,
    redis_server,
    simulator_config,
    spread,
    write_pool,
    write_results,
)
from router.demo.gateway import GatewayProcess

MODEL = "gpt-4o-mini"
MESSAGES = [{"role": "user", "content": "Say hello to the benchmark."}]
MAX_TOKENS = 16
ALL_MODES = (
    "direct",
    "router",
    "router-fakeredis",
    "router-redis",
    "router-redis-inline",
    "gateway",
    "litellm",
    "litellm-usage",
    "litellm-direct",
)
IN_PROCESS_ROUTERS = ("router", "router-fakeredis", "router-redis", "router-redis-inline")
LITELLM_ROUTERS = ("litellm", "litellm-usage")

Call = Callable[[], Awaitable[None]]


class CallFailed(Exception):
    pass


# -- one mode, in its own process -----------------------------------------------------------------
def run_mode(spec: dict[str, Any]) -> dict[str, Any]:
    """Entry point of a spawned process: measure one mode at every concurrency level."""
    loop_name = install_uvloop()
    result = asyncio.run(_run_mode(spec))
    result["loop"] = loop_name
    return result


async def _run_mode(spec: dict[str, Any]) -> dict[str, Any]:
    call, close = await _make_call(spec)
    try:
        for _ in range(spec["warmup"]):
            await call()
        levels = []
        for concurrency in spec["concurrency"]:
            gap = spec.get("gap_ms", 0.0) / 1000
            levels.append(
                await _level(call, concurrency, spec["seconds"], spec.get("watch_pid"), gap)
            )
    finally:
        await close()
    return {"mode": spec["mode"], "levels": levels}


async def _level(
    call: Call, concurrency: int, seconds: float, watch_pid: int | None = None, gap: float = 0.0
) -> dict[str, Any]:
    """``concurrency`` callers for ``seconds``; with ``watch_pid`` (the gateway), that process's
    CPU time too. ``gap``: seconds each caller waits between an answer and its next call (a
    client's think time; not in the latencies)."""
    import psutil  # type: ignore[import-untyped]

    watched = ProcessTree(psutil.Process(watch_pid)) if watch_pid else None
    latencies: list[float] = []
    errors = 0
    stop = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal errors
        while time.perf_counter() < stop:
            started = time.perf_counter()
            try:
                await call()
            except CallFailed:
                errors += 1
                continue
            latencies.append(time.perf_counter() - started)
            if gap:
                await asyncio.sleep(gap)

    server0 = watched.cpu() if watched else 0.0
    cpu0, began = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed, cpu = time.perf_counter() - began, time.process_time() - cpu0
    server = watched.cpu() - server0 if watched else 0.0
    done = len(latencies)
    extra = {}
    if watched:
        extra = {
            "server_cpu_us_per_request": server / max(1, done) * 1e6,
            "server_cpu_share": server / elapsed,
        }
    return {
        **extra,
        "concurrency": concurrency,
        "requests": done,
        "errors": errors,
        "requests_per_s": done / elapsed,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "mean_ms": (sum(latencies) / done * 1000) if done else float("nan"),
        "cpu_us_per_request": cpu / max(1, done + errors) * 1e6,
    }


class ProcessTree:
    """A server process and its children (``serve --workers N``, a proxy's workers): their CPU
    time together (user + system seconds)."""

    def __init__(self, root: Any) -> None:
        self.root = root

    def cpu(self) -> float:
        import psutil

        total = 0.0
        for process in [self.root, *self.root.children(recursive=True)]:
            try:
                total += sum(process.cpu_times()[:2])
            except psutil.NoSuchProcess:  # a worker gone between listing and reading
                continue
        return total


async def _make_call(spec: dict[str, Any]) -> tuple[Call, Callable[[], Awaitable[None]]]:
    mode = spec["mode"]
    if mode == "direct":
        return await _direct(spec, spec["sim_url"] + "/v1", [k["secret"] for k in spec["keys"]])
    if mode.startswith(("gateway", "litellm-proxy")):  # an HTTP server: its URL and key
        return await _direct(spec, spec["server_url"] + "/v1", [spec["server_key"]])
    if mode in IN_PROCESS_ROUTERS:
        redis_url = spec["redis_url"] if mode.startswith("router-redis") else None
        return await _router(spec, redis_url, inline=mode.endswith("-inline"))
    return await _litellm(spec)


async def _direct(
    spec: dict[str, Any], base_url: str, secrets: list[str]
) -> tuple[Call, Callable[[], Awaitable[None]]]:
    """The router's own adapter and session settings, no router: keys taken in turn."""
    import aiohttp

    from kernel.errors import ProviderError
    from keys.models import APIKey
    from router.providers import ChatRequest, get_adapter

    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300))
    adapter = get_adapter("openai", session)
    keys = [
        (
            APIKey.model_validate(
                {"key_id": f"d{i}", "model_name": MODEL, "provider": "openai", "base_url": base_url}
            ),
            secret,
        )
        for i, secret in enumerate(secrets)
    ]
    turn = 0

    async def call() -> None:
        nonlocal turn
        key, secret = keys[turn % len(keys)]
        turn += 1
        request = ChatRequest(model=MODEL, messages=list(MESSAGES), max_tokens=MAX_TOKENS)
        try:
            await adapter.chat(key, secret, request)
        except ProviderError as exc:
            raise CallFailed(str(exc)) from exc

    return call, session.close


async def _router(
    spec: dict[str, Any], redis_url: str | None, *, inline: bool = False
) -> tuple[Call, Callable[[], Awaitable[None]]]:
    from kernel.settings import Settings
    from keys.manager import KeyManager
    from router.request_router import RequestRouter

    overrides: dict[str, Any] = {"REDIS_KEY_PREFIX": f"ovh{os.getpid()}", "LOG_LEVEL": "WARNING"}
    if spec["mode"] == "router-fakeredis":
        from bench.fakeredis_store import install

        install()
    if redis_url:
        overrides["REDIS_URL"] = redis_url
    if inline:  # the settle on the answer's path, as before issue 18
        overrides["SETTLE_MODE"] = "inline"
    settings = Settings.from_env({}, **overrides)
    manager = KeyManager(key_store_path=spec["keys_path"], settings=settings, environ=spec["env"])
    router = RequestRouter(manager, settings=settings)
    await router.start()

    async def call() -> None:
        answer = await router.complete(list(MESSAGES), MODEL, max_tokens=MAX_TOKENS)
        if not answer["success"]:
            raise CallFailed(str(answer["error"]))

    return call, router.close


async def _litellm(spec: dict[str, Any]) -> tuple[Call, Callable[[], Awaitable[None]]]:
    import logging

    import litellm
    from litellm.router import Router

    litellm.suppress_debug_info = True
    litellm.telemetry = False
    for name in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy", "httpx"):
        logging.getLogger(name).setLevel(logging.WARNING)
    base = spec["sim_url"] + "/v1"
    if spec["mode"] == "litellm-direct":
        secrets = [k["secret"] for k in spec["keys"]]
        turn = 0

        async def direct_call() -> None:
            nonlocal turn
            secret = secrets[turn % len(secrets)]
            turn += 1
            try:
                await litellm.acompletion(
                    model=f"openai/{MODEL}",
                    messages=list(MESSAGES),
                    max_tokens=MAX_TOKENS,
                    api_base=base,
                    api_key=secret,
                )
            except Exception as exc:
                raise CallFailed(str(exc)) from exc

        return direct_call, _noop
    model_list = [
        {
            "model_name": MODEL,
            "litellm_params": {
                "model": f"openai/{MODEL}",
                "api_base": base,
                "api_key": k["secret"],
                "rpm": k["rpm"],
                "tpm": k["tpm"],
            },
        }
        for k in spec["keys"]
    ]
    strategy = "usage-based-routing-v2" if spec["mode"] == "litellm-usage" else "simple-shuffle"
    router = Router(model_list=model_list, routing_strategy=strategy, num_retries=0)  # type: ignore[arg-type]
    messages: Any = MESSAGES

    async def call() -> None:
        try:
            await router.acompletion(model=MODEL, messages=list(messages), max_tokens=MAX_TOKENS)
        except Exception as exc:
            raise CallFailed(str(exc)) from exc

    return call, _noop


async def _noop() -> None:
    return None


# -- the orchestration ------------------------------------------------------------------------------
def gateway_settings(redis_url: str) -> dict[str, str]:
    """The gateway on the benchmark's Redis; its own per-user and global limits out of reach (they
    are on, and cost their Lua call, but never refuse: the pool's capacity is what is measured)."""
    return {
        "REDIS_URL": redis_url,
        "REDIS_KEY_PREFIX": "gw",
        "USER_RPM_DEFAULT": "100000000",
        "GLOBAL_RPM_MAX": "100000000",
        "LOG_LEVEL": "WARNING",
        "LOG_FORMAT": "json",
    }


def gateway_available() -> bool:
    """Whether this checkout has the gateway (``python -m router serve``)."""
    import importlib.util

    return importlib.util.find_spec("router.commands.serve") is not None


def measure(spec: dict[str, Any]) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1) as pool:
        result: dict[str, Any] = pool.apply(run_mode, (spec,))
    return result


def summarise(rounds: list[dict[str, dict[str, Any]]], modes: list[str]) -> list[dict[str, Any]]:
    """One row per (mode, concurrency): medians over rounds, added latency against direct."""
    rows = []
    levels = [lvl["concurrency"] for lvl in rounds[0][modes[0]]["levels"]]
    for mode in modes:
        for i, concurrency in enumerate(levels):
            cases = [r[mode]["levels"][i] for r in rounds if mode in r]
            base = [r["direct"]["levels"][i] for r in rounds if mode in r and "direct" in r]
            row: dict[str, Any] = {"mode": mode, "concurrency": concurrency}
            for name in ("requests_per_s", "p50_ms", "p99_ms", "cpu_us_per_request"):
                row[name] = median([c[name] for c in cases])
            for name in ("server_cpu_us_per_request", "server_cpu_share"):
                if all(name in c for c in cases):
                    row[name] = median([c[name] for c in cases])
            if "server_cpu_share" in row and row["server_cpu_share"] > 0:
                # what one fully busy core would serve at this cost per request
                row["per_core_requests_per_s"] = 1e6 / row["server_cpu_us_per_request"]
            row["errors"] = sum(c["errors"] for c in cases)
            row["requests"] = sum(c["requests"] for c in cases)
            if base:
                for q in ("p50", "p99"):
                    added = [c[f"{q}_ms"] - b[f"{q}_ms"] for c, b in zip(cases, base, strict=True)]
                    row[f"added_{q}_ms"] = median(added)
                    row[f"added_{q}_ms_rounds"] = added
                cpu = [
                    c["cpu_us_per_request"] - b["cpu_us_per_request"]
                    for c, b in zip(cases, base, strict=True)
                ]
                row["added_cpu_us_per_request"] = median(cpu)
            row["requests_per_s_spread"] = spread([c["requests_per_s"] for c in cases])
            rows.append(row)
    return rows


def targets(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The DESIGN.md overhead targets, checked on the rows of this run."""

    def row(mode: str, concurrency: int) -> dict[str, Any] | None:
        return next(
            (r for r in rows if r["mode"] == mode and r["concurrency"] == concurrency), None
        )

    out: dict[str, Any] = {}
    for mode in IN_PROCESS_ROUTERS:
        for concurrency in sorted({r["concurrency"] for r in rows}):
            ours = row(mode, concurrency)
            if ours is None or "added_p50_ms" not in ours:
                continue
            entry: dict[str, Any] = {
                "added_p50_ms": ours["added_p50_ms"],
                "added_p99_ms": ours["added_p99_ms"],
            }
            if concurrency == 1:
                entry["p50_target_0.5ms_met"] = ours["added_p50_ms"] <= 0.5
                entry["p99_target_2ms_met"] = ours["added_p99_ms"] <= 2.0
            for peer in LITELLM_ROUTERS:
                theirs = row(peer, concurrency)
                if theirs is not None and ours["added_p50_ms"] > 0:
                    entry[f"{peer}_added_p50_ratio"] = theirs["added_p50_ms"] / ours["added_p50_ms"]
                    entry[f"{peer}_added_cpu_ratio"] = theirs["added_cpu_us_per_request"] / max(
                        1e-9, ours["added_cpu_us_per_request"]
                    )
            out[f"{mode}@{concurrency}"] = entry
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=4.0, help="per mode and level")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--keys", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=200, help="calls before measuring")
    parser.add_argument(
        "--gap-ms",
        type=float,
        default=0.0,
        help="each caller's pause between an answer and its next call",
    )
    parser.add_argument(  # router-redis-inline on demand: the before of issue 18's settle
        "--modes",
        nargs="+",
        default=[m for m in ALL_MODES if m != "router-redis-inline"],
        choices=ALL_MODES,
    )
    parser.add_argument("--out")
    args = parser.parse_args()
    modes: list[str] = list(args.modes)
    if "direct" not in modes:
        modes.insert(0, "direct")
    if "gateway" in modes and not gateway_available():
        print("gateway: `python -m router serve` is not in this checkout; skipped", file=sys.stderr)
        modes.remove("gateway")

    from router.simulator import SimulatorProcess

    # limits far above what 2 cores can send: every call reserves and settles, none waits
    keys = [BenchKey(f"k{i:02d}", rpm=1_000_000, tpm=1_000_000_000) for i in range(args.keys)]
    rounds: list[dict[str, dict[str, Any]]] = []
    with (
        tempfile.TemporaryDirectory(prefix="bench-overhead-") as tmp,
        redis_server() as redis_url,
        SimulatorProcess(simulator_config(keys)) as sim,
    ):
        keys_path, env = write_pool(Path(tmp), keys, sim.base_url_for("openai"))
        spec: dict[str, Any] = {
            "sim_url": sim.base_url,
            "redis_url": redis_url,
            "keys_path": str(keys_path),
            "env": env,
            "keys": [{"secret": k.secret, "rpm": k.rpm, "tpm": k.tpm} for k in keys],
            "concurrency": args.concurrency,
            "seconds": args.seconds,
            "warmup": args.warmup,
            "gap_ms": args.gap_ms,
        }
        gateway = None
        if "gateway" in modes:
            gateway = GatewayProcess(keys_path, env, settings=gateway_settings(redis_url)).start()
            spec["server_url"], spec["server_key"] = gateway.url, gateway.virtual_key
            spec["gateway_pid"] = gateway.pid
        try:
            for index in range(args.rounds):
                results: dict[str, dict[str, Any]] = {}
                for mode in modes:
                    print(f"round {index + 1}/{args.rounds}: {mode}", file=sys.stderr, flush=True)
                    watch = spec.get("gateway_pid") if mode == "gateway" else None
                    results[mode] = measure({**spec, "mode": mode, "watch_pid": watch})
                rounds.append(results)
        finally:
            if gateway is not None:
                gateway.close()
    rows = summarise(rounds, modes)
    print_table(
        rows,
        [
            ("mode", "mode", ""),
            ("concurrency", "conc", "d"),
            ("requests_per_s", "req/s", ".0f"),
            ("p50_ms", "p50 ms", ".3f"),
            ("p99_ms", "p99 ms", ".3f"),
            ("added_p50_ms", "+p50 ms", ".3f"),
            ("added_p99_ms", "+p99 ms", ".3f"),
            ("cpu_us_per_request", "cpu us/req", ".0f"),
            ("added_cpu_us_per_request", "+cpu us", ".0f"),
            ("server_cpu_us_per_request", "gw cpu us/req", ".0f"),
            ("server_cpu_share", "gw cpu", ".2f"),
            ("errors", "errors", "d"),
        ],
    )
    checked = targets(rows)
    print(json.dumps(checked, indent=2))
    path = write_results(
        "overhead",
        {
            "settings": {
                "seconds": args.seconds,
                "rounds": args.rounds,
                "concurrency": args.concurrency,
                "keys": args.keys,
                "model": MODEL,
                "max_tokens": MAX_TOKENS,
                "loop": rounds[0]["direct"].get("loop"),
            },
            "rows": rows,
            "targets": checked,
            "raw_rounds": rounds,
        },
        args.out,
    )
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
