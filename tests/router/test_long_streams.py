"""Streams that outlive the reservation TTL (issue 13, item 8): the reservation is kept alive while
the stream runs and settled with the stream's real usage; the extender ends with the stream.

The simulator paces the stream (``stream_chunk_delay_ms``); the engine's TTL is set to one second
(the setting's lower bound is 10 s, the engine takes any TTL), so a stream of a few seconds
outlives its reservation several times over.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from kernel.settings import Settings
from router.keepalive import TASK_PREFIX
from router.request_router import RequestRouter
from router.simulator import FaultConfig
from tests.conftest import settings_for, unique_prefix
from tests.helpers import eventually, local_stores
from tests.router.pool import PoolKey, sim_router
from tests.servers import AOF, RedisServer

TTL = 1
#: 6 content chunks (24 completion tokens, 4 per chunk), each followed by this pause: ~3 s.
CHUNK_DELAY_MS = 500
MODEL = "gpt-4o-mini"


def settings(request: pytest.FixtureRequest, **overrides: Any) -> Any:
    callspec = getattr(request.node, "callspec", None)
    kind = callspec.params.get("store", "redis") if callspec else "redis"
    overrides.setdefault("RESERVE_WAIT_SECONDS", 0)
    return settings_for(kind, request, **overrides)


def slow_pool() -> list[PoolKey]:
    return [PoolKey("slow", rpm=100, tpm=100_000)]


def slow_faults(delay_ms: float = CHUNK_DELAY_MS) -> FaultConfig:
    return FaultConfig(stream_chunk_delay_ms=delay_ms)


def keepers() -> list[asyncio.Task[Any]]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith(TASK_PREFIX) and not t.done()]


async def reservations(router: RequestRouter) -> dict[str, dict[str, str]]:
    """Every reservation record in the store, by its Redis key (once the settles landed)."""
    await router.flush()
    store = router.key_manager.store
    out = {}
    async for name in store.client.scan_iter(match=store.keys.reservation("*")):
        out[name] = await store.client.hgetall(name)
    return out


async def until(check: Any, seconds: float = 15.0) -> None:
    for _ in range(int(seconds / 0.02)):
        if await check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"condition not met within {seconds}s")


@local_stores
async def test_a_stream_longer_than_the_ttl_settles_with_its_real_usage(
    request: pytest.FixtureRequest, tmp_path: Path, store: Any
) -> None:
    async with sim_router(settings(request), tmp_path, slow_pool(), faults=slow_faults()) as (
        router,
        sim,
    ):
        router.key_manager.engine.reservation_ttl = TTL
        started = time.monotonic()
        events = [e async for e in router.stream_one_shot("a long story please", MODEL)]
        lasted = time.monotonic() - started
        records = await reservations(router)
        stats = await router.key_manager.engine.stats("slow")
        status = await router.key_manager.get_key_status("slow")
        admitted = sim.usage("slow", MODEL)
    done = events[-1]
    assert done["success"] and lasted > 2 * TTL  # the stream outlived its reservation's TTL
    total = done["tokens"]["total"]
    assert total == admitted["admitted_tokens"]  # the provider's own count
    [record] = records.values()
    assert record["state"] == "settled" and int(record["actual"]) == total
    assert stats["successes"] == 1 and stats["tokens"] == total
    # the estimate (~540 tokens) was refunded down to the usage; "used" is the sliding-minute
    # estimate, which weighs the previous minute's count down when the stream crossed a minute
    used = status["tpm_usage"]["used"]
    assert 0.9 * total <= used <= total
    assert not keepers()


async def _consume(events: AsyncIterator[dict[str, Any]], seen: asyncio.Event) -> None:
    async for event in events:
        if event["type"] == "delta":
            seen.set()


@local_stores
@pytest.mark.parametrize("leave", ["cancel", "aclose", "drop"])
async def test_a_consumer_that_leaves_mid_stream_stops_the_extender(
    request: pytest.FixtureRequest, tmp_path: Path, store: Any, leave: str
) -> None:
    """However the consumer leaves (its task cancelled, the stream closed, the generator
    dropped), the extension task ends and the reservation, alive past its TTL, is settled."""
    # a TTL of 2 s (extended every 2/3 s) and chunks 2.2 s apart: a loaded machine delaying the
    # extender or the settle by a second still leaves the reservation alive
    async with sim_router(settings(request), tmp_path, slow_pool(), faults=slow_faults(2200)) as (
        router,
        _sim,
    ):
        router.key_manager.engine.reservation_ttl = 2 * TTL
        events = router.stream_one_shot("a long story please", MODEL)
        first = await anext(events)
        assert first["type"] == "delta" and len(keepers()) == 1
        await anext(events)  # one more chunk: a second later, past the TTL
        if leave == "cancel":
            task = asyncio.create_task(_consume(events, asyncio.Event()))
            # the consumer is inside the stream, waiting for its next chunk (a second away)
            await eventually(lambda: events.ag_running)  # type: ignore[attr-defined]
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        elif leave == "aclose":
            await events.aclose()  # type: ignore[attr-defined]
        else:
            del events
            gc.collect()  # asyncio's finaliser closes the generator in a task of its own

        async def settled() -> bool:
            records = list((await reservations(router)).values())
            return bool(records) and records[0].get("state") == "settled"

        await until(lambda: _true(not keepers()))
        await until(settled)
        stats = await router.key_manager.engine.stats("slow")
    assert stats["successes"] == 0 and stats["requests"] == 1


async def _true(value: bool) -> bool:
    return value


@local_stores
async def test_a_consumer_that_stops_reading_lets_the_reservation_go_after_a_ttl(
    request: pytest.FixtureRequest, tmp_path: Path, store: Any
) -> None:
    """A consumer that keeps the stream open but never asks for the next event does not hold
    capacity forever: after a whole TTL idle the extender ends and the reservation expires."""
    async with sim_router(settings(request), tmp_path, slow_pool(), faults=slow_faults(200)) as (
        router,
        _sim,
    ):
        router.key_manager.engine.reservation_ttl = TTL
        events = router.stream_one_shot("a long story please", MODEL)
        await anext(events)
        assert len(keepers()) == 1
        await until(lambda: _true(not keepers()))

        async def gone() -> bool:
            return not await reservations(router)

        await until(gone)
        await events.aclose()  # type: ignore[attr-defined]


@pytest.mark.integration
async def test_a_long_stream_keeps_its_reservation_across_a_redis_restart(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Redis (with AOF) killed at the stream's start and back 3.5 s later: the extension due at 2 s
    misses (the store's retries, ~1 s of reconnecting, end before 3.5 s; in degraded mode it finds only the local
    store), the one at 4 s lands before the first TTL of 6 s is over, and the stream, ~8 s long,
    still settles with its usage."""
    redis = RedisServer(extra=list(AOF)).start()
    try:
        values = {"REDIS_URL": redis.url, "REDIS_KEY_PREFIX": unique_prefix()}
        config = Settings.from_env({}, RESERVE_WAIT_SECONDS=0, **values)
        async with sim_router(config, tmp_path, slow_pool(), faults=slow_faults(1300)) as (
            router,
            _sim,
        ):
            router.key_manager.engine.reservation_ttl = 6  # extended every 2 s
            events = router.stream_one_shot("a long story please", MODEL)
            first = await anext(events)
            rest = asyncio.create_task(_all(events))
            await asyncio.to_thread(redis.kill)
            await asyncio.sleep(3.5)  # the scenario: Redis away across an extension (every 2 s)
            await asyncio.to_thread(redis.start)
            done = (await rest)[-1]
            records = await reservations(router)
            stats = await router.key_manager.engine.stats("slow")
    finally:
        redis.cleanup()
    assert first["type"] == "delta" and done["success"]
    # an extension missed it while Redis was away (unreachable, or degraded: a local store)
    missed = ("could not extend a reservation", "reservation was not found")
    assert any(m in r.getMessage() for r in caplog.records for m in missed)
    [record] = records.values()
    assert record["state"] == "settled" and int(record["actual"]) == done["tokens"]["total"]
    assert stats["successes"] == 1 and stats["tokens"] == done["tokens"]["total"]


async def _all(events: AsyncIterator[dict[str, Any]]) -> list[dict[str, Any]]:
    return [event async for event in events]
