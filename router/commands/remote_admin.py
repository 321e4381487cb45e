"""A running gateway's admin API for the commands that can ask one (``--url``): the master key
from ``--master-key`` or ``ROUTER_MASTER_KEY``; an error answer becomes a ValueError with the
gateway's message, an unreachable gateway a RuntimeError."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from typing import Any

ADMIN = "/api/v1/admin"


def add_remote_options(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--url", help=f"a running gateway: read {what} through its admin API")
    parser.add_argument(
        "--master-key",
        help="the gateway's master key (default ROUTER_MASTER_KEY; prefer the variable: "
        "arguments are visible to other users in ps)",
    )


async def admin_get(args: argparse.Namespace, path: str, params: Mapping[str, Any]) -> Any:
    """``data`` of ``GET <url>/api/v1/admin<path>?params`` (None values left out)."""
    import aiohttp

    master = args.master_key or os.environ.get("ROUTER_MASTER_KEY")
    if not master:
        raise ValueError("--url needs the master key: --master-key or ROUTER_MASTER_KEY")
    query = {k: str(v) for k, v in params.items() if v is not None and v != ""}
    headers = {"Authorization": f"Bearer {master}"}
    timeout = aiohttp.ClientTimeout(total=60)
    url = args.url.rstrip("/") + ADMIN + path
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(url, params=query, headers=headers) as response,
        ):
            body = await response.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        raise RuntimeError(f"gateway at {args.url} unreachable: {exc}") from exc
    if response.status >= 400:
        error = body.get("error") if isinstance(body, dict) else None
        message = error.get("message") if isinstance(error, dict) else body
        raise ValueError(f"the gateway answered {response.status}: {message}")
    return body["data"]
