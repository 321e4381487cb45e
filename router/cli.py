"""The command line: ``python -m router [--health-check] <command> ...``.

A thin layer: each command lives in :mod:`router.commands` as a module with ``add_parser`` (which
registers its arguments and sets ``handler``) and does its work in the library.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from kernel.env_file import ensure_env_file
from kernel.errors import ConfigError

#: Command modules under router.commands, in the order ``--help`` lists them.
COMMAND_MODULES = (
    "health",
    "serve",
    "dashboard",
    "demo",
    "simulate",
    "secrets",
    "scan",
    "vkeys",
    "usage",
    "budgets",
    "plan",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m router",
        description="LLM key-pool router: share a pool of provider API keys without tripping rate limits.",
    )
    parser.add_argument(
        "--health-check",
        action="store_true",
        help="load the configuration, ping the store, print a JSON health report; exit 0 when healthy",
    )
    parser.add_argument(
        "--url", help="with --health-check: check a running gateway at this URL instead"
    )
    parser.add_argument(
        "--keys", metavar="PATH", help="keys.json to use (default: KEY_STORE_PATH or ./keys.json)"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="command")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"router.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"router.commands.{name}":
                continue  # command not built yet in this checkout
            raise
        module.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        ensure_env_file()  # ./.env or ROUTER_ENV_FILE, under the real environment
    except ConfigError as exc:
        sys.stderr.write(f"configuration error: {exc}\n")
        return 1
    if args.health_check:
        from router.commands.health import run_health_check

        return run_health_check(args)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    result: int = handler(args)
    return result
