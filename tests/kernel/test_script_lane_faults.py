"""The script lane (kernel/script_lane.py) under real faults.

Its connection parses replies as they arrive (an asyncio.Protocol feeding hiredis) and keeps one
deadline for the calls in flight. Against real redis-servers: Redis killed with calls in flight
(they fail and are retried, none hangs), a Redis that stops answering (CLIENT PAUSE: the deadline
fires), replies split across many reads, and calls pipelined behind slow scripts (progress keeps
the deadline away).
"""

from __future__ import annotations

import asyncio
import string

import pytest
import redis.asyncio as aioredis
from redis.exceptions import AuthenticationError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from kernel.script_lane import ScriptLane
from tests.helpers import eventually
from tests.kernel.test_script_lane import ECHO, INCR, SLOW, _lane, _script
from tests.servers import RedisServer, redis_server

pytestmark = pytest.mark.integration

BIG = _script(
    "local out = {} for i = 1, tonumber(ARGV[1]) do out[i] = ARGV[2] .. i end "
    "return {string.rep(ARGV[2], tonumber(ARGV[3])), out}"
)


async def _paused_in_flight(
    lane: ScriptLane, admin: aioredis.Redis, calls: int
) -> list[asyncio.Future[object]]:
    """``calls`` INCRs written and waiting on a Redis whose writes are paused."""
    assert await lane.run(ECHO, ["k"], ["v", 1]) == ["k", "v", 2]  # connected, script loaded
    await admin.execute_command("CLIENT", "PAUSE", "60000", "WRITE")
    pending = [asyncio.ensure_future(lane.run(INCR, ["n"], [1])) for _ in range(calls)]
    await eventually(lambda: lane._channel is not None and len(lane._channel.inflight) == calls)
    return pending


async def test_redis_killed_mid_pipeline_calls_are_retried_on_the_next_one() -> None:
    with redis_server() as server:
        lane = _lane(server, socket_timeout=10)
        admin = aioredis.Redis.from_url(server.url, decode_responses=True)
        try:
            pending = await _paused_in_flight(lane, admin, 20)
            await admin.aclose()
            # killed and back (empty, no scripts, not paused) before the loop runs again: the
            # lane sees its connection lost with 20 calls in flight, and retries them there
            server.kill()
            server.start()
            replies = await asyncio.wait_for(asyncio.gather(*pending), 30)
            assert sorted(replies) == list(range(1, 21))  # each ran once, on the new server
            assert await lane.run(INCR, ["n"], [1]) == 21
        finally:
            await lane.close()


async def test_redis_killed_for_good_every_call_in_flight_fails() -> None:
    with redis_server() as server:
        lane = _lane(server, socket_timeout=10, socket_connect_timeout=1)
        admin = aioredis.Redis.from_url(server.url, decode_responses=True)
        try:
            pending = await _paused_in_flight(lane, admin, 20)
            await admin.aclose()
            server.kill()
            results = await asyncio.wait_for(asyncio.gather(*pending, return_exceptions=True), 30)
            assert all(isinstance(result, RedisConnectionError) for result in results), results
            with pytest.raises(RedisConnectionError):
                await lane.run(ECHO, ["k"], ["v", 1])
        finally:
            await lane.close()


async def test_a_redis_that_stops_answering_times_the_calls_out() -> None:
    with redis_server() as server:
        lane = _lane(server, socket_timeout=0.3)
        admin = aioredis.Redis.from_url(server.url, decode_responses=True)
        try:
            pending = await _paused_in_flight(lane, admin, 10)
            # every attempt's deadline fires (the retries' connections are paused too)
            results = await asyncio.wait_for(asyncio.gather(*pending, return_exceptions=True), 30)
            assert all(isinstance(result, RedisTimeoutError) for result in results), results
            await admin.execute_command("CLIENT", "UNPAUSE")
            assert await lane.run(ECHO, ["k"], ["v", 2]) == ["k", "v", 4]  # a new connection
        finally:
            await admin.aclose()
            await lane.close()


async def test_calls_in_flight_longer_than_the_timeout_while_replies_come() -> None:
    with redis_server() as server:
        lane = _lane(server, socket_timeout=0.8)
        try:
            # always a call in flight for 1.6 s (the next is written while the one before runs),
            # each reply 0.2 s after the previous: the deadline follows the replies
            assert await lane.run(SLOW, [], ["loaded"]) == "loaded"
            link = lane._channel
            current = asyncio.ensure_future(lane.run(SLOW, [], ["0"]))
            for i in range(1, 9):
                await asyncio.sleep(0.05)  # pacing: into Redis while the one before runs
                following = asyncio.ensure_future(lane.run(SLOW, [], [str(i)]))
                assert await current == str(i - 1)
                current = following
            assert await current == "8"
            assert lane._channel is link  # never timed out (a retry would have hidden it)
        finally:
            await lane.close()


async def test_big_replies_split_across_reads_reach_their_callers() -> None:
    with redis_server() as server:
        lane = _lane(server)
        try:
            letters = string.ascii_lowercase
            calls = [
                lane.run(BIG, [], [2000 * (i + 1), letters[i], 400_000 * (i + 1)]) for i in range(4)
            ]
            calls += [lane.run(ECHO, [f"k{i}"], [f"v{i}", i]) for i in range(50)]
            replies = await asyncio.gather(*calls)
            for i, (text, items) in enumerate(replies[:4]):
                assert text == letters[i] * 400_000 * (i + 1)
                assert items == [f"{letters[i]}{n}" for n in range(1, 2000 * (i + 1) + 1)]
            assert replies[4:] == [[f"k{i}", f"v{i}", 2 * i] for i in range(50)]
        finally:
            await lane.close()


async def test_password_and_database_from_the_url() -> None:
    server = RedisServer(extra=["--requirepass", "lane-secret"]).start()
    base = f"127.0.0.1:{server.port}"
    lane = ScriptLane(aioredis.BlockingConnectionPool.from_url(f"redis://:lane-secret@{base}/3"))
    wrong = ScriptLane(aioredis.BlockingConnectionPool.from_url(f"redis://:nope@{base}/3"))
    admin = aioredis.Redis.from_url(f"redis://:lane-secret@{base}/3", decode_responses=True)
    try:
        assert await lane.run(INCR, ["in-db-3"], [7]) == 7
        # AUTH and SELECT were made on the lane's connection
        assert await admin.get("in-db-3") == "7"
        with pytest.raises(AuthenticationError):  # a ConnectionError: retried, then raised
            await wrong.run(INCR, ["in-db-3"], [1])
    finally:
        await admin.aclose()
        await lane.close()
        await wrong.close()
        server.cleanup()
