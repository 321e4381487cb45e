"""Budgets through a real Redis outage (redis-server killed and restarted): while degraded, each
process enforces its share (ROUTER_PROCESSES) of what its budgets had left at its last read, and
refuses past it with ``budget_exceeded``; when Redis is back, the shared spend counts every served
call's cost exactly once (calls served meanwhile are charged by their records' replay). A
reservation made on Redis and settled during the outage stays there at its estimate. A process
that starts without Redis divides the configured budgets (it never read what was spent)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from kernel.prices import default_table
from kernel.settings import Settings
from lua.usage_records import NANOS, BudgetRecord, SpendRecord, budget_field
from router.request_router import RequestRouter
from router.simulator import FaultConfig
from tests.router.pool import PoolKey, sim_router
from tests.servers import RedisServer, free_port

MODEL = "gpt-4o-mini"
USER = budget_field("user", "u")


def settings(url: str, budget_nanos: int, processes: int = 2) -> Settings:
    budgets = {"user:u": {"limit_usd": budget_nanos / NANOS, "period": "day"}}
    return Settings.from_env(
        {},
        REDIS_URL=url,
        REDIS_TIMEOUT_SECONDS=0.5,
        RESERVE_WAIT_SECONDS=0,
        REDIS_KEY_PREFIX="budget-deg",
        ROUTER_PROCESSES=processes,
        BUDGETS=json.dumps(budgets),
    )


async def until(condition: Any, seconds: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not await condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def shared_spend(url: str, router: RequestRouter) -> SpendRecord:
    """The spend record on Redis itself (a connection of its own: Redis restarts meanwhile)."""
    raw = aioredis.from_url(url, decode_responses=True)
    try:
        value = await raw.hget(router.key_manager.store.keys.budget_spend, USER)
        return SpendRecord.decode(None if value is None else str(value))
    finally:
        await raw.aclose()


async def local_record(router: RequestRouter, name: str) -> str:
    failover = router.key_manager.store.failover
    assert failover is not None
    return str(await failover.local.client.hget(name, USER))


async def call(router: RequestRouter, user: str = "u") -> dict[str, Any]:
    return dict(await router.send_one_shot("same prompt", MODEL, max_tokens=16, user=user))


def cost(answers: list[dict[str, Any]]) -> int:
    return sum(round(a["cost"] * NANOS) for a in answers if a["success"])


async def test_degraded_processes_spend_their_share_and_every_cost_is_counted_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("keys.pool.BUDGET_ZONES_SECONDS", 0.0)  # read budgets at every request
    server = RedisServer(extra=["--appendonly", "yes"]).start()
    per_call = default_table().worst_case_nanos(MODEL, 20, 16)
    assert per_call is not None
    limit = 12 * per_call  # a dozen calls' worst case: about half of it is left for the outage
    try:
        faults = FaultConfig(latency_ms=200)
        config = settings(server.url, limit)
        async with sim_router(config, tmp_path, [PoolKey("a", rpm=6000)], faults=faults) as (
            router,
            sim,
        ):
            store, pool = router.key_manager.store, router.key_manager.pool
            before = [await call(router) for _ in range(3)]
            crossing = asyncio.create_task(call(router))  # reserved on Redis, settled without it

            async def sent() -> bool:
                return len(sim.requests(key_id="a")) >= 4

            await until(sent)
            estimate = (await shared_spend(server.url, router)).reserved
            assert estimate > 0 and (await shared_spend(server.url, router)).spent == cost(before)
            await pool.ready()  # the budgets' last read: 3 calls spent, 1 reserved
            read = pool.local_budgets.snapshot
            assert read is not None and read[USER][1].used == cost(before) + estimate
            server.stop()
            before.append(await crossing)
            during = [await call(router) for _ in range(20)]
            assert store.degraded
            await router.flush()  # the degraded calls' settles landed on the local store
            share = (limit - cost(before[:3]) - estimate) // 2
            local_budget = BudgetRecord.decode(await local_record(router, store.keys.budgets))
            local = SpendRecord.decode(await local_record(router, store.keys.budget_spend))
            other = await call(router, user="v")  # no budget: served
            server.start()

            async def back() -> bool:
                return not store.degraded

            await until(back)
            after = [await call(router) for _ in range(2)]
            await router.flush()
            shared = await shared_spend(server.url, router)
    finally:
        server.cleanup()
    served = [a for a in during if a["success"]]
    refused = [a for a in during if not a["success"]]
    assert all(a["success"] for a in [*before, *after, other])
    assert served and refused and during == served + refused  # refused from the first on
    assert {a["error_type"] for a in refused} == {"budget_exceeded"}
    assert all(a["degraded"] for a in during)
    # each process's share of what was left at the last read; spent locally within it
    assert local_budget.limit_nanos == share
    assert local.spent == cost(served) <= share and local.reserved == 0
    assert cost(served) + estimate > share  # the next call's worst case did not fit
    # every served call's cost counted once on Redis, but the crossing one's: its reservation
    # stays at its estimate (it expired there; its settle found nothing on the local store)
    assert shared.spent == cost([*before[:3], *served, *after])
    assert shared.reserved == estimate
    assert shared.requests == len(before) + len(served) + len(after)


async def test_a_call_that_meets_the_outage_first_is_checked_against_the_budgets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("keys.pool.BUDGET_ZONES_SECONDS", 0.0)
    server = RedisServer().start()
    try:
        config = settings(server.url, 10**9)
        async with sim_router(config, tmp_path, [PoolKey("a", rpm=6000)]) as (router, _):
            store, pool = router.key_manager.store, router.key_manager.pool
            first = await call(router)
            used = SpendRecord.decode(await store.client.hget(store.keys.budget_spend, USER))
            per_call = used.spent  # the same prompt again costs the same
            # 1.5 calls left: one would fit, but not in this process's half
            await pool.budgets.set(USER, BudgetRecord(used.spent + per_call * 3 // 2, "day"))
            await pool.ready()
            server.stop()
            # nothing in flight: the next call's own reads and reserve meet the outage
            refused = await call(router)
            other = await call(router, user="v")
            assert store.degraded
    finally:
        server.cleanup()
    assert first["success"] and other["success"] and other["degraded"]
    assert not refused["success"] and refused["error_type"] == "budget_exceeded"


@pytest.mark.parametrize("processes", [1, 2])
async def test_a_process_started_without_redis_divides_the_configured_budgets(
    tmp_path: Path, processes: int
) -> None:
    """It never read what was spent: each process gets its share of the configured limits."""
    limit = default_table().worst_case_nanos(MODEL, 20, 16)  # one call fits, not half of one
    assert limit is not None
    config = settings(f"redis://127.0.0.1:{free_port()}/0", limit, processes)  # nobody listens
    async with sim_router(config, tmp_path, [PoolKey("a", rpm=6000)]) as (router, _):
        answer = await call(router)
        other = await call(router, user="v")
        assert router.key_manager.store.degraded
    assert answer["degraded"] and other["success"]
    if processes == 1:
        assert answer["success"]
    else:
        assert answer["error_type"] == "budget_exceeded"
