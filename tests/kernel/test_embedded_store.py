"""The embedded store's keyspace and Lua bridge (kernel/embedded/), each behaviour checked against
a real redis-server: the same command or script on both answers the same value or the same
error. TTLs are checked with the embedded server's injectable clock (time moved by hand)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.exceptions import NoScriptError, ResponseError

from kernel.embedded.client import EmbeddedClient
from kernel.embedded.server import EmbeddedServer
from kernel.embedded_store import private_client

Command = Callable[[Any, str], Awaitable[Any]]


@pytest.fixture
async def both(redis_url: str) -> AsyncIterator[tuple[Any, Any]]:
    real = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        yield real, private_client()
    finally:
        await real.aclose()


async def outcome(client: Any, command: Command, key: str) -> Any:
    """What ``command`` answers, or (exception type, message) when it fails."""
    try:
        return await command(client, key)
    except ResponseError as exc:
        return type(exc).__name__, str(exc).split(" script: ")[0]


async def same(both: tuple[Any, Any], command: Command) -> Any:
    key = f"t{uuid.uuid4().hex[:10]}"
    answers = [await outcome(client, command, key) for client in both]
    assert answers[0] == answers[1]
    return answers[1]


def script(source: str, *args: Any) -> Command:
    return lambda c, key: c.eval(source, 1, key, *args)


# -- Lua -> Redis: what a script's return value becomes -------------------------------------------
@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("return 3.7", 3),  # numbers truncate toward zero
        ("return -3.7", -3),
        ("return 1e3", 1000),
        ("return true", 1),
        ("return false", None),
        ("return nil", None),
        ("return 'text'", "text"),
        ("return {1, 2.9, 'x', false, 'after'}", [1, 2, "x", None, "after"]),
        ("return {1, nil, 3}", [1]),  # an array ends at its first nil
        ("return {{1, 'a'}, {}}", [[1, "a"], []]),
        ("return {ok = 'FINE'}", "FINE"),
        ("return redis.status_reply('FINE')", "FINE"),
        ("return {x = 1}", []),  # a table without an array part
    ],
)
async def test_a_scripts_value_becomes_the_same_reply(
    both: tuple[Any, Any], source: str, expected: Any
) -> None:
    assert await same(both, script(source)) == expected


async def test_an_error_reply_from_a_script_is_the_same_error(both: tuple[Any, Any]) -> None:
    assert await same(both, script("return redis.error_reply('my error')")) == (
        "ResponseError",
        "my error",
    )


# -- Redis -> Lua: what redis.call answers a script --------------------------------------------------
@pytest.mark.parametrize(
    ("source", "expected"),
    [
        # integer reply -> number; nil -> false; status -> {ok=}; array -> table
        ("return type(redis.call('HINCRBY', KEYS[1], 'f', 2))", "number"),
        ("return type(redis.call('GET', KEYS[1]))", "boolean"),
        ("return redis.call('SET', KEYS[1], 'v').ok", "OK"),
        (
            "redis.call('HSET', KEYS[1], 'a', '1') local r = redis.call('HMGET', KEYS[1], 'a', 'b')"
            " return {r[1], type(r[2])}",
            ["1", "boolean"],
        ),
        # numbers sent as arguments: Redis formats them (%.17g)
        ("redis.call('SET', KEYS[1], 0.1) return redis.call('GET', KEYS[1])", None),
        ("redis.call('SET', KEYS[1], 12) return redis.call('GET', KEYS[1])", "12"),
        ("redis.call('SET', KEYS[1], 2^53 + 1e4) return redis.call('GET', KEYS[1])", None),
        ("return redis.call('ZINCRBY', KEYS[1], 1/3, 'm')", None),
        (
            "redis.call('ZADD', KEYS[1], 1.5, 'a', 1.5, 'b', '-inf', 'c')"
            " return redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')",
            ["c", "-inf", "a", "1.5", "b", "1.5"],
        ),
    ],
)
async def test_redis_call_answers_a_script_the_same(
    both: tuple[Any, Any], source: str, expected: Any
) -> None:
    answer = await same(both, script(source))
    if expected is not None:
        assert answer == expected


@pytest.mark.parametrize(
    "source",
    [
        "redis.call('SET', KEYS[1], 'v') return redis.pcall('HGET', KEYS[1], 'f').err",
        "redis.call('SET', KEYS[1], 'v') return redis.call('HGET', KEYS[1], 'f')",
        "return redis.pcall('HINCRBY', KEYS[1], 'f', 'x').err",
        "redis.call('HSET', KEYS[1], 'f', 'x') return redis.pcall('HINCRBY', KEYS[1], 'f', 1).err",
        "return redis.pcall('ZADD', KEYS[1], 'NX', 'XX', 1, 'm').err",
        "return redis.pcall('ZADD', KEYS[1], 'GT', 'LT', 1, 'm').err",
        "return redis.pcall('ZADD', KEYS[1], 'nan', 'm').err",
        "return redis.pcall('ZRANGEBYSCORE', KEYS[1], 'x', 1).err",
        "return redis.pcall('SET', KEYS[1], 'v', 'EX', 0).err",
        "return redis.call('SET', KEYS[1], {})",
        "local x = nil return x.y",
    ],
)
async def test_errors_inside_scripts_are_the_same(both: tuple[Any, Any], source: str) -> None:
    await same(both, script(source))


# -- plain commands (the product's reads, the tests' probes) ---------------------------------------
async def _hash(c: Any, key: str) -> Any:
    await c.hset(key, mapping={"a": 1, "b": "x"})
    await c.hset(key, "c", 2.5)
    return [await c.hgetall(key), await c.hmget(key, ["a", "z"]), await c.hvals(key)]


async def _zset(c: Any, key: str) -> Any:
    await c.zadd(key, {"a": 1, "b": 2, "c": 2, "d": 3.25})
    await c.zadd(key, {"a": 5}, xx=True, gt=True)
    await c.zadd(key, {"d": 9}, xx=True, lt=True)
    return [
        await c.zrange(key, 0, -1, withscores=True),
        await c.zrangebyscore(key, "(2", "+inf", withscores=True, start=0, num=1),
        await c.zrevrange(key, 0, 1),
        await c.zcount(key, "-inf", "(3.25"),
        await c.zscore(key, "d"),
        await c.zrem(key, "a", "nope"),
        await c.zcard(key),
    ]


async def _strings(c: Any, key: str) -> Any:
    await c.set(key, "10", ex=100)
    return [await c.incr(key), await c.ttl(key), await c.set(key, "x", nx=True), await c.get(key)]


async def _stream(c: Any, key: str) -> Any:
    for n in range(5):
        await c.xadd(key, {"r": str(n)}, id=f"{n + 1}-0", maxlen=3, approximate=False)
    first = await c.xrange(key)
    return [
        first,
        await c.xrevrange(key, count=1),
        await c.xlen(key),
        await c.xtrim(key, minid="4"),
    ]


async def _lists_sets(c: Any, key: str) -> Any:
    await c.rpush(key, "a", "b", "c")
    await c.sadd(key + "s", "x", "y")
    return [
        await c.lrange(key, -2, -1),
        await c.lindex(key, -1),
        await c.lpop(key),
        await c.llen(key),
        sorted(await c.smembers(key + "s")),
        await c.srem(key + "s", "x"),
        await c.exists(key, key + "s", key + "none"),
        await c.delete(key, key + "s"),
    ]


async def _wrong_type(c: Any, key: str) -> Any:
    await c.set(key, "v")
    return await c.hget(key, "f")


async def _not_an_integer(c: Any, key: str) -> Any:
    await c.set(key, "v")
    return await c.incr(key)


async def _scan_and_pipeline(c: Any, key: str) -> Any:
    await c.set(key + ":a", "1")
    await c.hset(key + ":b", "f", "2")
    found = sorted([k async for k in c.scan_iter(match=key + ":*", count=10)])
    pipe = c.pipeline(transaction=False)
    pipe.get(key + ":a")
    pipe.hget(key + ":b", "f")
    pipe.hgetall(key + ":none")
    return [found, await pipe.execute(), await c.type(key + ":b")]


@pytest.mark.parametrize(
    "command",
    [
        _hash,
        _zset,
        _strings,
        _stream,
        _lists_sets,
        _wrong_type,
        _not_an_integer,
        _scan_and_pipeline,
    ],
)
async def test_commands_answer_the_same(both: tuple[Any, Any], command: Command) -> None:
    await same(both, command)


async def test_evalsha_of_an_unknown_script_is_noscript() -> None:
    client = private_client()
    with pytest.raises(NoScriptError):
        await client.evalsha("0" * 40, 0)
    sha = await client.script_load("return 7")
    assert await client.evalsha(sha, 0) == 7
    assert await client.script_exists(sha) == [True]


async def test_a_command_the_store_does_not_implement_is_an_error_naming_it() -> None:
    client = private_client()
    with pytest.raises(ResponseError, match=r"unknown command 'OBJECT'.*embedded store"):
        await client.object("encoding", "k")
    with pytest.raises(ResponseError, match=r"unknown command 'SINTER'"):
        await client.eval("return redis.call('SINTER', 'a', 'b')", 0)


# -- TTLs, with the clock moved by hand ------------------------------------------------------------
class Clock:
    def __init__(self, now: float = 1_800_000_000.0, step: float = 0.0) -> None:
        self.now, self.step = now, step

    def __call__(self) -> float:
        now = self.now
        self.now += self.step
        return now


async def test_keys_expire_when_the_clock_passes_their_ttl() -> None:
    clock = Clock()
    client = EmbeddedClient(EmbeddedServer(clock))
    await client.set("a", "1", px=1500)
    await client.hset("h", "f", "v")
    await client.expire("h", 10)
    assert (await client.pttl("a"), await client.ttl("h"), await client.ttl("none")) == (
        1500,
        10,
        -2,
    )
    clock.now += 1.499
    assert await client.get("a") == "1"
    clock.now += 0.001
    assert await client.get("a") is None and await client.exists("a") == 0
    clock.now += 8.499
    assert (await client.hget("h", "f"), await client.pttl("h")) == ("v", 1)
    clock.now += 0.001
    assert await client.hgetall("h") == {} and await client.keys("*") == []


async def test_a_key_set_again_loses_its_ttl_and_expire_zero_deletes() -> None:
    client = EmbeddedClient(EmbeddedServer(Clock()))
    await client.set("a", "1", ex=5)
    await client.set("a", "2")
    assert await client.ttl("a") == -1
    await client.expire("a", 0)
    assert await client.exists("a") == 0


async def test_a_script_sees_time_frozen_at_its_start() -> None:
    """Keys expire against the script's start time while it runs (Redis 7), however long it
    runs: the clock here moves one second on every reading."""
    clock = Clock(step=1.0)
    client = EmbeddedClient(EmbeddedServer(clock))
    await client.set("a", "1", px=1500)  # read at t0, deadline t0 + 1.5 s
    source = "local t = redis.call('TIME') local t2 = redis.call('TIME') return redis.call('EXISTS', KEYS[1])"
    assert await client.eval(source, 1, "a") == 1  # started at t0 + 1 s: still there
    assert await client.exists("a") == 0  # t0 + 4 s
