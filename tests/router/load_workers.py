"""A router process offering load at a fixed rate (spawned by the load tests and benchmarks)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

from kernel.settings import Settings
from keys.manager import KeyManager
from router.request_router import RequestRouter


async def _drive(
    redis_url: str,
    prefix: str,
    keys_path: str,
    env: dict[str, str],
    seconds: float,
    rate: float,
    model: str,
) -> dict[str, Any]:
    settings = Settings.from_env(
        {}, REDIS_URL=redis_url, REDIS_KEY_PREFIX=prefix, RESERVE_WAIT_SECONDS=0
    )
    manager = KeyManager(key_store_path=keys_path, settings=settings, environ=env)
    outcomes: Counter[str] = Counter()
    async with RequestRouter(manager, settings=settings) as router:

        async def one(i: int) -> None:
            answer = await router.send_one_shot(f"load {i}", model, max_tokens=16)
            outcomes["success" if answer["success"] else str(answer["error_type"])] += 1

        tasks = []
        started = time.monotonic()
        i = 0
        while time.monotonic() - started < seconds:
            tasks.append(asyncio.create_task(one(i)))
            i += 1
            # the scenario: calls arrive at a fixed rate (open loop), whatever they take
            await asyncio.sleep(max(0.0, started + i / rate - time.monotonic()))
        await asyncio.gather(*tasks)
    return {"offered": i, "outcomes": dict(outcomes)}


def drive(
    redis_url: str,
    prefix: str,
    keys_path: str,
    env: dict[str, str],
    seconds: float,
    rate: float,
    model: str,
) -> dict[str, Any]:
    """Offer ``rate`` requests/s for ``seconds`` through a RequestRouter; outcome counts."""
    return asyncio.run(_drive(redis_url, prefix, keys_path, env, seconds, rate, model))
