"""``python -m router simulate-providers``: run the provider simulator until interrupted.

Prints one JSON line when listening (``{"event": "listening", "url": ..., "port": ...}``) so a
parent process can read the address, then serves until SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from typing import Any

from kernel.errors import ConfigError


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "simulate-providers",
        help="run the OpenAI/Anthropic/Gemini provider simulator (tests, demos, benchmarks)",
        description="Serve the OpenAI, Azure OpenAI, Anthropic and Gemini wire formats on one port "
        "with per-key limits and injectable faults (docs/simulator.md).",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    parser.add_argument(
        "--port", type=int, default=0, help="port (default 0: a free port, printed)"
    )
    parser.add_argument("--config", metavar="FILE", help="JSON configuration: keys, limits, faults")
    parser.add_argument(
        "--seed", type=int, help="seed of the fault and latency draws (overrides the file)"
    )
    parser.add_argument(
        "--open-access",
        action="store_true",
        help="accept any key (no limits) besides the configured ones",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from router.simulator.config import SimulatorConfig, load_config

    try:
        config = load_config(args.config) if args.config else SimulatorConfig()
    except ConfigError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    updates: dict[str, Any] = {}
    if args.seed is not None:
        updates["seed"] = args.seed
    if args.open_access:
        updates["open_access"] = True
    if updates:
        config = config.model_copy(update=updates)
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    try:
        asyncio.run(_serve(config, args.host, args.port))
    except OSError as exc:
        sys.stderr.write(
            f"error: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}\n"
        )
        return 1
    return 0


async def _serve(config: Any, host: str, port: int) -> None:
    from router.simulator.server import ProviderSimulator

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with ProviderSimulator(config, host=host, port=port) as sim:
        line = {
            "event": "listening",
            "url": sim.base_url,
            "port": sim.port,
            "keys": len(config.keys),
        }
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()
        await stop.wait()
