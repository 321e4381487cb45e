"""A router process sending concurrent calls that count against one budget (spawned by
tests/router/test_budget_processes.py). Every process starts its calls at the same wall time."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from kernel.settings import Settings
from keys.manager import KeyManager
from router.request_router import RequestRouter


async def _drive(
    redis_url: str,
    prefix: str,
    keys_path: str,
    env: dict[str, str],
    budgets: str,
    calls: int,
    start_at: float,
    model: str,
    shards: int = 1,
) -> list[dict[str, Any]]:
    settings = Settings.from_env(
        {},
        REDIS_URL=redis_url,
        REDIS_KEY_PREFIX=prefix,
        POOL_SHARDS=shards,
        RESERVE_WAIT_SECONDS=0,
        BUDGETS=budgets,
    )
    manager = KeyManager(key_store_path=keys_path, settings=settings, environ=env)
    async with RequestRouter(manager, settings=settings) as router:
        await asyncio.sleep(max(0.0, start_at - time.time()))
        answers = await asyncio.gather(
            *(
                router.send_one_shot(f"budget call {i}", model, max_tokens=64, user="alice")
                for i in range(calls)
            )
        )
    return [
        {
            "success": a["success"],
            "error_type": a["error_type"],
            "cost": a["cost"],
            "retry_after": a["retry_after"],
            "request_id": a["request_id"],
        }
        for a in answers
    ]


def drive(
    redis_url: str,
    prefix: str,
    keys_path: str,
    env: dict[str, str],
    budgets: str,
    calls: int,
    start_at: float,
    model: str,
    shards: int = 1,
) -> list[dict[str, Any]]:
    """``calls`` concurrent send_one_shot calls for user alice; their answers' essentials
    (``shards``: POOL_SHARDS)."""
    return asyncio.run(
        _drive(redis_url, prefix, keys_path, env, budgets, calls, start_at, model, shards)
    )
