"""Degraded mode under load: 4 router processes at twice the pool's capacity against the
simulator, Redis unreachable at first use, started, killed mid-run and started again.

Every request is answered (degraded ones marked); the simulator's exact per-key windows show no key
over its limit (each process had limit / ROUTER_PROCESSES while degraded); every turn a process
reported saved is in Redis once, and none reported saved is missing.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from collections import Counter
from pathlib import Path

import pytest

from conversation import ConversationStore
from kernel.settings import Settings
from kernel.store import create_store
from router.simulator import ProviderSimulator, SimulatorConfig
from tests.conftest import unique_prefix
from tests.router.degraded_workers import CONVERSATIONS, drive
from tests.router.pool import PoolKey, pool_files
from tests.servers import RedisServer

PROCESSES = 4
SECONDS = 24.0
RPM = 20
MODEL = "gpt-4o-mini"


async def stored_turns(url: str, prefix: str) -> Counter[str]:
    """Every user message of every worker's conversations, as stored in Redis."""
    settings = Settings.from_env({}, REDIS_URL=url, REDIS_KEY_PREFIX=prefix)
    store = create_store(settings)
    conversations = ConversationStore(store, settings=settings)
    found: Counter[str] = Counter()
    try:
        for worker in range(PROCESSES):
            for c in range(CONVERSATIONS):
                for message in await conversations.get_messages(f"w{worker}-{c}"):
                    if message.role == "user":
                        found[str(message.content)] += 1
    finally:
        await store.close()
    return found


@pytest.mark.slow
@pytest.mark.integration
async def test_four_processes_through_redis_outages_answer_everything_within_limits(
    tmp_path: Path,
) -> None:
    keys = [PoolKey(f"k{i}", rpm=RPM, tpm=1_000_000, strict=True) for i in range(4)]
    capacity = len(keys) * RPM  # the most one 60-second window can hold: the test is shorter
    plan = {
        "seconds": SECONDS,
        "rate": 2 * capacity / SECONDS / PROCESSES,  # twice that, within the test
        "processes": PROCESSES,
        "model": MODEL,
    }
    redis = RedisServer(extra=["--appendonly", "yes"])  # not started: unreachable at first use
    sleep = asyncio.sleep
    try:
        async with ProviderSimulator(
            SimulatorConfig(
                keys=[k.sim_key().model_copy(update={"strict": False}) for k in keys],
                completion_tokens=8,
            )
        ) as sim:
            path, env = pool_files(tmp_path, sim, keys)
            prefix = unique_prefix()
            with multiprocessing.get_context("spawn").Pool(PROCESSES) as pool:
                pending = [
                    pool.apply_async(drive, (w, redis.url, prefix, str(path), env, plan))
                    for w in range(PROCESSES)
                ]
                await sleep(6)  # the processes start and serve degraded
                redis.start()
                await sleep(7)
                redis.stop()  # killed mid-run
                await sleep(5)
                redis.start()
                loop = asyncio.get_running_loop()
                results = [await loop.run_in_executor(None, p.get, SECONDS + 120) for p in pending]
            stats = sim.stats()["keys"]
            stored = await stored_turns(redis.url, prefix)
    finally:
        redis.cleanup()
    outcomes: Counter[str] = Counter()
    for result in results:
        outcomes.update(result["outcomes"])
    offered = sum(r["offered"] for r in results)
    assert sum(outcomes.values()) == offered >= 1.9 * capacity  # every request answered
    assert set(outcomes) <= {"success", "rate_limited"}, outcomes
    assert sum(r["degraded"] for r in results) > 0 and sum(r["shared"] for r in results) > 0
    assert all(not r["still_degraded"] and r["transitions"] == 2 for r in results), results
    per_key = {k.key_id: stats[k.key_id][MODEL] for k in keys}
    assert all(s["max_window_requests"] <= RPM for s in per_key.values()), per_key
    saved = Counter(p for r in results for p in r["saved"])
    assert max(saved.values()) == 1
    assert stored == saved  # nothing lost, nothing twice
    print(
        "degraded load:",
        dict(outcomes),
        {k: (s["max_window_requests"], s["rate_limited"]) for k, s in per_key.items()},
        sum(len(r["unsaved"]) for r in results),
    )
