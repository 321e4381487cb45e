"""Degraded mode (STORE_FAILURE_MODE=open) and closed mode, on real redis-servers and the simulator.

Open: a Redis unreachable at first use or killed mid-run leaves every call answered on a local
store with each key's limits divided by ROUTER_PROCESSES, marked ``degraded``; when Redis is back
the process returns to it by itself and the turns made meanwhile land there, in order, once.
Closed: ``store_unavailable`` answers, at first use too, never an exception (unless asked).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry

from conversation import ConversationStore
from kernel.errors import StoreError
from kernel.settings import Settings
from kernel.store import create_store
from keys.manager import KeyManager
from keys.models import APIKey
from router.metrics import RouterMetrics
from router.simulator import FaultConfig
from tests import keygen
from tests.helpers import PoolShards, both_pool_shards, log_events
from tests.router.pool import PoolKey, sim_router, unstarted_router
from tests.servers import RedisServer, free_port

#: Degraded mode and the return to Redis with the pool in one slot and in three shards.
pytestmark = [pytest.mark.integration, both_pool_shards]

MODEL = "gpt-4o-mini"
TRANSITION = "shared store unreachable: serving in degraded mode"


def settings(url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "REDIS_URL": url,
        "REDIS_TIMEOUT_SECONDS": 0.5,
        "RESERVE_WAIT_SECONDS": 0,
    }
    values.update(overrides)
    if PoolShards.value != 1:  # the test's pool_shards (tests/conftest.py)
        values["POOL_SHARDS"] = PoolShards.value
    return Settings.from_env({}, **values)


def nowhere() -> str:
    return f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there


async def until(condition: Any, seconds: float = 10.0) -> None:
    """Wait (bounded) for ``condition()`` to hold."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


