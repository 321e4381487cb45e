"""The demo from start to end: simulator, gateway, traffic with a live view, summary, clean-up.

Everything runs on this machine, on loopback: the provider simulator in a child process with the
sample pool's limits, the gateway in another (``python -m router serve`` on the embedded store: no
Redis server, no configuration), and the clients here, through the official OpenAI SDK. Both
children are stopped and every temporary file removed however the demo ends (Ctrl-C included).
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from router.demo.gateway import GatewayProcess
from router.demo.pool import DemoPool, demo_pool
from router.demo.traffic import Tally, drive

#: The gateway's own per-user and global limits are not what the demo is about: set out of reach.
GATEWAY_SETTINGS = {
    "USER_RPM_DEFAULT": "1000000",
    "GLOBAL_RPM_MAX": "1000000",
    "CIRCUIT_BREAKER_TIMEOUT_SECONDS": "10",
    "LOG_LEVEL": "WARNING",
    "LOG_FORMAT": "json",
}


#: How far past the end of the traffic the capacity share still counts (see build_summary).
END_GRACE_SECONDS = 0.5


@dataclass
class DemoOptions:
    seconds: float = 30.0
    rate: float | None = None  # requests per second; default twice the pool's sustained rate
    faults: bool = True
    seed: int = 7
    json_path: str | None = None
    refresh: float = 0.5
    #: Keep the gateway (and its dashboard) and the simulator running after the summary.
    keep: bool = False


def run_demo(options: DemoOptions, console: Any = None) -> dict[str, Any]:
    """Run the demo; answers (and shows) the summary."""
    from rich.console import Console

    from kernel.log import configure_logging
    from router.simulator import SimulatorProcess

    configure_logging(level="WARNING", force=True)  # the SDK's per-request INFO lines are noise
    console = console or Console()
    pool = demo_pool(faults=options.faults)
    rate = options.rate or 2 * pool.rpm / 60.0
    console.print(
        f"[bold]LLM key-pool router demo[/]: {len(pool.keys)} keys of 3 providers, "
        f"{pool.rpm} requests/min in all; offering {rate:.1f} requests/s "
        f"(about {rate * 60 / pool.rpm:.1f}x capacity) for {options.seconds:.0f} s"
    )
    with (
        tempfile.TemporaryDirectory(prefix="llm-router-demo-") as tmp,
        SimulatorProcess(pool.simulator_config(options.seed)) as sim,
    ):
        console.print(f"provider simulator at {sim.base_url} (OpenAI, Anthropic, Gemini)")
        keys_path = pool.write_keys_json(Path(tmp), sim.base_url_for)
        with GatewayProcess(keys_path, pool.environment(), settings=GATEWAY_SETTINGS) as gw:
            console.print(
                f"gateway at {gw.url}/v1 on the embedded store; virtual key "
                f"{gw.virtual_key[:12]}... (created with the admin API)"
            )
            console.print(dashboard_line(gw))
            tally = Tally()
            asyncio.run(_traffic(gw, pool, rate, options, tally, console))
            console.print()
            statuses = gw.key_statuses()
            metrics = gw.metrics()
            provider_stats = sim.stats()
            summary = build_summary(
                pool, tally, statuses, metrics, provider_stats, options.seconds, rate
            )
            show_summary(console, summary)
            if options.json_path:
                Path(options.json_path).write_text(json.dumps(summary, indent=2) + "\n")
            if options.keep:
                keep_running(console, gw)
    return summary


def dashboard_line(gw: GatewayProcess) -> str:
    """Where the dashboard is and how to log in (the master key made for this demo's gateway)."""
    return f"dashboard at {gw.url}/ui (log in with the demo's master key {gw.master_key})"


def keep_running(console: Any, gw: GatewayProcess) -> None:
    """Leave the gateway and the simulator up until Ctrl-C (then the caller cleans up)."""
    console.print(
        f"[bold]--keep[/]: the gateway and the simulator keep running. {dashboard_line(gw)}; "
        f"OpenAI clients: base_url {gw.url}/v1, api_key {gw.virtual_key}. Press Ctrl-C to stop."
    )
    try:
        while gw.running():
            time.sleep(0.5)
        console.print("[red]the gateway stopped[/]")
    except KeyboardInterrupt:
        console.print("stopping the gateway and the simulator")


async def _traffic(
    gw: GatewayProcess,
    pool: DemoPool,
    rate: float,
    options: DemoOptions,
    tally: Tally,
    console: Any,
) -> None:
    import openai
    from rich.live import Live

    from router.demo.view import key_table, live_view, progress_bar, tally_line

    client = openai.AsyncOpenAI(
        base_url=gw.url + "/v1", api_key=gw.virtual_key, max_retries=0, timeout=60.0
    )
    progress = progress_bar()
    task = progress.add_task("traffic", total=options.seconds, line="")
    started = time.monotonic()
    traffic = asyncio.create_task(drive(client, rate, options.seconds, tally))
    try:
        with Live(live_view(progress, None), console=console, refresh_per_second=4) as live:
            while not traffic.done():
                elapsed = time.monotonic() - started
                statuses = await asyncio.to_thread(gw.key_statuses)
                progress.update(
                    task, completed=min(elapsed, options.seconds), line=tally_line(tally)
                )
                live.update(live_view(progress, key_table(statuses, pool, elapsed)))
                await asyncio.wait({traffic}, timeout=options.refresh)
            await traffic
    finally:
        if not traffic.done():
            traffic.cancel()
        await client.close()


def _metric_total(text: str, name: str) -> float:
    """Sum of one metric's samples in Prometheus text (every label combination)."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and line[len(name) : len(name) + 1] in ("{", " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


def build_summary(
    pool: DemoPool,
    tally: Tally,
    statuses: list[dict[str, Any]],
    metrics: str,
    provider_stats: dict[str, Any],
    seconds: float,
    rate: float,
) -> dict[str, Any]:
    """The run in numbers. Capacity and its share count the ``seconds`` traffic was offered, plus
    half a second: room that refills exactly at the end is used a moment later (the router's
    RESERVE_MARGIN_SECONDS), by requests still waiting for it. Later answers are served but not
    counted there."""
    window = seconds + END_GRACE_SECONDS
    capacity = pool.capacity(window)
    served_in_time = sum(1 for t in tally.served_at if t <= window)
    providers: dict[str, Any] = {}
    for key in pool.keys:
        stats = provider_stats["keys"].get(key.key_id, {}).get(key.model, {})
        providers[key.key_id] = {
            "admitted": stats.get("admitted_requests", 0),
            "max_60s": stats.get("max_window_requests", 0),
            "rpm": key.rpm,
            "rate_limited": stats.get("rate_limited", 0),
            "faults": sum((stats.get("faults") or {}).values()),
        }
    return {
        "seconds": seconds,
        "window": window,
        "rate": round(rate, 2),
        "sent": tally.sent,
        "served": tally.served,
        "refused": tally.refused,
        "errors": dict(tally.failed),
        "tokens": tally.tokens,
        "capacity": round(capacity, 1),
        "served_in_time": served_in_time,
        "capacity_share": served_in_time / capacity if capacity else 0.0,
        "provider_429s": int(provider_stats["totals"].get("rate_limited", 0)),
        "injected_faults": int(provider_stats["totals"].get("faults", 0)),
        "rotations": tally.rotated,
        "fallbacks": tally.fallbacks,
        "served_by_model": dict(tally.by_model),
        "no_room_checks": int(_metric_total(metrics, "llm_router_rate_limits_avoided_total")),
        "keys": {
            s["key_id"]: {"state": s["state"], "served": s["successes"], "tokens": s["tokens"]}
            for s in statuses
        },
        "providers": providers,
    }


def show_summary(console: Any, summary: dict[str, Any]) -> None:
    from router.demo.view import provider_table, summary_table

    console.print(summary_table(summary))
    console.print(provider_table(summary))
    if summary["provider_429s"] == 0:
        console.print(
            "[green]No request exceeded a provider limit:[/] capacity was reserved before every "
            "call, so the pool ran at its limits without one 429 from a limit."
        )
    else:
        console.print(
            f"[red]{summary['provider_429s']} requests were refused by a provider for exceeding "
            "a limit.[/]"
        )
