"""The embedded store's active expiry (kernel/embedded/expiry.py): keys with a TTL are removed
once it passes though no command touches them, from the Python keyspace and Lua's tables alike.
Time is the server's injectable clock, moved by hand; the cycle is driven by unrelated commands
(a script that touches no key, PING), as a busy store's traffic drives it."""

from __future__ import annotations

from kernel.embedded.client import EmbeddedClient
from kernel.embedded.expiry import BATCH, CYCLE_MS, PLAIN_EVERY, SLACK
from kernel.embedded.keyspace import Keyspace
from kernel.embedded.server import EmbeddedServer
from kernel.redis_keys import RedisKeys
from kernel.store import Store
from lua import acquire_limits
from lua.acquire_limits import AcquireArgs, AcquireKeys

NOOP = "return 1"


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def new_client() -> tuple[EmbeddedClient, Keyspace, Clock]:
    clock = Clock()
    client = EmbeddedClient(EmbeddedServer(clock))
    return client, client.server.keyspace, clock


def lua_sizes(ks: Keyspace) -> tuple[int, int, int]:
    """How many keys Lua's hash tables, TTL mirror and other-type mirror hold."""
    h = ks.hashes
    return len(list(h.tables.keys())), len(list(h.ttls.keys())), len(list(h.other.keys()))


async def write_every_type(client: EmbeddedClient, n: int, ms: int) -> None:
    for i in range(n):
        await client.hset(f"h{i}", "f", "v")
        await client.set(f"s{i}", "v", px=ms)
        await client.zadd(f"z{i}", {"m": 1})
        await client.rpush(f"l{i}", "a")
        await client.sadd(f"e{i}", "a")
        await client.xadd(f"x{i}", {"f": "v"})
        for key in (f"h{i}", f"z{i}", f"l{i}", f"e{i}", f"x{i}"):
            await client.pexpire(key, ms)


async def test_keys_of_every_type_go_after_their_ttl_without_being_touched() -> None:
    client, ks, clock = new_client()
    n = 50
    await write_every_type(client, n, 1000)
    await client.set("keep", "v")
    assert len(ks.data) == 6 * n + 1 and lua_sizes(ks) == (n, 6 * n, 5 * n + 1)
    clock.now += 1.001
    for _ in range(6 * n // BATCH + 1):  # scripts that touch no key drive the cycle
        assert await client.eval(NOOP, 0) == 1
    assert list(ks.data) == [b"keep"] and ks.expires == {}
    assert lua_sizes(ks) == (0, 0, 1)
    assert await client.dbsize() == 1


async def test_plain_commands_drive_the_cycle_too() -> None:
    client, ks, clock = new_client()
    await write_every_type(client, 10, 500)
    clock.now += 0.5
    for _ in range(PLAIN_EVERY):
        assert await client.ping()
    assert ks.data == {} and lua_sizes(ks) == (0, 0, 0)


async def test_a_key_whose_ttl_was_extended_or_removed_survives() -> None:
    client, ks, clock = new_client()
    for key in ("extended", "persisted", "set_again", "kept_ttl"):
        await client.set(key, "v", px=1000)
    await client.hset("hash_extended", "f", "v")
    await client.pexpire("hash_extended", 1000)
    await client.pexpire("extended", 5000)
    await client.pexpire("hash_extended", 5000)
    await client.persist("persisted")
    await client.set("set_again", "w")
    await client.set("kept_ttl", "w", keepttl=True)  # keeps its 1 s: goes
    clock.now += 2.0
    await client.eval(NOOP, 0)
    assert sorted(ks.data) == [b"extended", b"hash_extended", b"persisted", b"set_again"]
    clock.now += 3.0
    await client.eval(NOOP, 0)
    assert sorted(ks.data) == [b"persisted", b"set_again"]
    assert lua_sizes(ks) == (0, 0, 2)


async def test_a_key_deleted_and_written_again_keeps_its_new_ttl() -> None:
    client, ks, clock = new_client()
    await client.set("a", "v", px=1000)
    await client.delete("a")
    await client.set("a", "w", px=3000)
    clock.now += 2.0
    await client.eval(NOOP, 0)
    assert ks.data == {b"a": b"w"}
    clock.now += 1.0
    await client.eval(NOOP, 0)
    assert ks.data == {}


async def test_the_cycle_removes_a_bounded_batch_and_the_next_command_resumes() -> None:
    client, ks, clock = new_client()
    total = 3 * BATCH + 10
    for i in range(total):
        await client.set(f"k{i}", "v", px=100)
    clock.now += 0.1
    left = total
    while left:  # one batch per script, until none is left
        await client.eval(NOOP, 0)
        removed = min(BATCH, left)
        left -= removed
        assert len(ks.data) == left
    assert ks.deadlines == [] and ks.expires == {}


async def test_the_cycle_runs_once_per_cycle_period_when_nothing_is_left() -> None:
    client, ks, clock = new_client()
    await client.eval(NOOP, 0)  # a cycle ran: the next is CYCLE_MS away
    await client.set("a", "v", px=1)
    clock.now += 0.001
    await client.eval(NOOP, 0)
    assert b"a" in ks.data  # not yet looked for
    clock.now += CYCLE_MS / 1000
    await client.eval(NOOP, 0)
    assert ks.data == {}


async def test_a_ttl_set_again_and_again_keeps_the_index_small() -> None:
    client, ks, _ = new_client()
    await client.set("a", "v")
    for i in range(3 * SLACK):
        await client.pexpire("a", 10_000 + i)
    assert len(ks.deadlines) <= 2 + SLACK


async def test_a_gateway_loop_keeps_its_limits_call_ids_bounded() -> None:
    """acquire_limits with a call id on every request (what the gateway sends): the ids, kept
    call_ttl each, number at most rate x (call_ttl + one cycle) at any time."""
    client, ks, clock = new_client()
    store = Store(client=client, kind="embedded", keys=RedisKeys("gw"))
    k = store.keys
    rate, ttl, requests = 200, 1, 1000  # per second, seconds
    args = AcquireArgs("", "acquire", 1_000_000, 0, 0, 0, 10, call_ttl=ttl)
    most = 0
    for i in range(requests):
        keys = AcquireKeys(
            k.rl_user("u"), k.rl_global, k.rl_vkey("v", "rpm"), k.rl_vkey("v", "tpm"),
            k.rl_vkey_revoked("v"), k.rl_call(f"c{i}"),
        )  # fmt: skip
        assert (await acquire_limits.run(store, keys, args)).allowed
        most = max(most, sum(b":call:" in key for key in ks.data))
        clock.now += 1 / rate
    assert most <= rate * (ttl + CYCLE_MS / 1000) + 1
    assert lua_sizes(ks)[1] <= rate * (ttl + CYCLE_MS / 1000) + 2
