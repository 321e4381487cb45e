"""Thousands of random model names through the library (RequestRouter over the simulator, real
Redis): the pool's store footprint and the router's caches stay flat (issue 13, item 5)."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

import pytest

from keys.engine import SERVING_CACHE_MODELS
from tests.conftest import settings_for
from tests.keys.test_bounded_names import pool_footprint
from tests.router.pool import PoolKey, sim_router

NAMES = 3000
BATCH = 25


async def test_random_names_through_send_one_shot_leave_store_and_caches_flat(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    keys = [
        PoolKey("a", models=["gpt-4o-mini", "gpt-4o*"]),
        PoolKey("b", models=["gpt-4o*"], extra={"priority": 2}),
    ]
    settings = settings_for("redis", request, RESERVE_WAIT_SECONDS=0)
    async with sim_router(settings, tmp_path, keys) as (router, _sim):
        engine, manager = router.key_manager.engine, router.key_manager

        async def send(count: int) -> None:
            for start in range(0, count, BATCH):
                names = ["gpt-4o-" + secrets.token_hex(6) for _ in range(min(BATCH, count - start))]
                answers = await asyncio.gather(
                    *(router.send_one_shot("hi", model_preference=name) for name in names)
                )
                assert [a["model"] for a in answers] == names
                assert all(a["success"] for a in answers), answers

        await send(10)
        footprint = await pool_footprint(engine)
        await send(NAMES - 10)
        assert await pool_footprint(engine) == footprint
    assert sorted(engine._layouts) == ["gpt-4o*#openai", "gpt-4o-mini"]
    for cache in (engine._serving, engine._index, engine._bindings, manager.pool.strategies):
        assert len(cache) <= SERVING_CACHE_MODELS
