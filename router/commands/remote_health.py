"""``python -m router --health-check --url URL``: probe a running gateway (container probes).

Asks ``URL/health/ready`` and prints its JSON answer; exit 0 when the gateway says it is ready,
1 when it says it is not or cannot be reached (the reason goes to stderr).
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import aiohttp


async def _probe(url: str, seconds: float) -> tuple[bool, Any]:
    target = url.rstrip("/") + "/health/ready"
    limit = aiohttp.ClientTimeout(total=seconds)
    async with aiohttp.ClientSession(timeout=limit) as session, session.get(target) as response:
        try:
            body: Any = await response.json(content_type=None)
        except (json.JSONDecodeError, aiohttp.ContentTypeError):
            body = {"status": response.status, "body": (await response.text())[:500]}
        return response.status == 200, body


def check_gateway(url: str, timeout: float = 5.0) -> int:
    try:
        ready, body = asyncio.run(_probe(url, timeout))
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        sys.stderr.write(f"unhealthy: gateway at {url} unreachable: {exc}\n")
        return 1
    json.dump(body, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")
    if not ready:
        sys.stderr.write(f"unhealthy: gateway at {url} is not ready\n")
        return 1
    return 0
