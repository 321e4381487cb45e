"""The script lane (kernel/script_lane.py): scripts on one auto-pipelined connection.

Against a real redis-server: many concurrent calls each get their own reply, error replies go to
their own caller, NOSCRIPT sends the source, a cancelled caller leaves the connection in step, a
restarted Redis is reconnected to, and close() fails what is queued.
"""

from __future__ import annotations

import asyncio
import hashlib

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from kernel.script_lane import ScriptLane, _pack, _python_pack
from kernel.settings import Settings
from kernel.store import create_store
from lua import Script
from tests.helpers import eventually
from tests.servers import RedisServer, redis_server

pytestmark = pytest.mark.integration


def _script(source: str) -> Script:
    sha = hashlib.sha1(source.encode()).hexdigest()  # noqa: S324 - Redis names scripts by SHA1
    return Script(name="t", source=source, sha=sha)


ECHO = _script("return {KEYS[1], ARGV[1], tonumber(ARGV[2]) * 2}")
INCR = _script("return redis.call('INCRBY', KEYS[1], ARGV[1])")
FAIL_ON_ODD = _script(
    "if tonumber(ARGV[1]) % 2 == 1 then return redis.error_reply('odd ' .. ARGV[1]) end "
    "return tonumber(ARGV[1])"
)
SLOW = _script(
    "local t = redis.call('TIME'); local s = t[1] * 1e6 + t[2]; "
    "while true do local n = redis.call('TIME'); if n[1] * 1e6 + n[2] - s > 200000 then break end end "
    "return ARGV[1]"
)


def _lane(server: RedisServer, **options: object) -> ScriptLane:
    pool = aioredis.BlockingConnectionPool.from_url(server.url, decode_responses=True, **options)
    return ScriptLane(pool)


def test_packing_matches_redis_py() -> None:
    parts = ("EVALSHA", "abc", 2, "k1", "k2", "text", 3, 0.25, b"raw", "é")
    assert b"".join(_pack("EVALSHA", "abc", ["k1", "k2"], ["text", 3, 0.25, b"raw", "é"])) == (
        b"".join(_python_pack(parts))
    )


async def test_many_concurrent_calls_each_get_their_own_reply() -> None:
    with redis_server() as server:
        lane = _lane(server)
        try:
            replies = await asyncio.gather(
                *(lane.run(ECHO, [f"k{i}"], [f"v{i}", i]) for i in range(500))
            )
            assert replies == [[f"k{i}", f"v{i}", 2 * i] for i in range(500)]
            # one at a time too (the idle path writes at once)
            for i in range(20):
                assert await lane.run(INCR, ["counter"], [i]) == sum(range(i + 1))
        finally:
            await lane.close()


async def test_error_replies_reach_their_own_callers() -> None:
    with redis_server() as server:
        lane = _lane(server)
        try:
            results = await asyncio.gather(
                *(lane.run(FAIL_ON_ODD, [], [i]) for i in range(40)), return_exceptions=True
            )
            for i, result in enumerate(results):
                if i % 2:
                    assert isinstance(result, ResponseError) and f"odd {i}" in str(result)
                else:
                    assert result == i
        finally:
            await lane.close()


async def test_noscript_sends_the_source_once_then_uses_the_sha() -> None:
    with redis_server() as server:
        lane = _lane(server)
        client = aioredis.Redis.from_url(server.url, decode_responses=True)
        try:
            assert await client.script_exists(INCR.sha) == [False]
            assert await lane.run(INCR, ["n"], [1]) == 1
            assert await client.script_exists(INCR.sha) == [True]
            await client.script_flush()
            assert await asyncio.gather(*(lane.run(INCR, ["n"], [1]) for _ in range(10))) == list(
                range(2, 12)
            )
        finally:
            await client.aclose()
            await lane.close()


async def test_a_cancelled_caller_leaves_the_connection_in_step() -> None:
    with redis_server() as server:
        lane = _lane(server)
        try:
            slow = asyncio.ensure_future(lane.run(SLOW, [], ["slow"]))
            # written (in flight on the connection), so its reply will come after the cancel
            await eventually(lambda: lane._channel is not None and lane._channel.inflight)
            slow.cancel()
            # calls made after it still get their own replies, not the slow one's
            replies = await asyncio.gather(*(lane.run(ECHO, ["k"], [str(i), i]) for i in range(5)))
            assert replies == [["k", str(i), 2 * i] for i in range(5)]
            with pytest.raises(asyncio.CancelledError):
                await slow
        finally:
            await lane.close()


async def test_a_restarted_redis_is_reconnected_to() -> None:
    with redis_server() as server:
        lane = _lane(server, socket_timeout=1, socket_connect_timeout=1)
        try:
            assert await lane.run(INCR, ["n"], [5]) == 5
            server.restart()  # the lane's connection is dead; data and scripts are gone
            assert await lane.run(INCR, ["n"], [1]) == 1
            assert await asyncio.gather(*(lane.run(INCR, ["n"], [1]) for _ in range(5))) == [
                2,
                3,
                4,
                5,
                6,
            ]
        finally:
            await lane.close()


async def test_an_unreachable_redis_fails_with_a_connection_error() -> None:
    server = RedisServer()  # never started: nothing listens on its port
    lane = _lane(server, socket_connect_timeout=1)
    try:
        with pytest.raises(RedisConnectionError):
            await lane.run(ECHO, ["k"], ["v", 1])
    finally:
        await lane.close()
        server.cleanup()


async def test_close_fails_queued_calls_and_refuses_new_ones() -> None:
    with redis_server() as server:
        lane = _lane(server)
        assert await lane.run(ECHO, ["k"], ["v", 1]) == ["k", "v", 2]
        pending = [asyncio.ensure_future(lane.run(SLOW, [], [str(i)])) for i in range(3)]
        await asyncio.sleep(0)  # queued, not yet written
        await lane.close()
        for task in pending:
            with pytest.raises(RedisConnectionError):
                await task
        with pytest.raises(RedisConnectionError, match="closed"):
            await lane.run(ECHO, ["k"], ["v", 1])


async def test_the_store_uses_a_lane_on_standalone_redis_only() -> None:
    with redis_server() as server:
        store = create_store(Settings.from_env({}, REDIS_URL=server.url))
        try:
            assert store.lane is not None
            assert await store.run(INCR, ["n"], [2]) == 2
            # other commands still go through the client's pool
            assert await store.call(store.client.get("n")) == "2"
        finally:
            await store.close()
    embedded = create_store(Settings.from_env({}))
    try:
        assert embedded.lane is None
    finally:
        await embedded.close()
