"""One encoding of free text in the pool's records, on both sides: Python writes, Lua reads, and the
other way, on real Redis, the real Redis Cluster and the embedded store."""

from __future__ import annotations

from kernel.store import Store
from lua.records import decode_text, encode_text
from tests.helpers import all_stores
from tests.keys.engine_helpers import ManualClock, engine_for, make_key

#: Every ASCII character (the separators and controls among them) and some UTF-8.
EVERY_CHAR = "".join(chr(c) for c in range(128)) + "é€😀%zz%4"


def test_encoding_round_trips_and_leaves_no_separator() -> None:
    encoded = encode_text(EVERY_CHAR)
    assert decode_text(encoded) == EVERY_CHAR
    assert not any(ch in encoded for ch in "\t\n\r|;=,\x00\x7f")


@all_stores
async def test_lua_writes_a_reason_exactly_as_python_encodes_it(store: Store) -> None:
    engine = engine_for(store, ManualClock())
    await engine.configure([make_key("k1", rpm=10)])
    answer = await engine.cooldown("k1", 60, EVERY_CHAR)
    assert answer["reason"] == EVERY_CHAR
    raw = await store.call(store.client.hget(store.keys.pool_health, "k1"))
    fields = raw.split("\t")
    assert len(fields) == 5 and fields[2] == encode_text(EVERY_CHAR)
    health = await engine.health("k1")  # Lua wrote, Python reads
    assert (health["state"], health["reason"]) == ("cooldown", EVERY_CHAR)


@all_stores
async def test_tags_python_writes_are_matched_by_lua_exactly(store: Store) -> None:
    """Tag values with the record's separators: a key tagged team='a;b=c' is not a key tagged
    team='a' and b='c' (before encoding, the first also matched a request for the second)."""
    engine = engine_for(store, ManualClock())
    await engine.configure(
        [
            make_key("tricky", rpm=100, tags={"team": "a;b=c"}),
            make_key("plain", rpm=100, tags={"team": "a", "b": "c"}),
            make_key("comma", rpm=100, tags={"team": "x,y"}),
        ]
    )
    for _ in range(5):
        assert (await engine.reserve("gpt-4o", 1, tags={"team": "a", "b": "c"})).key_id == "plain"
        assert (await engine.reserve("gpt-4o", 1, tags={"team": "a;b=c"})).key_id == "tricky"
        assert (await engine.reserve("gpt-4o", 1, tags={"team": "x,y"})).key_id == "comma"


@all_stores
async def test_an_old_unencoded_health_record_is_read_as_the_scripts_read_it(
    store: Store,
) -> None:
    """A record written before reasons were encoded (a tab in the reason): no error anywhere."""
    engine = engine_for(store, ManualClock())
    await engine.configure([make_key("k1", rpm=10)])
    legacy = "cooldown\t1900000000.000000\tmaint\tenance\t0\t0"
    await store.call(store.client.hset(store.keys.pool_health, "k1", legacy))
    assert (await engine.health("k1"))["state"] == "ok"
    assert (await engine.reserve("gpt-4o", 1)).key_id == "k1"
    snapshot = await engine.snapshot(["k1"])
    assert snapshot["k1"]["health"]["reason"] == "unreadable_record"


@all_stores
async def test_lua_reads_what_python_encodes_and_writes_it_back_the_same(store: Store) -> None:
    engine = engine_for(store, ManualClock())
    await engine.configure([make_key("k1", rpm=10)])
    record = f"disabled\t0.000000\t{encode_text(EVERY_CHAR)}\t0\t0"
    await store.call(store.client.hset(store.keys.pool_health, "k1", record))
    answer = await engine.clear_cooldown("k1")  # a disabled key stays so: Lua reads, rewrites
    assert (answer["state"], answer["reason"]) == ("disabled", EVERY_CHAR)
    assert await store.call(store.client.hget(store.keys.pool_health, "k1")) == record
