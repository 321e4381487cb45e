"""Usage records through a Redis outage: a call made while Redis is unreachable (degraded mode) is
recorded on the local store and its record written to Redis when it is back; every call still
leaves exactly one record there, and the records say which calls were degraded."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from kernel.settings import Settings
from kernel.usage_record import UsageRecord
from router.simulator import FaultConfig
from tests.router.pool import PoolKey, sim_router
from tests.servers import RedisServer

MODEL = "gpt-4o-mini"


def settings(url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "REDIS_URL": url,
        "REDIS_TIMEOUT_SECONDS": 0.5,
        "RESERVE_WAIT_SECONDS": 0,
        "REDIS_KEY_PREFIX": "usage-deg",
    }
    values.update(overrides)
    return Settings.from_env({}, **values)


async def until(condition: Any, seconds: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not await condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_records_made_while_redis_is_down_reach_it_when_it_is_back(tmp_path: Path) -> None:
    server = RedisServer(extra=["--appendonly", "yes"]).start()
    raw = aioredis.from_url(server.url)
    try:
        config = settings(server.url)
        faults = FaultConfig(latency_ms=300)
        async with sim_router(config, tmp_path, [PoolKey("a", rpm=600)], faults=faults) as (
            router,
            sim,
        ):
            store = router.key_manager.store
            stream = store.keys.usage_stream
            answers = [await router.send_one_shot("before", MODEL, max_tokens=8, user="u")]
            # reserved on Redis, settled after Redis is gone
            inflight = asyncio.create_task(
                router.send_one_shot("crossing", MODEL, max_tokens=8, user="u")
            )

            async def sent() -> bool:
                return len(sim.requests(key_id="a")) >= 2

            await until(sent)
            server.stop()
            answers.append(await inflight)
            for i in range(3):
                answers.append(await router.send_one_shot(f"during {i}", MODEL, max_tokens=8))
            assert store.degraded
            server.start()

            async def back() -> bool:
                return not store.degraded

            await until(back)
            answers.append(await router.send_one_shot("after", MODEL, max_tokens=8))
            await router.flush()

            async def all_recorded() -> bool:
                return int(await raw.xlen(stream)) >= len(answers)

            await until(all_recorded)
            entries = await raw.xrange(stream)
    finally:
        await raw.aclose()
        server.cleanup()
    records = {r.request_id: r for r in (UsageRecord.from_json(f[b"r"]) for _, f in entries)}
    assert len(entries) == len(answers) == 6
    assert all(a["success"] for a in answers)
    assert set(records) == {a["request_id"] for a in answers}
    degraded = [records[a["request_id"]].degraded for a in answers]
    assert degraded == [a["degraded"] for a in answers]
    assert degraded == [False, False, True, True, True, False]
    assert all(records[a["request_id"]].cost == a["cost"] for a in answers)
