"""The embedded store's hashes live in Lua tables (kernel/embedded/luahash.py): a script's hash
commands are answered in Lua, Python's through the same Lua code, and the key's name, type and TTL
stay in the Python keyspace. Each case runs on a real redis-server and on the embedded store and
must answer the same; TTL cases move the embedded server's clock by hand."""

from __future__ import annotations

from typing import Any

import pytest
from redis.exceptions import ResponseError

from kernel.embedded.client import EmbeddedClient
from kernel.embedded.server import EmbeddedServer
from tests.kernel.test_embedded_store import Clock, Command, both, same, script

__all__ = ["both"]  # the fixture, shared


# -- written on one side, read on the other --------------------------------------------------------
async def _script_writes_python_reads(c: Any, key: str) -> Any:
    await c.eval(
        "redis.call('HSET', KEYS[1], 'b', '2', 'a', 1) redis.call('HINCRBY', KEYS[1], 'n', 5)"
        " redis.call('HSETNX', KEYS[1], 'a', 'no') redis.call('HINCRBYFLOAT', KEYS[1], 'x', '1.5')",
        1,
        key,
    )
    return [
        await c.hgetall(key),
        await c.hkeys(key),
        await c.hvals(key),
        await c.hlen(key),
        await c.hexists(key, "n"),
        await c.hmget(key, ["a", "zz", "n"]),
        await c.type(key),
        sorted([k async for k in c.scan_iter(match=key, _type="hash")]),
        await c.exists(key),
    ]


async def _python_writes_script_reads(c: Any, key: str) -> Any:
    await c.hset(key, mapping={"a": "1", "b": "x"})
    await c.hincrby(key, "a", 41)
    await c.hsetnx(key, "c", "3")
    return await c.eval(
        "return {redis.call('HGET', KEYS[1], 'a'), redis.call('HMGET', KEYS[1], 'b', 'q', 'c'),"
        " redis.call('HGETALL', KEYS[1]), redis.call('HLEN', KEYS[1]),"
        " redis.call('HEXISTS', KEYS[1], 'q'), redis.call('HKEYS', KEYS[1])}",
        1,
        key,
    )


async def _insertion_order(c: Any, key: str) -> Any:
    """Redis lists a small hash's fields in insertion order: a field set again keeps its place,
    one deleted and set again goes last."""
    await c.eval(
        "redis.call('HSET', KEYS[1], 'a', 1, 'b', 2, 'c', 3, 'd', 4)"
        " redis.call('HSET', KEYS[1], 'a', 'again') redis.call('HDEL', KEYS[1], 'b')"
        " redis.call('HSET', KEYS[1], 'b', 'back')",
        1,
        key,
    )
    await c.hdel(key, "c")
    await c.hset(key, "c", "last")
    return [await c.hkeys(key), await c.hvals(key), await c.eval(_HGETALL, 1, key)]


_HGETALL = "return redis.call('HGETALL', KEYS[1])"


async def _emptied_hash_is_gone(c: Any, key: str) -> Any:
    await c.hset(key, mapping={"a": "1", "b": "2"})
    await c.expire(key, 100)
    removed = await c.eval("return redis.call('HDEL', KEYS[1], 'a', 'b', 'nope')", 1, key)
    after = [await c.exists(key), await c.type(key), await c.ttl(key)]
    await c.eval("redis.call('HSET', KEYS[1], 'new', 'v')", 1, key)  # a new hash, no TTL
    return [removed, after, await c.hgetall(key), await c.ttl(key), await c.hdel(key, "new")]


async def _other_types_are_wrongtype(c: Any, key: str) -> Any:
    await c.set(key + "s", "v")
    await c.zadd(key + "z", {"m": 1})
    await c.hset(key + "h", "f", "v")
    await c.rpush(key + "l", "x")
    await c.sadd(key + "t", "x")
    await c.xadd(key + "x", {"f": "v"}, id="1-0")
    answers = [
        await c.eval("return redis.pcall('HGET', KEYS[1], 'f')", 1, key + "s"),
        await c.eval("return redis.pcall('HMGET', KEYS[1], 'f')", 1, key + "l"),
        await c.eval("return redis.pcall('HEXISTS', KEYS[1], 'f')", 1, key + "t"),
        await c.eval("return redis.pcall('HSET', KEYS[1], 'f', 'v')", 1, key + "x"),
        await c.eval("return redis.pcall('HSET', KEYS[1], 'f', 'v')", 1, key + "z"),
        await c.eval("return redis.pcall('HINCRBY', KEYS[1], 'f', 1)", 1, key + "s"),
        await c.eval("return redis.pcall('GET', KEYS[1])", 1, key + "h"),
        await c.eval("return redis.pcall('ZADD', KEYS[1], 1, 'm')", 1, key + "h"),
    ]
    for command in (c.get(key + "h"), c.lpush(key + "h", "x"), c.hget(key + "s", "f")):
        try:
            answers.append(await command)
        except ResponseError as exc:
            answers.append(str(exc))
    return [a if not isinstance(a, ResponseError) else str(a) for a in answers]


