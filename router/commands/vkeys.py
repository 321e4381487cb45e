"""``python -m router vkeys create|list|revoke``: manage the gateway's virtual keys.

Directly in the store named by ``REDIS_URL`` (the gateway reads the same records), or through a
running gateway's admin API with ``--url`` (the master key from ``--master-key`` or
``ROUTER_MASTER_KEY``). The embedded store is refused: keys written there would vanish with this
process. ``create`` prints the new key once; only its SHA-256 is stored.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any

from kernel.errors import ClientRequestError, ConfigError, StoreError

DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "vkeys",
        help="create, list and revoke the gateway's virtual keys",
        description="Manage virtual keys in REDIS_URL's store, or through a gateway with --url.",
    )
    parser.add_argument("--url", help="a running gateway: use its admin API (needs the master key)")
    parser.add_argument(
        "--master-key",
        help="the gateway's master key (default ROUTER_MASTER_KEY; prefer the variable: "
        "arguments are visible to other users in ps)",
    )
    actions = parser.add_subparsers(dest="action", metavar="action", required=True)
    create = actions.add_parser("create", help="create a key and print it (shown once)")
    create.add_argument("--name", default="", help="a label for people")
    create.add_argument("--user", dest="user_id", help="the user the per-user limit counts")
    create.add_argument(
        "--models", default="", help="allowed models, comma separated (globs allowed; default all)"
    )
    create.add_argument("--rpm", type=int, help="the key's own requests-per-minute budget")
    create.add_argument("--tpm", type=int, help="the key's own tokens-per-minute budget")
    create.add_argument(
        "--tag", action="append", default=[], metavar="K=V", help="serve only with keys so tagged"
    )
    create.add_argument("--expires-in", help="lifetime: seconds, or 30m, 12h, 90d")
    create.add_argument("--team", help="the team its calls count for (usage, team budgets)")
    create.add_argument("--budget", type=float, metavar="USD", help="a USD budget of its own")
    create.add_argument("--budget-period", choices=("day", "month"), default="month")
    create.add_argument("--budget-timezone", default="UTC", help="the budget's calendar (IANA)")
    listing = actions.add_parser("list", help="list keys (never the keys themselves)")
    listing.add_argument("--json", action="store_true", help="print JSON")
    revoke = actions.add_parser("revoke", help="revoke a key everywhere at once")
    revoke.add_argument("id", help="the key's id (vk-...)")
    parser.set_defaults(handler=run)


def parse_duration(text: str) -> float:
    """Seconds of ``90``, ``30m``, ``12h`` or ``90d``; ValueError naming the value otherwise."""
    value = text.strip().lower()
    unit = DURATION_UNITS.get(value[-1:], 0)
    number = value[:-1] if unit else value
    try:
        seconds = float(number) * (unit or 1)
    except ValueError:
        raise ValueError(
            f"--expires-in {text!r}: expected seconds or a number with s, m, h or d"
        ) from None
    if seconds <= 0:
        raise ValueError(f"--expires-in {text!r}: must be positive")
    return seconds


def spec_of(args: argparse.Namespace) -> dict[str, Any]:
    spec: dict[str, Any] = {"name": args.name}
    if args.user_id:
        spec["user_id"] = args.user_id
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    if models:
        spec["models"] = models
    for name in ("rpm", "tpm"):
        if getattr(args, name) is not None:
            spec[name] = getattr(args, name)
    tags = {}
    for item in args.tag:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--tag {item!r}: expected KEY=VALUE")
        tags[key] = value
    if tags:
        spec["tags"] = tags
    if args.expires_in:
        spec["expires_in"] = parse_duration(args.expires_in)
    if args.team:
        spec["team"] = args.team
    if args.budget is not None:
        spec["budget_usd"] = args.budget
        spec["budget_period"] = args.budget_period
        spec["budget_timezone"] = args.budget_timezone
    return spec


def run(args: argparse.Namespace) -> int:
    from kernel.log import configure_logging

    configure_logging(level="WARNING", force=True)
    try:
        spec = spec_of(args) if args.action == "create" else None
        runner = _remote if args.url else _local
        result = asyncio.run(runner(args, spec))
    except (ValueError, ConfigError, ClientRequestError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    except (StoreError, OSError, RuntimeError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    _print(args, result)
    return 0


def _print(args: argparse.Namespace, result: Any) -> None:
    if args.action == "list" and not args.json:
        rows = [
            f"{k['id']}  {k['key_hint']}  user={k['user_id'] or '-'}  "
            f"models={','.join(k['models']) or '*'}  rpm={k['rpm'] or '-'}  tpm={k['tpm'] or '-'}"
            f"{'  REVOKED' if k['revoked'] else ''}  {k['name']}"
            for k in result
        ]
        sys.stdout.write("\n".join(rows) + ("\n" if rows else "(no virtual keys)\n"))
        return
    json.dump(result, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")
    if args.action == "create":
        sys.stderr.write("Store this key now: it is not shown again.\n")


async def _local(args: argparse.Namespace, spec: dict[str, Any] | None) -> Any:
    from kernel.settings import Settings
    from kernel.store import create_store
    from router.gateway.vkeys import VirtualKeySpec, VirtualKeyStore

    settings = Settings.from_env()
    if settings.uses_embedded_store:
        raise ConfigError(
            "REDIS_URL is not set: keys written to the embedded store would vanish with this "
            "process. Set REDIS_URL to the gateway's Redis, or use --url with a running gateway.",
            source="environment",
            field="REDIS_URL",
        )
    store = create_store(settings)
    try:
        vkeys = VirtualKeyStore(store)
        if args.action == "create":
            key, secret = await vkeys.create(VirtualKeySpec.parse(spec))
            return {**key.public(), "key": secret}
        if args.action == "list":
            return [k.public() for k in await vkeys.list()]
        revoked = await vkeys.revoke(args.id)
        if revoked is None:
            raise ValueError(f"no virtual key has the id {args.id!r}")
        return revoked.public()
    finally:
        await store.close()


async def _remote(args: argparse.Namespace, spec: dict[str, Any] | None) -> Any:
    import aiohttp

    master = args.master_key or os.environ.get("ROUTER_MASTER_KEY")
    if not master:
        raise ValueError("--url needs the master key: --master-key or ROUTER_MASTER_KEY")
    base = args.url.rstrip("/") + "/api/v1/admin/vkeys"
    headers = {"Authorization": f"Bearer {master}"}
    method, url = {"create": ("POST", base), "list": ("GET", base)}.get(
        args.action, ("DELETE", f"{base}/{getattr(args, 'id', '')}")
    )
    timeout = aiohttp.ClientTimeout(total=30)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.request(method, url, json=spec, headers=headers) as response,
        ):
            body = await response.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise RuntimeError(f"gateway at {args.url} unreachable: {exc}") from exc
    if response.status >= 400:
        message = (body.get("error") or {}).get("message") if isinstance(body, dict) else body
        raise ValueError(f"the gateway answered {response.status}: {message}")
    return body["data"]
