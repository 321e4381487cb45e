"""The deferred settle (issue 18, keys/settle_queue.py) covers leases, ``execute_with_retry`` and
embeddings as it covers chat (tests/router/test_deferred_settle.py): the answer returns before its
settle lands, ``close()`` leaves the books of inline mode, a caller cancelled while its settle waits
loses nothing, and a failure's settle is still waited for (the next attempt sees the key's health).
A lease's own code raising, or its caller cancelled mid-lease or as the lease ends, settles it
exactly once."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import openai
import pytest
import redis.asyncio as aioredis

from kernel.settings import Settings
from router.lease import Lease
from router.request_router import RequestRouter
from router.simulator import FaultConfig
from tests.router.pool import PoolKey, sim_router
from tests.router.test_deferred_settle import (
    MODEL,
    PAUSE_MS,
    PROVIDER_MS,
    at_provider,
    books,
    paused,
    settings,
    until,
)
from tests.servers import RedisServer

SMALL = "text-embedding-3-small"
#: A call that should be waiting is given this long to show it is not (a bound, not a measure).
STILL_WAITING_S = 1.0

Call = Callable[[RequestRouter, str], Awaitable[str]]


def key(key_id: str, **kwargs: Any) -> PoolKey:
    """A key of both a chat and an embedding model, with configured limits."""
    return PoolKey(key_id, rpm=600, models=[MODEL, SMALL], **kwargs)


async def by_lease(router: RequestRouter, text: str) -> str:
    """A lease whose call goes through the official SDK; answers its request id."""
    async with router.lease(MODEL, tokens=50) as lease:
        client = lease.async_client()
        messages = [{"role": "user", "content": text}]
        response = await client.chat.completions.create(
            model=lease.model, messages=messages, max_tokens=8
        )
        lease.record(response)
    return lease.summary.request_id


async def by_execute(router: RequestRouter, text: str) -> str:
    leases: list[Lease] = []

    async def call(lease: Lease) -> Any:
        leases.append(lease)
        messages = [{"role": "user", "content": text}]
        return await lease.async_client().chat.completions.create(
            model=lease.model, messages=messages, max_tokens=8
        )

    await router.execute_with_retry(call, model=MODEL, tokens=50)
    return leases[-1].summary.request_id


async def by_embed(router: RequestRouter, text: str) -> str:
    answer = await router.embed(text, model=SMALL)
    assert answer["success"], answer
    return answer["request_id"]


CALLS = [
    pytest.param(by_lease, id="lease"),
    pytest.param(by_execute, id="execute_with_retry"),
    pytest.param(by_embed, id="embed"),
]


@pytest.mark.parametrize("call", CALLS)
async def test_the_answer_returns_before_its_settle_lands(tmp_path: Path, call: Call) -> None:
    server = RedisServer().start()
    raw = aioredis.from_url(server.url)
    config = settings(server.url)
    faults = FaultConfig(latency_ms=PROVIDER_MS)
    try:
        async with sim_router(config, tmp_path, [key("a")], faults=faults) as (router, sim):
            await call(router, "warm")  # a key's first is awaited
            await router.flush()
            task = asyncio.create_task(call(router, "hi"))
            await until(at_provider(sim, 2))  # reserved: from here only its settle needs Redis
            async with paused(raw):
                # a bound, not a measure: an inline settle cannot answer before the pause ends
                await asyncio.wait({task}, timeout=PAUSE_MS / 4000)
                assert task.done(), "the answer waited for its settle"
                held = await books(raw, config.REDIS_KEY_PREFIX)
                queued = router.key_manager.settles.pending
            await router.flush()
            landed = await books(raw, config.REDIS_KEY_PREFIX)
    finally:
        await raw.aclose()
        server.cleanup()
    request_id = task.result()
    assert held["reservations"] == {"reserved": 1, "settled": 1}
    assert queued == 1 and len(held["records"]) == 1
    assert landed["reservations"] == {"settled": 2}
    assert landed["counts"]["successes"] == 2
    assert [r.request_id for r in landed["records"]][1:] == [request_id]


@pytest.mark.parametrize("call", CALLS)
async def test_a_caller_cancelled_at_the_provider_is_back_before_its_settle_lands(
    tmp_path: Path, call: Call
) -> None:
    server = RedisServer().start()
    raw = aioredis.from_url(server.url)
    config = settings(server.url)
    faults = FaultConfig(latency_ms=PROVIDER_MS)
    try:
        async with sim_router(config, tmp_path, [key("a")], faults=faults) as (router, sim):
            await call(router, "warm")
            await router.flush()
            task = asyncio.create_task(call(router, "hi"))
            await until(at_provider(sim, 2))
            async with paused(raw):
                task.cancel()
                # a bound, not a measure: an inline settle cannot end before the pause ends
                await asyncio.wait({task}, timeout=PAUSE_MS / 4000)
                back = task.done()
                queued = router.key_manager.settles.pending
            await router.flush()
            landed = await books(raw, config.REDIS_KEY_PREFIX)
    finally:
        await raw.aclose()
        server.cleanup()
    assert back and task.cancelled() and queued == 1
    assert "reserved" not in landed["reservations"]  # settled: charged at its estimate
    assert sum(landed["reservations"].values()) == 2
    assert [(r.success, r.error_type) for r in landed["records"]][1:] == [(False, "cancelled")]


async def _calls_then_close(config: Settings, tmp_path: Path, call: Call, calls: int) -> list[str]:
    async with sim_router(config, tmp_path, [key("a"), key("b")]) as (router, _):
        made = [await call(router, "warm")]
        await router.flush()  # the scripts loaded: nothing retried on the lane reorders it
        made += await asyncio.gather(*(call(router, f"hi {i}") for i in range(calls)))
        made += [await call(router, "one more")]
    return made  # closed without a flush: close() sends what is queued


@pytest.mark.parametrize("call", CALLS)
async def test_close_sends_every_queued_settle_and_leaves_the_books_of_inline_mode(
    redis_url: str, tmp_path: Path, call: Call
) -> None:
    deferred, inline = settings(redis_url), settings(redis_url, SETTLE_MODE="inline")
    raw = aioredis.from_url(redis_url)
    try:
        made = await _calls_then_close(deferred, tmp_path, call, 12)
        after_deferred = await books(raw, deferred.REDIS_KEY_PREFIX)
        await _calls_then_close(inline, tmp_path, call, 12)
        after_inline = await books(raw, inline.REDIS_KEY_PREFIX)
    finally:
        await raw.aclose()
    assert after_deferred["reservations"] == after_inline["reservations"] == {"settled": 14}
    assert after_deferred["counts"] == after_inline["counts"]
    assert after_deferred["counts"]["successes"] == 14
    assert {r.request_id for r in after_deferred["records"]} == set(made)
    assert len(after_deferred["records"]) == len(after_inline["records"]) == 14
    for key_id in ("a", "b"):  # each key's settles landed in the order they were made
        stamps = [r.ts for r in after_deferred["records"] if r.key_id == key_id]
        assert stamps == sorted(stamps)


@pytest.mark.parametrize("call", CALLS)
async def test_a_caller_cancelled_while_its_settle_waits_for_room_loses_nothing(
    tmp_path: Path, call: Call
) -> None:
    server = RedisServer().start()
    raw = aioredis.from_url(server.url)
    config = settings(server.url)
    faults = FaultConfig(latency_ms=PROVIDER_MS)
    try:
        async with sim_router(config, tmp_path, [key("a")], faults=faults) as (router, sim):
            settles = router.key_manager.settles
            settles.batch = settles.size = 1  # one in flight, one waiting: the third waits
            await call(router, "warm")  # a key's first is awaited
            await router.flush()
            tasks = [asyncio.create_task(call(router, f"hi {i}")) for i in range(3)]
            await until(at_provider(sim, 4))
            async with paused(raw):

                async def two_answered() -> bool:  # and the third's settle waits for room
                    done = sum(t.done() for t in tasks)
                    return done == 2 and settles.pending == 2 and settles.held_back == 1

                await until(two_answered)
                [waiting] = [t for t in tasks if not t.done()]  # back-pressure: not dropped
                waiting.cancel()
                await asyncio.gather(waiting, return_exceptions=True)
            await router.flush()
            landed = await books(raw, config.REDIS_KEY_PREFIX)
    finally:
        await raw.aclose()
        server.cleanup()
    assert waiting.cancelled()
    answered = {t.result() for t in tasks if t is not waiting}
    assert landed["reservations"] == {"settled": 4}
    assert landed["counts"]["successes"] == 4
    # the cancelled call's success too, written by its settle
    assert len(landed["records"]) == 4 and answered <= {r.request_id for r in landed["records"]}


class Bug(Exception):
    """The caller's own code failing."""


