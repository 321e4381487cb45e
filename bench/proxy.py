"""Our gateway beside LiteLLM's proxy server: requests/s per busy core and added latency.

    python bench/proxy.py [--seconds 4] [--rounds 3] [--concurrency 1 16 64] [--keys 10]
                          [--workers 1 2] [--no-litellm] [--baseline DIR] [--out PATH]

One provider simulator (its own process, zero latency, OpenAI wire format) behind both servers,
a pool of ``--keys`` keys with limits far above the load, the same secrets on both sides, and
one client (the router's own OpenAI adapter, a fresh process per mode and round) keeping 1, 16
and 64 requests in flight for ``--seconds`` each. Modes, interleaved round by round (the servers in the other order each round):

* ``direct``: the client straight to the simulator: the baseline of "added" latency;
* ``gateway``: ``python -m router serve`` on a redis-server, a virtual key (its per-user and
  global limits on, out of reach), uvloop and orjson when installed (the ``speed`` extra);
* ``gateway-2w`` (``--workers 1 2``): the same with ``serve --workers 2`` (both cores);
* ``gateway-baseline`` (``--baseline DIR``): one worker of the gateway of another checkout
  (``DIR`` first on its ``PYTHONPATH``, run from ``DIR``): an A/B of a change in one run;
* ``litellm-proxy``: ``litellm --config <generated yaml>``: the same keys as deployments of
  one model (``simple-shuffle``, no retries), its master key, no database, and
  ``LITELLM_LOCAL_MODEL_COST_MAP=True`` so nothing is fetched.

Requests/s per busy core = requests / CPU seconds of the server's processes (the process and
its children, from psutil): what one fully busy core would serve. Added latency = a mode's
percentile minus ``direct``'s at the same concurrency in the same round; the medians of the
rounds are reported. Everything listens on 127.0.0.1 and stops at the end. Prints a table and
writes bench/results/proxy.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    BenchKey,
    free_port,
    print_table,
    redis_server,
    simulator_config,
    write_pool,
    write_results,
)
from bench.overhead import MODEL, gateway_settings, measure, summarise
from router.demo.gateway import PASSED_THROUGH, GatewayProcess

LITELLM_MASTER_KEY = "sk-bench-litellm-master"
STARTUP_SECONDS = 180.0


# -- LiteLLM's proxy ------------------------------------------------------------------------------
def litellm_config(keys: list[BenchKey], base_url: str) -> str:
    """The proxy's YAML: every key a deployment of the one model, like our pool."""
    lines = ["model_list:"]
    for key in keys:
        lines += [
            f"  - model_name: {MODEL}",
            "    litellm_params:",
            f"      model: openai/{MODEL}",
            f"      api_base: {base_url}",
            f"      api_key: {key.secret}",
            f"      rpm: {key.rpm}",
            f"      tpm: {key.tpm}",
        ]
    lines += [
        "router_settings:",
        "  routing_strategy: simple-shuffle",
        "  num_retries: 0",
        "litellm_settings:",
        "  telemetry: false",
        "  num_retries: 0",
        "general_settings:",
        f"  master_key: {LITELLM_MASTER_KEY}",
    ]
    return "\n".join(lines) + "\n"


