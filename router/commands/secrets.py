"""``python -m router secrets check [--keys PATH] [--key ID ...] [--json]``.

For every configured key (keys.json, provider variables, and keys discovered from keys.json's
``sources``), reads the secret from its store and reports ``found``, ``missing`` or ``error`` with
the cause, never the value (a fingerprint tells two secrets apart). Exit status: 0 when every
active key has its secret, 1 when one is missing or unreadable, 2 for a configuration error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from kernel.errors import ConfigError, SecretStoreError
from kernel.log import configure_logging


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser("secrets", help="secret store tools (secrets check)")
    actions = parser.add_subparsers(dest="secrets_command", metavar="action", required=True)
    check = actions.add_parser(
        "check",
        help="report each key's secret as found / missing without printing it",
        description="Read every configured key's secret from its store; print found/missing/error.",
    )
    check.add_argument("--keys", metavar="PATH", default=argparse.SUPPRESS, help="keys.json to use")
    check.add_argument(
        "--key", action="append", dest="key_ids", metavar="ID", help="check only this key id"
    )
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    check.set_defaults(handler=run_secrets_check)


def run_secrets_check(args: argparse.Namespace) -> int:
    configure_logging(level="WARNING", force=True)
    try:
        report = asyncio.run(secrets_report(getattr(args, "keys", None), args.key_ids))
    except (ConfigError, SecretStoreError) as exc:
        sys.stderr.write(f"secrets check: {exc}\n")
        return 2
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        _print_table(report)
    return 0 if report["ok"] else 1


async def secrets_report(keys_path: str | None, key_ids: list[str] | None = None) -> dict[str, Any]:
    """The report of ``secrets check`` as a JSON-ready dict with ``ok``."""
    from kernel.settings import Settings
    from keys.config import load_key_config
    from keys.discovery import KeyDiscovery, load_sources
    from keys.secret_store import create_secret_store, describe_secret_access

    settings = Settings.from_env()
    config = load_key_config(keys_path, settings=settings)
    store = create_secret_store(settings)
    report: dict[str, Any] = {"backend": store.backend, "keys": [], "sources": []}
    try:
        report["store"] = await store.health_check()
        wanted = set(key_ids or [])
        for key in config.keys:
            if not wanted or key.key_id in wanted:
                report["keys"].append(await describe_secret_access(store, key))
        sources = load_sources(config.path) if config.path else []
        for index, source in enumerate(sources):
            entry: dict[str, Any] = {"path": source.path, "provider": source.provider}
            try:
                found = await KeyDiscovery(store, [source]).discover()
            except SecretStoreError as exc:
                entry.update(ok=False, keys=0, cause=exc.cause, detail=str(exc))
            else:
                entry.update(ok=bool(found), keys=len(found), key_ids=[k.key_id for k in found])
                if not found:
                    entry.update(cause="not_found", detail=f"no secrets in {source.path}")
            entry["index"] = index
            report["sources"].append(entry)
    finally:
        await store.close()
    report["ok"] = all(k["status"] == "found" for k in report["keys"] if k["active"]) and all(
        s["ok"] for s in report["sources"]
    )
    return report


def _print_table(report: dict[str, Any]) -> None:
    out = sys.stdout
    store = report.get("store") or {}
    state = "ok" if store.get("ok") else f"NOT OK: {store.get('error')}"
    out.write(f"secret store: {report['backend']} ({state})\n")
    rows = [("KEY", "ACTIVE", "STATUS", "WHERE / WHY")]
    for k in report["keys"]:
        why = k["location"] if k["status"] == "found" else (k["detail"] or k["location"])
        tail = f"  [{k['fingerprint']}]" if k["fingerprint"] else ""
        rows.append((k["key_id"], "yes" if k["active"] else "no", k["status"], why + tail))
    width = [max(len(r[i]) for r in rows) for i in range(3)]
    for row in rows:
        out.write(
            "  ".join(col.ljust(width[i]) for i, col in enumerate(row[:3])) + "  " + row[3] + "\n"
        )
    for s in report["sources"]:
        status = f"{s['keys']} key(s)" if s["ok"] else f"FAILED: {s.get('detail', '')}"
        out.write(f"source {s['path']} ({s['provider']}): {status}\n")
    missing = sum(1 for k in report["keys"] if k["active"] and k["status"] != "found")
    out.write(
        f"{len(report['keys'])} key(s) checked, {missing} active key(s) without a readable secret\n"
    )
