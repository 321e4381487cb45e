"""Settle off the answer's path (issue 18, keys/settle_queue.py): the answer returns before its
settle lands; ``close()`` sends every queued settle (the books then equal inline mode's); a caller
cancelled while its settle waits for room loses nothing; Redis killed with settles queued loses no
usage record and leaks no reservation.

Settles are held back with ``CLIENT PAUSE WRITE`` on a redis-server of the test's own: Redis then
runs no script (reads still answer), so a call reserved before the pause can only have answered
while its settle waits."""

from __future__ import annotations

import asyncio
import multiprocessing
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from kernel.errors import AllKeysExhaustedError
from kernel.redis_keys import RedisKeys
from kernel.settings import Settings
from kernel.usage_record import UsageRecord
from keys.manager import KeyManager
from router.simulator import FaultConfig, ProviderSimulator, SimulatorConfig
from tests.conftest import unique_prefix
from tests.router.pool import PoolKey, pool_files, sim_router
from tests.router.settle_workers import answer_then_hang
from tests.servers import AOF, RedisServer

MODEL = "gpt-4o-mini"
#: The provider's answer takes this long: the test pauses Redis while the calls are there.
PROVIDER_MS = 1500
#: Redis is paused at most this long (a failing test unpauses it anyway).
PAUSE_MS = 120_000


def settings(url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "REDIS_URL": url,
        "REDIS_KEY_PREFIX": unique_prefix(),
        "REDIS_TIMEOUT_SECONDS": 60,  # a paused Redis is waited for, not given up on
        "RESERVE_WAIT_SECONDS": 0,
    }
    values.update(overrides)
    return Settings.from_env({}, **values)