async def _set_over_a_hash(c: Any, key: str) -> Any:
    await c.eval("redis.call('HSET', KEYS[1], 'f', 'v') redis.call('EXPIRE', KEYS[1], 50)", 1, key)
    await c.set(key, "s", keepttl=True)
    got = [await c.get(key), await c.ttl(key)]
    got.append(await c.eval("return redis.pcall('HGET', KEYS[1], 'f')", 1, key))
    await c.delete(key)
    await c.eval("redis.call('HSET', KEYS[1], 'g', 'w')", 1, key)
    got.append(await c.hgetall(key))  # the old field did not come back
    return [str(a) if isinstance(a, ResponseError) else a for a in got]


async def _numbers(c: Any, key: str) -> Any:
    return await c.eval(
        "local out = {}"
        " out[1] = redis.call('HINCRBY', KEYS[1], 'a', '999999999999999')"  # 15 digits: in Lua
        " out[2] = redis.call('HINCRBY', KEYS[1], 'a', 1)"  # 16 digits: Python's integers
        " out[3] = redis.call('HINCRBY', KEYS[1], 'b', '9223372036854775806')"
        " out[4] = redis.pcall('HINCRBY', KEYS[1], 'b', 2).err"  # overflow
        " out[5] = redis.call('HINCRBY', KEYS[1], 'c', -7)"
        " out[6] = redis.pcall('HINCRBY', KEYS[1], 'c', '1.5').err"
        " out[7] = redis.pcall('HINCRBY', KEYS[1], 'c', ' 1').err"
        " redis.call('HSET', KEYS[1], 'f', 'x', 'g', '0.5', 'n1', 0/-1, 'n2', 1/3, 'n3', 1e300,"
        " 'n4', 2^53 + 1, 'n5', 12)"
        " out[8] = redis.pcall('HINCRBY', KEYS[1], 'f', 1).err"
        " out[9] = redis.pcall('HINCRBYFLOAT', KEYS[1], 'f', 1).err"
        " out[10] = redis.call('HINCRBYFLOAT', KEYS[1], 'g', '0.25')"
        " out[11] = redis.pcall('HINCRBYFLOAT', KEYS[1], 'g', 'x').err"
        " out[12] = redis.call('HMGET', KEYS[1], 'n1', 'n2', 'n3', 'n4', 'n5', 'a', 'b', 'c')"
        " out[13] = redis.pcall('HINCRBY', KEYS[1], 'a', '-0').err"
        " return out",
        1,
        key,
    )


async def _python_side_numbers(c: Any, key: str) -> Any:
    answers: list[Any] = [await c.hincrby(key, "a", 2**62), await c.hincrby(key, "a", 2**62 - 1)]
    try:
        await c.hincrby(key, "a", 1)
    except ResponseError as exc:
        answers.append(str(exc))
    answers += [await c.hincrbyfloat(key, "f", 0.1), await c.hget(key, "a")]
    return answers


@pytest.mark.parametrize(
    "command",
    [
        _script_writes_python_reads,
        _python_writes_script_reads,
        _insertion_order,
        _emptied_hash_is_gone,
        _other_types_are_wrongtype,
        _set_over_a_hash,
        _numbers,
        _python_side_numbers,
    ],
)
async def test_hashes_answer_the_same(both: tuple[Any, Any], command: Command) -> None:
    await same(both, command)


