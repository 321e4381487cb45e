"""``python -m router --health-check [--url URL]``: print a JSON health report, exit 0 when healthy."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from kernel.log import configure_logging


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser("health", help="same as --health-check")
    parser.add_argument("--url", help="check a running gateway at this URL instead")
    parser.add_argument("--keys", metavar="PATH", help="keys.json to use")
    parser.set_defaults(handler=run_health_check)


def run_health_check(args: argparse.Namespace) -> int:
    configure_logging(level="WARNING", force=True)
    if getattr(args, "url", None):
        from router.commands.remote_health import check_gateway

        code: int = check_gateway(args.url)
        return code
    from router.health import health_report

    report = asyncio.run(health_report(getattr(args, "keys", None)))
    json.dump(report, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")
    if not report["healthy"]:
        sys.stderr.write("unhealthy: " + "; ".join(report["errors"]) + "\n")
        return 1
    if report.get("status") == "degraded":
        sys.stderr.write("degraded: the shared store is unreachable (serving on local limits)\n")
    return 0