async def _cancelled_at_exit(router: RequestRouter, fail: bool) -> None:
    """A lease whose caller is cancelled as its block ends (after it recorded a call)."""
    async with router.lease(MODEL, tokens=50) as lease:
        lease.record(prompt_tokens=7, completion_tokens=3)
        task = asyncio.current_task()
        assert task is not None
        task.cancel()  # lands on the lease's exit: its first await
        if fail:
            raise Bug


async def _lease_endings(config: Settings, tmp_path: Path) -> int:
    """Leases ended every way but a provider's failure; answers how many were opened."""

    async def bug(_: Lease) -> None:
        raise Bug

    async with sim_router(config, tmp_path, [key("a")]) as (router, _):
        await by_lease(router, "warm")
        with pytest.raises(Bug):  # before any call: charged at its estimate
            async with router.lease(MODEL, tokens=50):
                raise Bug
        with pytest.raises(Bug):  # after a call it recorded: a success with that usage
            async with router.lease(MODEL, tokens=50) as lease:
                lease.record(prompt_tokens=7, completion_tokens=3)
                raise Bug
        with pytest.raises(Bug):
            await router.execute_with_retry(bug, model=MODEL, tokens=50)
        opened = asyncio.Event()

        async def hold() -> None:
            async with router.lease(MODEL, tokens=50):
                opened.set()
                await asyncio.Event().wait()  # until cancelled

        task = asyncio.create_task(hold())
        await opened.wait()
        task.cancel()  # mid-lease
        with pytest.raises(asyncio.CancelledError):
            await task
        for fail in (False, True):
            with pytest.raises(asyncio.CancelledError):
                await asyncio.create_task(_cancelled_at_exit(router, fail))
    return 7  # closed without a flush