def _wait_alive(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        with (
            contextlib.suppress(urllib.error.URLError, OSError),
            urllib.request.urlopen(url + "/health/liveliness", timeout=5) as answer,  # noqa: S310 - loopback
        ):
            if answer.status == 200:
                return
        time.sleep(0.5)
    tail = log.read_text(errors="replace")[-3000:]
    raise SystemExit(f"LiteLLM's proxy did not start:\n{tail}")


@contextlib.contextmanager
def litellm_proxy(keys: list[BenchKey], base_url: str, tmp: Path) -> Iterator[tuple[str, int]]:
    """``litellm --config`` on a free loopback port; yields (url, pid)."""
    config = tmp / "litellm.yaml"
    config.write_text(litellm_config(keys, base_url))
    binary = Path(sys.executable).parent / "litellm"
    port = free_port()
    env = {k: os.environ[k] for k in PASSED_THROUGH if k in os.environ}
    env.update(LITELLM_LOCAL_MODEL_COST_MAP="True", LITELLM_LOG="ERROR", NO_DOCS="True")
    log = tmp / "litellm.log"
    command = [str(binary), "--config", str(config), "--host", "127.0.0.1", "--port", str(port)]
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_alive(url, process, log)
        yield url, process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# -- the run ---------------------------------------------------------------------------------------
def ratios(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Ours against LiteLLM's proxy at each concurrency: requests/s per busy core and added
    latency (the issue's target: at least 10x on both), and the 2-worker scaling."""

    def row(mode: str, concurrency: int) -> dict[str, Any] | None:
        return next(
            (r for r in rows if r["mode"] == mode and r["concurrency"] == concurrency), None
        )

    out: dict[str, Any] = {}
    for concurrency in sorted({r["concurrency"] for r in rows}):
        ours, theirs = row("gateway", concurrency), row("litellm-proxy", concurrency)
        entry: dict[str, Any] = {}
        if ours is not None and "per_core_requests_per_s" in ours:
            entry["gateway_per_core_requests_per_s"] = ours["per_core_requests_per_s"]
            entry["gateway_cpu_us_per_request"] = ours["server_cpu_us_per_request"]
            entry["gateway_added_p50_ms"] = ours.get("added_p50_ms")
        if ours is not None and theirs is not None and "per_core_requests_per_s" in theirs:
            entry["per_core_ratio"] = (
                ours["per_core_requests_per_s"] / theirs["per_core_requests_per_s"]
            )
            if ours.get("added_p50_ms", 0) > 0:
                entry["added_p50_ratio"] = theirs["added_p50_ms"] / ours["added_p50_ms"]
            if ours.get("added_p99_ms", 0) > 0:
                entry["added_p99_ratio"] = theirs["added_p99_ms"] / ours["added_p99_ms"]
        two = row("gateway-2w", concurrency)
        if ours is not None and two is not None:
            entry["two_workers_requests_per_s_ratio"] = (
                two["requests_per_s"] / ours["requests_per_s"]
            )
        out[str(concurrency)] = entry
    return out


def _servers(
    args: argparse.Namespace, stack: contextlib.ExitStack, keys: list[BenchKey], tmp: Path
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The simulator, Redis, our gateway(s) and LiteLLM's proxy: (spec, per-mode settings)."""
    from router.simulator import SimulatorProcess

    redis_url = stack.enter_context(redis_server())
    sim = stack.enter_context(SimulatorProcess(simulator_config(keys)))
    keys_path, env = write_pool(tmp, keys, sim.base_url_for("openai"))
    spec: dict[str, Any] = {
        "sim_url": sim.base_url,
        "keys": [{"secret": k.secret, "rpm": k.rpm, "tpm": k.tpm} for k in keys],
        "concurrency": args.concurrency,
        "seconds": args.seconds,
        "warmup": args.warmup,
    }
    servers: dict[str, dict[str, Any]] = {}
    for workers in args.workers:
        mode = "gateway" if workers == 1 else f"gateway-{workers}w"
        settings = {**gateway_settings(redis_url), "REDIS_KEY_PREFIX": f"gw{workers}"}
        gateway = GatewayProcess(keys_path, env, settings=settings, workers=workers)
        stack.enter_context(gateway)
        servers[mode] = {"server_url": gateway.url, "server_key": gateway.virtual_key}
        servers[mode]["watch_pid"] = gateway.pid
    if args.baseline:
        servers["gateway-baseline"] = _baseline(args.baseline, stack, keys_path, env, redis_url)
    if args.litellm:
        url, pid = stack.enter_context(litellm_proxy(keys, sim.base_url + "/v1", tmp))
        servers["litellm-proxy"] = {"server_url": url, "server_key": LITELLM_MASTER_KEY}
        servers["litellm-proxy"]["watch_pid"] = pid
    return spec, servers


def _baseline(
    checkout: str, stack: contextlib.ExitStack, keys_path: Path, env: dict[str, str], redis: str
) -> dict[str, Any]:
    """One worker of the gateway of the checkout ``checkout`` (its own key prefix)."""
    root = Path(checkout).resolve()
    settings = {**gateway_settings(redis), "REDIS_KEY_PREFIX": "gwbase", "PYTHONPATH": str(root)}
    gateway = GatewayProcess(keys_path, env, settings=settings, cwd=root)
    stack.enter_context(gateway)
    return {"server_url": gateway.url, "server_key": gateway.virtual_key, "watch_pid": gateway.pid}


def run(args: argparse.Namespace) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    keys = [BenchKey(f"k{i:02d}", rpm=1_000_000, tpm=1_000_000_000) for i in range(args.keys)]
    rounds: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-proxy-") as tmp, contextlib.ExitStack() as stack:
        spec, servers = _servers(args, stack, keys, Path(tmp))
        modes = ["direct", *servers]
        for index in range(args.rounds):
            results: dict[str, Any] = {}
            # the servers in turn, each round in the other order (a machine busier at the start
            # or the end of a round weighs on each alike); direct first: added latency's base
            servers_now = list(servers) if index % 2 == 0 else list(servers)[::-1]
            for mode in ["direct", *servers_now]:
                print(f"round {index + 1}/{args.rounds}: {mode}", file=sys.stderr, flush=True)
                results[mode] = measure({**spec, **servers.get(mode, {}), "mode": mode})
            rounds.append(results)
    return summarise(rounds, modes), rounds


COLUMNS = [
    ("mode", "mode", ""),
    ("concurrency", "conc", "d"),
    ("requests_per_s", "req/s", ".0f"),
    ("p50_ms", "p50 ms", ".3f"),
    ("p99_ms", "p99 ms", ".3f"),
    ("added_p50_ms", "+p50 ms", ".3f"),
    ("added_p99_ms", "+p99 ms", ".3f"),
    ("server_cpu_us_per_request", "srv cpu us/req", ".0f"),
    ("server_cpu_share", "srv cores", ".2f"),
    ("per_core_requests_per_s", "req/s/core", ".0f"),
    ("errors", "errors", "d"),
]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=4.0, help="per mode and level")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--keys", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=200, help="calls before measuring")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="gateway workers")
    parser.add_argument("--no-litellm", dest="litellm", action="store_false")
    parser.add_argument(
        "--baseline", metavar="DIR", help="also a gateway from this checkout (an A/B in one run)"
    )
    parser.add_argument("--out")
    args = parser.parse_args()
    rows, rounds = run(args)
    print_table(rows, COLUMNS)
    checked = ratios(rows)
    print(json.dumps(checked, indent=2))
    settings = {k: getattr(args, k) for k in ("seconds", "rounds", "concurrency", "keys")}
    settings.update(workers=args.workers, litellm=args.litellm, model=MODEL)
    settings.update(baseline=args.baseline)
    data = {"settings": settings, "rows": rows, "ratios": checked, "raw_rounds": rounds}
    path = write_results("proxy", data, args.out)
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
