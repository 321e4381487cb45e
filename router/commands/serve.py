"""``python -m router serve``: the OpenAI-compatible gateway (docs/gateway.md).

Prints one JSON line once listening (``{"event": "listening", "url": ..., "port": ...}``) and serves
until SIGTERM or SIGINT, then drains requests in flight. ``--workers N`` runs N processes on one
port; they must share a Redis (``REDIS_URL``), so the embedded store refuses more than one.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from kernel.errors import ConfigError


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run the OpenAI-compatible HTTP gateway",
        description="Serve POST /v1/chat/completions, /v1/models, the admin API, /health and "
        "/metrics over the key pool (docs/gateway.md).",
    )
    parser.add_argument("--host", help="address to listen on (default GATEWAY_HOST, 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, help="port (default GATEWAY_PORT, 8000; 0 picks a free one)"
    )
    parser.add_argument(
        "--workers",
        type=int,
        help="worker processes sharing the port (default GATEWAY_WORKERS, 1); needs REDIS_URL",
    )
    parser.add_argument(
        "--keys",
        metavar="PATH",
        default=argparse.SUPPRESS,
        help="keys.json to use (default KEY_STORE_PATH or ./keys.json)",
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.set_defaults(handler=run)


def _fail(message: str, code: int = 2) -> int:
    sys.stderr.write(f"error: {message}\n")
    return code


def run(args: argparse.Namespace) -> int:
    from kernel.log import configure_logging
    from kernel.settings import Settings

    configure_logging(force=True)
    if getattr(args, "keys", None):
        os.environ["KEY_STORE_PATH"] = args.keys  # workers inherit it
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        return _fail(str(exc))
    host = args.host or settings.GATEWAY_HOST
    port = settings.GATEWAY_PORT if args.port is None else args.port
    workers = args.workers or settings.GATEWAY_WORKERS
    if not 0 <= port <= 65535:
        return _fail(f"--port {port}: expected 0 to 65535")
    if workers < 1:
        return _fail(f"--workers {workers}: expected at least 1")
    if workers > 1 and not args.worker:
        if settings.uses_embedded_store:
            return _fail(
                f"--workers {workers} needs a shared store: the embedded store lives inside one "
                "process, so workers would not share limits, cooldowns or virtual keys. Set "
                "REDIS_URL (Redis or Redis Cluster), or run one worker."
            )
        from router.gateway.server import supervise

        return supervise(host, port, workers, [], settings.GATEWAY_SHUTDOWN_TIMEOUT_SECONDS)
    return _run_one(host, port, reuse_port=args.worker, uvloop=settings.GATEWAY_UVLOOP)


def _run_one(host: str, port: int, *, reuse_port: bool, uvloop: bool) -> int:
    from router.gateway.server import run_worker

    try:
        run_worker(host, port, reuse_port=reuse_port, uvloop=uvloop)
    except ConfigError as exc:
        return _fail(str(exc))
    except OSError as exc:
        return _fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}", 1)
    return 0
