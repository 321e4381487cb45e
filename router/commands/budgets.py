"""``python -m router budgets [--format table|json]``: every budget and where it stands.

Reads the budgets and their spend in the store named by ``REDIS_URL``, or asks a running
gateway's admin API with ``--url`` (without either it refuses: the embedded store's budgets live
only in the process that uses them). Budgets are set through the
gateway's admin API (``PUT /api/v1/admin/budgets/...``), keys.json or BUDGETS.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from kernel.errors import ConfigError, StoreError
from router.commands.remote_admin import add_remote_options

NO_SHARED_STORE = (
    "no shared store: REDIS_URL is not set, and the embedded store's budgets live only in the "
    "process that uses them. Set REDIS_URL (and REDIS_KEY_PREFIX) to the router's Redis, or ask "
    "a running gateway: --url http://host:port"
)


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "budgets",
        help="every budget: limit, spent, reserved, remaining, when it resets",
        description="List the budgets of REDIS_URL's store and their current period's spend.",
    )
    parser.add_argument("--format", choices=("table", "json"), default="table")
    add_remote_options(parser, "the budgets")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from kernel.log import configure_logging

    configure_logging(level="WARNING", force=True)
    try:
        text = asyncio.run(_remote(args) if args.url else _list(args.format))
    except (ConfigError, ValueError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    except (StoreError, OSError, RuntimeError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    sys.stdout.write(text)
    return 0


async def _list(fmt: str) -> str:
    from kernel.settings import Settings
    from kernel.store import create_store
    from keys.budgets import BudgetBook
    from router.usage_format import format_budgets

    settings = Settings.from_env()
    if settings.uses_embedded_store:
        raise ConfigError(NO_SHARED_STORE)
    store = create_store(settings)
    try:
        await store.check()
        store.require_shared("read the budgets")
        return format_budgets(await BudgetBook(store, store.keys).list(), fmt)
    finally:
        await store.close()


async def _remote(args: argparse.Namespace) -> str:
    from keys.budgets import BudgetStatus
    from router.commands.remote_admin import admin_get
    from router.usage_format import format_budgets

    data = await admin_get(args, "/budgets", {})
    return format_budgets([BudgetStatus(**item) for item in data], args.format)
