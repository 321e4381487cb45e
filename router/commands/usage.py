"""``python -m router usage [--since 1h] [--by model]`` and ``usage export``: read the usage log.

A summary for a period grouped by key, model, user, virtual key or team (from the per-minute
rollups), as an aligned table, CSV or JSON; ``export`` streams the raw records as JSON lines,
oldest first, a page at a time. Both read the store named by ``REDIS_URL``, or ask a running
gateway's admin API with ``--url``. Without either the command refuses: the embedded store's
usage log lives only in the process that made the calls.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Any

from kernel.errors import ClientRequestError, ConfigError, StoreError
from router.commands.remote_admin import add_remote_options
from router.usage_export import FILTERS
from router.usage_format import FORMATS
from router.usage_report import GROUPS

NO_SHARED_STORE = (
    "no shared store: REDIS_URL is not set, and the embedded store's usage log lives only in the "
    "process that made the calls. Set REDIS_URL (and REDIS_KEY_PREFIX) to the router's Redis, "
    "or ask a running gateway: --url http://host:port"
)


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "usage",
        help="usage summary for a period (by key, model, user, vkey, team); export raw records",
        description="Summarise the usage log of REDIS_URL's store, or export its records.",
    )
    _window(parser, "1h")
    parser.add_argument("--by", choices=GROUPS, default="model", help="group by (default model)")
    parser.add_argument("--format", choices=FORMATS, default="table", help="output format")
    add_remote_options(parser, "the usage log")
    actions = parser.add_subparsers(dest="action", metavar="action")
    export = actions.add_parser(
        "export", help="stream the raw records as JSON lines (oldest first)"
    )
    _window(export, None)
    for name in FILTERS:
        export.add_argument(f"--{name.replace('_', '-')}", dest=name, help=f"only this {name}")
    parser.set_defaults(handler=run)


def _window(parser: argparse.ArgumentParser, since: str | None) -> None:
    default = f"(default {since})" if since else "(default: every record kept)"
    parser.add_argument(
        "--since", help=f"start: 30m, 1h, 7d back from now, an ISO time or unix seconds {default}"
    )
    parser.add_argument("--until", help="end, in the same forms (default now)")


def run(args: argparse.Namespace) -> int:
    from kernel.log import configure_logging

    configure_logging(level="WARNING", force=True)
    try:
        asyncio.run(_remote(args) if args.url else _main(args))
    except BrokenPipeError:  # the reader stopped (``| head``): not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (ClientRequestError, ConfigError, ValueError) as exc:
        sys.stderr.write(f"error: {_option(exc)}\n")
        return 2
    except (StoreError, OSError, RuntimeError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    return 0


def _option(exc: Exception) -> str:
    """The message, naming the command-line option (``--since``) rather than the parameter."""
    param = getattr(exc, "param", None)
    text = str(exc)
    if param and text.startswith(param):
        return f"--{param.replace('_', '-')}{text[len(param) :]}"
    return text


async def _main(args: argparse.Namespace) -> None:
    from kernel.settings import Settings
    from kernel.store import create_store

    settings = Settings.from_env()
    if settings.uses_embedded_store:
        raise ConfigError(NO_SHARED_STORE)
    store = create_store(settings)
    try:
        await store.check()
        store.require_shared("read the usage log")
        if args.action == "export":
            await _export(store, args)
        else:
            await _summary(store, args)
    finally:
        await store.close()


async def _summary(store: Any, args: argparse.Namespace) -> None:
    from router.usage_format import format_summary
    from router.usage_report import summary, time_window

    since, until = time_window(args.since, args.until, await store.server_time())
    report = await summary(store, store.keys, since, until, args.by)
    sys.stdout.write(format_summary(report, args.format))


async def _export(store: Any, args: argparse.Namespace) -> None:
    from router.usage_export import export
    from router.usage_report import time_window

    now = await store.server_time()
    since, until = time_window(args.since, args.until, now, default_since=None)
    filters = {name: getattr(args, name) for name in FILTERS}
    out = sys.stdout
    async for line in export(store, store.keys, since, until, filters):
        out.write(line + "\n")
    out.flush()


async def _remote(args: argparse.Namespace) -> None:
    """The same, through a gateway's admin API."""
    from kernel import jsonio
    from router.commands.remote_admin import admin_get
    from router.usage_format import format_summary
    from router.usage_report import UsageRow, UsageSummary

    window = {"since": args.since, "until": args.until}
    if args.action != "export":
        data = await admin_get(args, "/usage", {**window, "by": args.by})
        rows = [UsageRow(**row) for row in data["rows"]]
        report = UsageSummary(
            data["since"], data["until"], data["by"], rows, UsageRow(**data["total"])
        )
        sys.stdout.write(format_summary(report, args.format))
        return
    query: dict[str, Any] = {**window, "limit": 1000, **{n: getattr(args, n) for n in FILTERS}}
    while True:
        page = await admin_get(args, "/usage/records", query)
        for item in page["records"]:
            item.pop("id", None)
            sys.stdout.write(jsonio.dumps(item).decode() + "\n")
        if page["next_cursor"] is None:
            break
        query["cursor"] = page["next_cursor"]
    sys.stdout.flush()