# -- open mode -----------------------------------------------------------------------------------
async def test_unreachable_redis_at_first_use_serves_degraded_within_the_divided_limits(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    keys = [PoolKey("a", rpm=8, tpm=100_000)]  # 4 processes: 2 requests a minute each
    with log_events(caplog) as logs:
        async with sim_router(settings(nowhere(), ROUTER_PROCESSES=4), tmp_path, keys) as (
            router,
            sim,
        ):
            answers = await asyncio.gather(
                *(router.send_one_shot(f"hi {i}", MODEL) for i in range(5))
            )
            health = await router.health_check()
            served = len(sim.requests(key_id="a"))
    outcomes = sorted(str(a["error_type"]) for a in answers)
    assert outcomes == ["None", "None", "rate_limited", "rate_limited", "rate_limited"], answers
    assert all(a["degraded"] is True for a in answers)
    assert all(a["retry_after"] is not None for a in answers if not a["success"])
    assert served == 2  # 8 / ROUTER_PROCESSES
    assert health["healthy"] is True and health["status"] == "degraded" and health["degraded"]
    assert health["key_manager"]["store"]["degraded"] is True
    assert health["key_manager"]["store"]["limits_divided_by"] == 4
    assert sum(TRANSITION in e["event"] for e in logs) == 1  # once per transition

    metrics = RouterMetrics(CollectorRegistry())
    for answer in answers:
        metrics.record(answer)
    assert metrics.degraded.labels("success")._value.get() == 2
    assert metrics.degraded.labels("rate_limited")._value.get() == 3


async def test_past_the_buffer_a_degraded_turn_is_reported_not_saved(tmp_path: Path) -> None:
    config = settings(nowhere(), DEGRADED_CONVERSATION_BUFFER=1)
    async with sim_router(config, tmp_path, [PoolKey("a", rpm=100)]) as (router, _sim):
        kept = await router.send_chat("c-full", "one", MODEL)
        refused = await router.send_chat("c-full", "two", MODEL)
        local = [m.content for m in await router.conversations.get_messages("c-full")]
        streamed = [e async for e in router.stream_one_shot("hi", MODEL)]
        with pytest.raises(StoreError, match="degraded"):  # run-time changes live in Redis
            await router.key_manager.mark_key_unhealthy("a", 5)
    assert kept["success"] and kept["degraded"] and kept["conversation_saved"] is True
    assert refused["success"] and refused["degraded"] and refused["conversation_saved"] is False
    assert refused["conversation_error_type"] == "store_unavailable"
    assert "DEGRADED_CONVERSATION_BUFFER=1" in refused["conversation_error"]
    assert local == ["one", kept["content"]]  # what was not kept is not shown as history either
    assert streamed[-1]["type"] == "done" and streamed[-1]["success"] and streamed[-1]["degraded"]
    assert streamed[0]["type"] == "delta" and streamed[0].get("degraded") is True  # said first


async def test_redis_killed_mid_run_then_restarted_resumes_shared_state_and_keeps_every_turn(
    tmp_path: Path,
) -> None:
    server = RedisServer(extra=["--appendonly", "yes"]).start()
    try:
        config = settings(server.url, REDIS_KEY_PREFIX="deg")
        faults = FaultConfig(latency_ms=300)
        async with sim_router(config, tmp_path, [PoolKey("a", rpm=600)], faults=faults) as (
            router,
            sim,
        ):
            store = router.key_manager.store
            before = await router.send_chat("c", "q0", MODEL)
            # a call reserved on Redis whose settle and turn come after Redis is gone
            inflight = asyncio.create_task(router.send_chat("c", "q1", MODEL))
            await until(lambda: len(sim.requests(key_id="a")) == 2)
            server.stop()
            crossing = await inflight
            during = [await router.send_chat("c", f"q{i}", MODEL) for i in (2, 3, 4)]
            assert store.degraded
            history_while_down = [
                m.content for m in await router.conversations.get_messages("c") if m.role == "user"
            ]
            server.start()
            await until(lambda: not store.degraded)
            after = await router.send_chat("c", "q5", MODEL)
            selection = await router.key_manager.select_key(MODEL)
            raw = aioredis.from_url(server.url, decode_responses=True)
            try:
                shard = store.keys.pool_views()[selection.reservation.shard]  # its shard's slot
                reserved = await raw.exists(shard.reservation(selection.reservation.reservation_id))
            finally:
                await raw.aclose()
            await router.key_manager.release(selection)
            stored = await router.conversations.get_messages("c")
    finally:
        server.cleanup()
    assert before["success"] and before["degraded"] is False
    assert crossing["success"] and crossing["degraded"] is False  # reserved on Redis
    assert crossing["conversation_saved"] is True
    assert all(a["success"] and a["degraded"] and a["conversation_saved"] for a in during)
    assert history_while_down == ["q1", "q2", "q3", "q4"]  # local: since the outage only
    assert after["success"] and after["degraded"] is False and after["conversation_saved"]
    assert not selection.reservation.degraded and reserved == 1
    users = [m.content for m in stored if m.role == "user"]
    assert users == ["q0", "q1", "q2", "q3", "q4", "q5"]  # in order, each once
    assert [m.seq for m in stored] == list(range(1, 13))


# -- closed mode ---------------------------------------------------------------------------------
async def test_closed_mode_answers_store_unavailable_at_first_use_and_never_raises(
    tmp_path: Path,
) -> None:
    config = settings(nowhere(), STORE_FAILURE_MODE="closed")
    async with unstarted_router(config, tmp_path, [PoolKey("a", rpm=100)]) as router:
        one = await router.send_one_shot("hi", MODEL)
        chat = await router.send_chat("c", "hi", MODEL)
        events = [e async for e in router.stream_chat("c", "hi", MODEL)]
        with pytest.raises(StoreError, match="unreachable"):
            await router.send_one_shot("hi", MODEL, raise_on_error=True)
        health = await router.health_check()
    for answer in (one, chat, events[-1]):
        assert answer["success"] is False and answer["error_type"] == "store_unavailable"
        assert answer["degraded"] is False
    assert [e["type"] for e in events] == ["done"]
    assert health["healthy"] is False and health["status"] == "unhealthy"


async def test_closed_mode_answers_store_unavailable_mid_run(tmp_path: Path) -> None:
    server = RedisServer().start()
    try:
        config = settings(server.url, STORE_FAILURE_MODE="closed")
        async with sim_router(config, tmp_path, [PoolKey("a", rpm=100)]) as (router, _sim):
            first = await router.send_one_shot("hi", MODEL)
            server.stop()
            down = await router.send_one_shot("hi", MODEL)
            with pytest.raises(StoreError):
                await router.send_chat("c", "hi", MODEL, raise_on_error=True)
    finally:
        server.cleanup()
    assert first["success"] and first["degraded"] is False
    assert down["success"] is False and down["error_type"] == "store_unavailable"
    assert router.key_manager.store.failover is None  # closed: no degraded mode at all


async def test_an_unreachable_redis_cluster_at_first_use_is_degraded_too() -> None:
    config = settings(nowhere(), REDIS_CLUSTER=True, ROUTER_PROCESSES=2)
    manager = KeyManager(settings=config, environ={"OPENAI_API_KEY": keygen.openai_project_key()})
    try:
        selection = await manager.select_key(MODEL)
        status = await manager.get_key_status(selection.key_id)  # reads go to the local store
    finally:
        await manager.close()
    assert manager.store.kind == "cluster" and selection.reservation.degraded
    assert status["rpm_usage"]["count"] == 1


async def test_a_kept_turn_the_shared_store_refuses_does_not_hold_the_others_back() -> None:
    server = RedisServer(extra=["--appendonly", "yes"]).start()
    config = settings(server.url)
    store = create_store(config)
    conversations = ConversationStore(store, settings=config)
    try:
        raw = aioredis.from_url(server.url, decode_responses=True)
        try:  # a key of the wrong type: the append script fails there, whatever is retried
            await raw.set(store.keys.conv_messages("bad"), "not a list")
        finally:
            await raw.aclose()
        server.stop()
        bad = await conversations.append_exchange("bad", "q", "a", model=MODEL)
        good = await conversations.append_exchange("good", "q", "a", model=MODEL)
        assert store.degraded and bad.saved and good.saved
        server.start()
        await until(lambda: not store.degraded)
        stored = [m.content for m in await conversations.get_messages("good")]
    finally:
        await store.close()
        server.cleanup()
    assert stored == ["q", "a"]


async def test_a_process_that_started_degraded_takes_the_run_time_keys_from_redis_when_back() -> (
    None
):
    server = RedisServer(extra=["--appendonly", "yes"]).start()
    config = settings(server.url, REDIS_KEY_PREFIX="rt")
    environ = {"OPENAI_API_KEY": keygen.openai_project_key()}
    try:
        first = KeyManager(settings=config, environ=environ)
        await first.add_key(APIKey(key_id="runtime", model_name=MODEL, provider="openai"))
        await first.close()
        server.stop()
        later = KeyManager(settings=config, environ=environ)
        try:
            await later.start()
            during = set(later.keys)
            server.start()
            await until(lambda: not later.store.degraded)
            await later.select_key(MODEL)  # the first request after: reloaded from Redis
            after = set(later.keys)
        finally:
            await later.close()
    finally:
        server.cleanup()
    assert "runtime" not in during  # run-time changes live only in Redis
    assert "runtime" in after


@pytest.mark.parametrize("read", ["snapshot", "health", "bucket_usage"])
async def test_a_pool_read_that_finds_redis_gone_is_answered_by_the_local_store(
    tmp_path: Path, read: str
) -> None:
    """The reads of the no-room explanation (every rate_limited answer) and of status: the
    first command after Redis died must not fail its caller (a store_unavailable answer in
    open mode), it switches the store and runs locally."""
    server = RedisServer().start()
    try:
        config = settings(server.url, REDIS_KEY_PREFIX="deg-read")
        async with sim_router(config, tmp_path, [PoolKey("a", rpm=600)]) as (router, _sim):
            await router.send_one_shot("hello", MODEL)
            engine, store = router.key_manager.engine, router.key_manager.store
            key = router.key_manager.keys["a"]
            server.stop()
            assert not store.degraded
            if read == "snapshot":
                got: Any = await engine.snapshot(["a"])
                assert got["a"]["health"]["state"] == "ok"
            elif read == "health":
                got = await engine.health("a")
                assert got["state"] == "ok"
            else:
                got = await engine.bucket_usage(f"{key.group}|{MODEL}", key)
                assert isinstance(got, dict)
            assert store.degraded
    finally:
        server.stop()