@pytest.mark.parametrize(
    "source",
    [
        "return redis.pcall('HGET', KEYS[1]).err",
        "return redis.pcall('HSET', KEYS[1], 'f').err",
        "return redis.pcall('HSET', KEYS[1], 'a', 1, 'b').err",
        "return redis.pcall('HMSET', KEYS[1], 'a', 1, 'b').err",
        "return redis.pcall('hget', KEYS[1], {}).err",
        "return redis.pcall('HSET', KEYS[1], 'f', true).err",
        "return redis.pcall('HDEL', KEYS[1]).err",
        "return redis.pcall('ZADD', KEYS[1]).err",  # a command answered by Python: the same text
        "return redis.call('hSeT', KEYS[1], 'f', 'v') + redis.call('hlen', KEYS[1])",
        "redis.call('HMSET', KEYS[1], 'f', 'v') return redis.call('HMSET', KEYS[1], 'g', 1)",
        # numbers where the common calls take strings (they leave the no-table path)
        "redis.call('HSET', KEYS[1], 1, 2.5) return {redis.call('HGET', KEYS[1], 1),"
        " redis.call('HEXISTS', KEYS[1], 1), redis.call('HINCRBY', KEYS[1], 'n', -3),"
        " redis.call('HINCRBY', KEYS[1], 'n', 1e15), redis.pcall('HINCRBY', KEYS[1], 'n', 0/-1).err,"
        " redis.pcall('HINCRBY', KEYS[1], 'n', 0.5).err}",
        "return redis.pcall('HGET', KEYS[1], 'f', 'extra').err",
        "return redis.pcall('HINCRBY', KEYS[1], 'f').err",
    ],
)
async def test_hash_errors_and_names_inside_scripts_are_the_same(
    both: tuple[Any, Any], source: str
) -> None:
    await same(both, script(source))


# -- TTLs: Lua expires a hash against the same time as Python -------------------------------------
async def test_a_hash_expires_in_lua_when_the_clock_passes_its_ttl() -> None:
    clock = Clock()
    client = EmbeddedClient(EmbeddedServer(clock))
    read = "return redis.call('HGET', KEYS[1], 'f')"
    await client.eval("redis.call('HSET', KEYS[1], 'f', 'v', 'g', 'w')", 1, "h")
    await client.eval("redis.call('PEXPIRE', KEYS[1], 1500)", 1, "h")
    clock.now += 1.499
    assert await client.eval(read, 1, "h") == "v"
    clock.now += 0.001
    assert await client.eval(read, 1, "h") is None
    assert (await client.exists("h"), await client.keys("*")) == (0, [])
    await client.eval("redis.call('HSET', KEYS[1], 'f', 'new')", 1, "h")  # no TTL, no old field
    assert (await client.hgetall("h"), await client.ttl("h")) == ({"f": "new"}, -1)


async def test_persist_and_a_new_ttl_reach_lua() -> None:
    clock = Clock()
    client = EmbeddedClient(EmbeddedServer(clock))
    read = "return redis.call('HGET', KEYS[1], 'f')"
    await client.hset("h", "f", "v")
    await client.expire("h", 1)
    await client.persist("h")
    clock.now += 5
    assert await client.eval(read, 1, "h") == "v"
    await client.eval("redis.call('EXPIRE', KEYS[1], 2)", 1, "h")
    clock.now += 1.999
    assert await client.eval(read, 1, "h") == "v"
    clock.now += 0.001
    assert await client.eval(read, 1, "h") is None and await client.hlen("h") == 0


async def test_a_hash_expires_against_the_scripts_start() -> None:
    """The clock moves a second on every reading; the script's hash reads use its start time."""
    clock = Clock(step=1.0)
    client = EmbeddedClient(EmbeddedServer(clock))
    await client.hset("h", "f", "v")
    await client.pexpire("h", 2500)  # read at t0 + 1 s: deadline t0 + 3.5 s
    source = "redis.call('TIME') redis.call('TIME') return redis.call('HGET', KEYS[1], 'f')"
    assert await client.eval(source, 1, "h") == "v"  # started at t0 + 2 s
    assert await client.eval(source, 1, "h") is None  # started at t0 + 5 s


async def test_flush_forgets_the_lua_hashes() -> None:
    client = EmbeddedClient(EmbeddedServer(Clock()))
    await client.eval("redis.call('HSET', KEYS[1], 'f', 'v')", 1, "h")
    await client.flushdb()
    assert await client.eval("return redis.call('HGETALL', KEYS[1])", 1, "h") == []
    assert await client.keys("*") == []


async def test_a_key_of_another_type_that_expired_can_become_a_hash() -> None:
    clock = Clock()
    client = EmbeddedClient(EmbeddedServer(clock))
    await client.set("k", "v", px=1000)
    await client.zadd("z", {"m": 1})
    await client.expire("z", 2)
    write = "return redis.call('HSET', KEYS[1], 'f', 'v')"
    with pytest.raises(ResponseError, match=r"^WRONGTYPE"):
        await client.eval(write, 1, "k")
    clock.now += 2
    assert (await client.eval(write, 1, "k"), await client.eval(write, 1, "z")) == (1, 1)
    assert (await client.type("k"), await client.ttl("z"), await client.hgetall("z")) == (
        "hash",
        -1,
        {"f": "v"},
    )
