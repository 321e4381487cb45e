"""A router process offering chat turns at a fixed rate through Redis outages (spawned by
tests/router/test_degraded_load.py)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

from kernel.settings import Settings
from keys.manager import KeyManager
from router.request_router import RequestRouter

#: Conversations each process spreads its turns over.
CONVERSATIONS = 3
#: Longest a process waits at the end for Redis to take its buffered turns.
DRAIN_SECONDS = 20.0


async def _drive(
    worker: int,
    redis_url: str,
    prefix: str,
    keys_path: str,
    env: dict[str, str],
    plan: dict[str, Any],
) -> dict[str, Any]:
    settings = Settings.from_env(
        {},
        REDIS_URL=redis_url,
        REDIS_KEY_PREFIX=prefix,
        REDIS_TIMEOUT_SECONDS=0.5,
        RESERVE_WAIT_SECONDS=0,
        ROUTER_PROCESSES=plan["processes"],
    )
    manager = KeyManager(key_store_path=keys_path, settings=settings, environ=env)
    outcomes: Counter[str] = Counter()
    degraded: Counter[bool] = Counter()
    saved: list[str] = []
    unsaved: list[str] = []
    async with RequestRouter(manager, settings=settings) as router:

        async def one(i: int) -> None:
            prompt = f"w{worker} t{i}"
            answer = await router.send_chat(f"w{worker}-{i % CONVERSATIONS}", prompt, plan["model"])
            outcomes["success" if answer["success"] else str(answer["error_type"])] += 1
            degraded[bool(answer["degraded"])] += 1
            if answer["success"]:
                (saved if answer["conversation_saved"] else unsaved).append(prompt)

        tasks = []
        started = time.monotonic()
        i = 0
        while time.monotonic() - started < plan["seconds"]:
            tasks.append(asyncio.create_task(one(i)))
            i += 1
            # the scenario: calls arrive at a fixed rate (open loop), whatever they take
            await asyncio.sleep(max(0.0, started + i / plan["rate"] - time.monotonic()))
        await asyncio.gather(*tasks)
        store = manager.store
        deadline = time.monotonic() + DRAIN_SECONDS
        while store.degraded and time.monotonic() < deadline:  # noqa: ASYNC110 - another process
            await asyncio.sleep(0.05)
        failover = store.failover
        report = {
            "offered": i,
            "outcomes": dict(outcomes),
            "degraded": degraded[True],
            "shared": degraded[False],
            "saved": saved,
            "unsaved": unsaved,
            "still_degraded": store.degraded,
            "transitions": failover.transitions if failover else 0,
        }
    return report


def drive(
    worker: int,
    redis_url: str,
    prefix: str,
    keys_path: str,
    env: dict[str, str],
    plan: dict[str, Any],
) -> dict[str, Any]:
    """Offer ``plan["rate"]`` chat turns/s for ``plan["seconds"]``; what happened to them."""
    return asyncio.run(_drive(worker, redis_url, prefix, keys_path, env, plan))