async def until(condition: Callable[[], Awaitable[bool]], seconds: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not await condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def at_provider(sim: ProviderSimulator, calls: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return len(sim.requests()) >= calls

    return check


@asynccontextmanager
async def paused(raw: aioredis.Redis) -> AsyncIterator[None]:
    """No script runs on ``raw``'s server inside the block (reads do)."""
    await raw.execute_command("CLIENT", "PAUSE", PAUSE_MS, "WRITE")
    try:
        yield
    finally:
        await raw.execute_command("CLIENT", "UNPAUSE")


async def books(raw: aioredis.Redis, prefix: str) -> dict[str, Any]:
    """The reservations' states, the pool's counters summed over keys, the usage records."""
    names = RedisKeys(prefix)
    states: Counter[str] = Counter()
    async for name in raw.scan_iter(match=names.reservation("*")):
        states[(await raw.hget(name, "state")).decode()] += 1
    counts: Counter[str] = Counter()
    for field, value in (await raw.hgetall(names.pool_stats)).items():
        stat = field.decode().rsplit(":", 1)[-1]
        if stat in ("requests", "successes", "failures", "released", "tokens"):
            counts[stat] += int(float(value))
    entries = await raw.xrange(names.usage_stream)
    records = [UsageRecord.from_json(fields[b"r"]) for _, fields in entries]
    return {"reservations": dict(states), "counts": dict(counts), "records": records}


async def test_the_answer_returns_before_its_settle_lands(tmp_path: Path) -> None:
    server = RedisServer().start()
    raw = aioredis.from_url(server.url)
    config = settings(server.url)
    faults = FaultConfig(latency_ms=PROVIDER_MS)
    try:
        async with sim_router(config, tmp_path, [PoolKey("a", rpm=600)], faults=faults) as (
            router,
            sim,
        ):
            await router.send_one_shot("warm", MODEL, max_tokens=8)  # a key's first is awaited
            await router.flush()
            call = asyncio.create_task(router.send_one_shot("hi", MODEL, max_tokens=8))
            await until(at_provider(sim, 2))  # reserved: from here only its settle needs Redis
            async with paused(raw):
                # a bound, not a measure: an inline settle cannot answer before the pause ends
                await asyncio.wait({call}, timeout=PAUSE_MS / 4000)
                assert call.done(), "the answer waited for its settle"
                held = await books(raw, config.REDIS_KEY_PREFIX)
                queued = router.key_manager.settles.pending
            await router.flush()
            landed = await books(raw, config.REDIS_KEY_PREFIX)
    finally:
        await raw.aclose()
        server.cleanup()
    answer = call.result()
    assert answer["success"] and answer["tokens"]["total"] > 0
    assert held["reservations"] == {"reserved": 1, "settled": 1}
    assert queued == 1 and len(held["records"]) == 1
    assert landed["reservations"] == {"settled": 2}
    assert landed["counts"]["successes"] == 2
    assert [r.request_id for r in landed["records"]][1:] == [answer["request_id"]]


async def _calls_then_close(config: Settings, tmp_path: Path, calls: int) -> list[Any]:
    keys = [PoolKey("a", rpm=600), PoolKey("b", rpm=600)]
    sim_options = {"completion_tokens": 8}
    async with sim_router(config, tmp_path, keys, sim_options=sim_options) as (router, _):
        # the scripts loaded first: a NOSCRIPT retry is the one thing that may reorder the lane
        answers = [await router.send_one_shot("warm", MODEL, max_tokens=8)]
        await router.flush()
        answers += await asyncio.gather(
            *(router.send_one_shot(f"hi {i}", MODEL, max_tokens=8) for i in range(calls))
        )
        answers += [await router.send_one_shot("one more", MODEL, max_tokens=8)]
    return answers  # closed without a flush: close() sends what is queued


async def test_close_sends_every_queued_settle_and_leaves_the_books_of_inline_mode(
    redis_url: str, tmp_path: Path
) -> None:
    deferred, inline = settings(redis_url), settings(redis_url, SETTLE_MODE="inline")
    raw = aioredis.from_url(redis_url)
    try:
        answers = await _calls_then_close(deferred, tmp_path, 30)
        after_deferred = await books(raw, deferred.REDIS_KEY_PREFIX)
        await _calls_then_close(inline, tmp_path, 30)
        after_inline = await books(raw, inline.REDIS_KEY_PREFIX)
    finally:
        await raw.aclose()
    assert all(a["success"] for a in answers)
    assert after_deferred["reservations"] == after_inline["reservations"] == {"settled": 32}
    assert after_deferred["counts"] == after_inline["counts"]
    assert after_deferred["counts"]["successes"] == 32
    assert {r.request_id for r in after_deferred["records"]} == {a["request_id"] for a in answers}
    for key_id in ("a", "b"):  # each key's settles landed in the order they were made
        made = [r.ts for r in after_deferred["records"] if r.key_id == key_id]
        assert made == sorted(made)
    assert len(after_inline["records"]) == 32


async def test_a_caller_cancelled_while_its_settle_waits_for_room_loses_nothing(
    tmp_path: Path,
) -> None:
    server = RedisServer().start()
    raw = aioredis.from_url(server.url)
    config = settings(server.url)
    faults = FaultConfig(latency_ms=PROVIDER_MS)
    try:
        async with sim_router(config, tmp_path, [PoolKey("a", rpm=600)], faults=faults) as (
            router,
            sim,
        ):
            settles = router.key_manager.settles
            settles.batch = settles.size = 1  # one in flight, one waiting: the third waits
            await router.send_one_shot("warm", MODEL, max_tokens=8)  # a key's first is awaited
            await router.flush()
            calls = [
                asyncio.create_task(router.send_one_shot(f"hi {i}", MODEL, max_tokens=8))
                for i in range(3)
            ]
            await until(at_provider(sim, 4))
            async with paused(raw):

                async def two_answered() -> bool:  # and the third's settle waits for room
                    done = sum(c.done() for c in calls)
                    return done == 2 and settles.pending == 2 and settles.held_back == 1

                await until(two_answered)
                [waiting] = [c for c in calls if not c.done()]  # back-pressure: not dropped
                waiting.cancel()
                await asyncio.gather(waiting, return_exceptions=True)
                queued = settles.pending
            await router.flush()
            landed = await books(raw, config.REDIS_KEY_PREFIX)
    finally:
        await raw.aclose()
        server.cleanup()
    assert waiting.cancelled()
    answered = [c.result() for c in calls if c is not waiting]
    assert all(a["success"] for a in answered)
    assert queued == 3  # the cancelled caller's settle went in all the same
    assert landed["reservations"] == {"settled": 4}
    assert landed["counts"]["successes"] == 4
    assert len(landed["records"]) == 4  # the cancelled call's success too, by its settle


async def test_redis_killed_with_settles_queued_loses_no_record_and_leaks_no_reservation(
    tmp_path: Path,
) -> None:
    server = RedisServer(extra=list(AOF)).start()
    config = settings(server.url)
    faults = FaultConfig(latency_ms=PROVIDER_MS)
    raw = aioredis.from_url(server.url)
    try:
        async with sim_router(config, tmp_path, [PoolKey("a", rpm=600)], faults=faults) as (
            router,
            sim,
        ):
            store = router.key_manager.store
            await router.send_one_shot("warm", MODEL, max_tokens=8)  # a key's first is awaited
            await router.flush()
            calls = [
                asyncio.create_task(router.send_one_shot(f"hi {i}", MODEL, max_tokens=8))
                for i in range(3)
            ]
            await until(at_provider(sim, 4))
            await raw.execute_command("CLIENT", "PAUSE", PAUSE_MS, "WRITE")
            answers = await asyncio.gather(*calls)
            queued = router.key_manager.settles.pending
            await raw.aclose()
            server.kill()  # the queued settles' connection dies: retried, then degraded mode
            await router.flush()
            degraded = store.degraded
            server.start()

            async def back() -> bool:
                return not store.degraded

            await until(back)
            raw = aioredis.from_url(server.url)
            left = await books(raw, config.REDIS_KEY_PREFIX)
            names = RedisKeys(config.REDIS_KEY_PREFIX)
            ttls = [await raw.ttl(n) async for n in raw.scan_iter(match=names.reservation("*"))]
    finally:
        await raw.aclose()
        server.cleanup()
    assert all(a["success"] for a in answers) and queued == 3 and degraded
    # never settled on Redis: held (conservative) until their TTL gives them back, as before
    assert left["reservations"] == {"reserved": 3, "settled": 1}
    assert len(ttls) == 4 and all(0 < t <= config.RESERVATION_TTL_SECONDS for t in ttls)
    # each usage record went the background way (kept while degraded, written on return)
    got = {r.request_id for r in left["records"]}
    assert len(left["records"]) == 4 and {a["request_id"] for a in answers} <= got


async def test_a_process_killed_with_settles_queued_holds_what_it_reserved_until_it_expires(
    tmp_path: Path,
) -> None:
    """As when a process died mid-call before issue 18: what it reserved stays charged (the
    estimates: conservative) until the window passes, and its reservations expire."""
    server = RedisServer().start()
    raw = aioredis.from_url(server.url)
    keys = [PoolKey("a", rpm=600, tpm=1150)]  # a small call, then two of ~510 each fill it
    config = settings(server.url, RESERVATION_TTL_SECONDS=10)
    faults = FaultConfig(latency_ms=PROVIDER_MS)
    context = multiprocessing.get_context("spawn")
    report = context.Queue()
    try:
        async with ProviderSimulator(
            SimulatorConfig(keys=[k.sim_key() for k in keys], faults=faults)
        ) as sim:
            path, env = pool_files(tmp_path, sim, keys)
            spec = {
                "settings": {k: str(v) for k, v in config.model_dump().items() if k in FIELDS},
                "keys_path": str(path),
                "env": env,
                "model": MODEL,
                "max_tokens": 500,
                "calls": 2,
            }
            child = context.Process(target=answer_then_hang, args=(spec, report))
            child.start()
            await until(at_provider(sim, 3), seconds=60)  # its warm-up call, then two
            async with paused(raw):
                loop = asyncio.get_running_loop()
                answered = await loop.run_in_executor(None, report.get, True, 60)
                child.kill()  # SIGKILL: its queued settles die with it
                await loop.run_in_executor(None, child.join)
            held = await books(raw, config.REDIS_KEY_PREFIX)
            names = RedisKeys(config.REDIS_KEY_PREFIX)
            ttls = [await raw.ttl(n) async for n in raw.scan_iter(match=names.reservation("*"))]
            now_room = await room_for(config, path, env, 500, ahead=0)
            later_room = await room_for(config, path, env, 500, ahead=121)

            async def expired() -> bool:
                return not [n async for n in raw.scan_iter(match=names.reservation("*"))]

            await until(expired, seconds=config.RESERVATION_TTL_SECONDS + 20)
    finally:
        await raw.aclose()
        server.cleanup()
    assert answered == {"success": [True, True], "queued": 2}
    assert child.exitcode == -signal.SIGKILL
    assert held["reservations"] == {"reserved": 2, "settled": 1} and len(held["records"]) == 1
    assert len(ttls) == 3 and all(0 < t <= 10 for t in ttls)
    assert not now_room  # the estimates stay charged: nothing was refunded
    assert later_room  # the window passed: the capacity is back


#: The settings a spawned router takes over from the test's.
FIELDS = {
    "REDIS_URL",
    "REDIS_KEY_PREFIX",
    "REDIS_TIMEOUT_SECONDS",
    "RESERVE_WAIT_SECONDS",
    "RESERVATION_TTL_SECONDS",
}


async def room_for(
    config: Settings, path: Path, env: dict[str, str], tokens: int, *, ahead: float
) -> bool:
    """Whether a call of ``tokens`` finds room on the pool, ``ahead`` seconds from now."""
    manager = KeyManager(
        key_store_path=path, settings=config, environ=env, clock=lambda: time.time() + ahead
    )
    try:
        await manager.start()
        selection = await manager.select_key(MODEL, tokens)
    except AllKeysExhaustedError:
        return False
    else:
        await manager.release(selection)
        return True
    finally:
        await manager.close()
