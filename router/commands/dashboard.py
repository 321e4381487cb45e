"""``python -m router dashboard``: the dashboard and the admin API alone, against a shared Redis.

For deployments where library processes do all the traffic: this process serves ``/ui``
(docs/dashboard.md), ``/api/v1/admin`` and the operations routes (``/health``, ``/metrics``) over
the same keys.json and ``REDIS_URL`` as those processes, and no OpenAI route. It needs
``REDIS_URL`` (the embedded store would show this process's own, empty, state) and
``ROUTER_MASTER_KEY`` (the dashboard's login). Prints one JSON line once listening, like ``serve``.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from kernel.errors import ConfigError


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "dashboard",
        help="serve the web dashboard and the admin API (no OpenAI routes) against REDIS_URL",
        description="Serve the dashboard (/ui), the admin API and /health, /metrics over the "
        "pool in REDIS_URL, for deployments where library processes make the calls.",
    )
    parser.add_argument("--host", help="address to listen on (default GATEWAY_HOST, 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port (default 8080; 0: a free one)")
    parser.add_argument(
        "--keys",
        metavar="PATH",
        default=argparse.SUPPRESS,
        help="keys.json to use (default KEY_STORE_PATH or ./keys.json)",
    )
    parser.set_defaults(handler=run)


def _fail(message: str, code: int = 2) -> int:
    sys.stderr.write(f"error: {message}\n")
    return code


def run(args: argparse.Namespace) -> int:
    from kernel.log import configure_logging
    from kernel.settings import Settings

    configure_logging(force=True)
    if getattr(args, "keys", None):
        os.environ["KEY_STORE_PATH"] = args.keys
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        return _fail(str(exc))
    if settings.uses_embedded_store:
        return _fail(
            "the dashboard command needs REDIS_URL: the embedded store lives inside one process, "
            "so this one would show its own empty pool, not the traffic of the library processes. "
            "Set REDIS_URL to the Redis they share (or use /ui of `python -m router serve`)."
        )
    master = settings.ROUTER_MASTER_KEY
    if master is None or not master.get_secret_value():
        return _fail("the dashboard needs ROUTER_MASTER_KEY: it is the dashboard's login")
    if not 0 <= args.port <= 65535:
        return _fail(f"--port {args.port}: expected 0 to 65535")
    from router.gateway.server import run_worker

    host = args.host or settings.GATEWAY_HOST
    try:
        run_worker(host, args.port, openai=False)
    except ConfigError as exc:
        return _fail(str(exc))
    except OSError as exc:
        return _fail(f"cannot listen on {host}:{args.port}: {exc.strerror or exc}", 1)
    return 0