async def test_a_lease_ended_by_its_own_code_or_a_cancel_settles_once_as_in_inline_mode(
    redis_url: str, tmp_path: Path
) -> None:
    deferred, inline = settings(redis_url), settings(redis_url, SETTLE_MODE="inline")
    raw = aioredis.from_url(redis_url)
    try:
        opened = await _lease_endings(deferred, tmp_path)
        after_deferred = await books(raw, deferred.REDIS_KEY_PREFIX)
        await _lease_endings(inline, tmp_path)
        after_inline = await books(raw, inline.REDIS_KEY_PREFIX)
    finally:
        await raw.aclose()
    assert after_deferred["reservations"] == after_inline["reservations"]
    assert "reserved" not in after_deferred["reservations"]  # none left to expire
    assert sum(after_deferred["reservations"].values()) == opened
    assert after_deferred["counts"] == after_inline["counts"]
    assert after_deferred["counts"]["successes"] == 4  # the warm-up, and the three that recorded
    records = after_deferred["records"]
    assert len(records) == len({r.request_id for r in records}) == opened  # one each
    assert sorted(r.success for r in records) == sorted(r.success for r in after_inline["records"])


async def test_a_lease_failure_is_settled_before_its_caller_sees_it(tmp_path: Path) -> None:
    server = RedisServer().start()
    raw = aioredis.from_url(server.url)
    config = settings(server.url)
    keys = [key("a", faults={"spurious_429_rate": 1.0})]
    try:
        async with sim_router(config, tmp_path, keys) as (router, _):
            settles = router.key_manager.settles

            async def limited() -> None:
                async with router.lease(MODEL, tokens=50) as lease:
                    try:
                        await lease.async_client().chat.completions.create(
                            model=lease.model, messages=[{"role": "user", "content": "hi"}]
                        )
                    except openai.RateLimitError:  # its settle cannot land from here
                        await raw.execute_command("CLIENT", "PAUSE", PAUSE_MS, "WRITE")
                        raise

            async def queued() -> bool:
                return settles.pending == 1

            task = asyncio.create_task(limited())
            try:
                await until(queued)
                # a bound, not a measure: a failure sent off the caller's path answers at once
                await asyncio.wait({task}, timeout=STILL_WAITING_S)
                waited = not task.done()
            finally:
                await raw.execute_command("CLIENT", "UNPAUSE")
            with pytest.raises(openai.RateLimitError):
                await task
            left = settles.pending
            status = await router.key_manager.get_key_status("a")  # no flush
    finally:
        await raw.aclose()
        server.cleanup()
    assert waited and left == 0
    # landed before the caller saw the 429 (its cooldown, 1 s, may be over by now)
    assert status["rate_limited"] == 1 and status["last_error_at"], status


def ranked(key_id: str, priority: int, model: str, **kwargs: Any) -> PoolKey:
    """A key of one model (a 429 blocks the key's model: the whole key, for status)."""
    extra = {"models": [{"model": model, "priority": priority}]}
    return PoolKey(key_id, rpm=600, models=[model], extra=extra, **kwargs)


@pytest.mark.parametrize(
    ("call", "model"),
    [
        pytest.param(by_execute, MODEL, id="execute_with_retry"),
        pytest.param(by_embed, SMALL, id="embed"),
    ],
)
async def test_after_a_429_the_next_attempt_rotates_and_the_429_has_landed_at_the_answer(
    redis_url: str, tmp_path: Path, call: Call, model: str
) -> None:
    keys = [ranked("a", 1, model, faults={"spurious_429_rate": 1.0}), ranked("b", 2, model)]
    async with sim_router(settings(redis_url), tmp_path, keys) as (router, sim):
        await call(router, "warm")  # b's first success, awaited
        await router.key_manager.clear_cooldown("a")
        await router.flush()
        await call(router, "hi")
        a = await router.key_manager.get_key_status("a")  # no flush: b's success may be queued
        tried = [r.key_id for r in sim.requests()]
    assert tried == ["a", "b", "a", "b"]
    # both 429s counted at the answer (the cooldown they set lasts 1 s: not asserted)
    assert (a["rate_limited"], a["failures"]) == (2, 0) and a["last_error_at"], a
