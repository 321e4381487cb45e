"""Each of the pool's records defined once per language (lua/records.py, lua/lib_pool.lua): Python
writes, Lua reads, and the other way, on real Redis, the real Redis Cluster and the embedded store;
free text encoded so that no value can break a record."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

import lua
from kernel.store import Store
from lua.records import (
    Health,
    KeyRecord,
    Learned,
    Limits,
    Lows,
    ModelRecord,
    State,
    WeightRecord,
    bucket_name,
    decode_text,
    decode_window,
    encode_text,
    encode_window,
    gcra_level,
    key_field,
    learned_field,
    limits_field,
    lows_field,
    model_field,
    rolled,
    weight_field,
)
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


# -- every record, both ways: Python writes -> Lua reads (and writes back) -> Python reads ---------
#: Reads one record with lib_pool.lua's reader and writes it under another name with its writer
#: (or answers what the reader found, for the records only Python writes).
ECHO = lua.inline(
    "records_echo",
    """-- include: lib_pool
local H, kind, from, to = KEYS[1], ARGV[1], ARGV[2], ARGV[3]
local now = tonumber(ARGV[4]) or 0
if kind == 'state' then write_state(H, to, read_state(H, from))
elseif kind == 'lows' then write_lows(H, to, read_lows(H, from))
elseif kind == 'health' then write_health(H, to, read_health(H, from))
elseif kind == 'learned' then write_learned(H, to, read_learned(H, from))
elseif kind == 'window' then write_window(H, to, read_window(H, from, now))
elseif kind == 'key' then
  local group, active, tags = read_key(H, from)
  write_key(H, to, group, active, tags)
elseif kind == 'model' then
  local burst, tiers = read_model(H, from)
  write_model(H, to, burst, tiers)
elseif kind == 'limits' then
  local L = read_limits(H, from)
  local c = L.c
  return {c.rpm, c.tpm, c.rpd, c.br, c.bt, L.strict and 1 or 0, L.tz, c.itpm, c.otpm, c.bi, c.bo,
          c.learn and 1 or 0}
elseif kind == 'weight' then
  local weight, pattern = read_weight(H, from, to)
  return {string.format('%.17g', weight), pattern or '',
          weight_bucket('grp', redis.call('HGET', H, 'w:' .. from .. '|' .. to), to)}
elseif kind == 'bucket' then return bucket_name(from, to)
end
return 'ok'
""",
)


async def echo(store: Store, kind: str, source: str, target: str, now: float = 0.0) -> Any:
    return await store.run(ECHO, [store.keys.pool_state], [kind, source, target, repr(now)])


async def put(store: Store, field: str, raw: str) -> None:
    await store.call(store.client.hset(store.keys.pool_state, field, raw))


async def get(store: Store, field: str) -> str | None:
    value: str | None = await store.call(store.client.hget(store.keys.pool_state, field))
    return value


STATES = [
    State(),
    State(1_800_000_012.5, 1_800_000_030.000001, 20833, 7, 9000, 30000000, 3, 1200, 5, 800, 0.0, 0),
    State(1.25, 2.5, 1, 2, 3, 4, 5, 6, 7, 8, 1_800_000_999.123456, 4, 1_800_000_000.654321),
    State(1.25, 2.5, 1, 2, 3, 4, 5, 6, 7, 8, 0.0, 0, 3.5, 1_800_000_001.25, 1_800_000_002.5),
]


@all_stores
async def test_state_records_round_trip(store: Store) -> None:
    for i, state in enumerate(STATES):
        await put(store, f"a{i}", state.encode())
        await echo(store, "state", f"a{i}", f"b{i}")
        lua_wrote = await get(store, f"b{i}")
        assert lua_wrote == state.encode()  # one format: Lua writes what Python writes
        assert State.decode(lua_wrote) == state
    # a record of the 12 fields written before the last admission was kept: read as last = 0
    old = "\t".join(STATES[2].encode().split("\t")[:12])
    await put(store, "old", old)
    await echo(store, "state", "old", "new")
    assert State.decode(await get(store, "new")) == replace(STATES[2], last=0.0)
    assert State.decode(old) == replace(STATES[2], last=0.0)
    # 13 fields, written before the input and output limits: both read as full (0)
    old = "\t".join(STATES[3].encode().split("\t")[:13])
    await put(store, "old13", old)
    await echo(store, "state", "old13", "new13")
    assert State.decode(await get(store, "new13")) == replace(STATES[3], tat_i=0.0, tat_o=0.0)


@all_stores
async def test_learned_records_round_trip(store: Store) -> None:
    for i, learned in enumerate([Learned(), Learned(60, 150_000, 1500, 40_000, 8000, 1.5, 2.25)]):
        await put(store, learned_field(f"g|a{i}"), learned.encode())
        await echo(store, "learned", f"g|a{i}", f"g|b{i}")
        assert await get(store, learned_field(f"g|b{i}")) == learned.encode()
        assert Learned.decode(learned.encode()) == learned


@all_stores
async def test_health_records_round_trip_with_any_reason(store: Store) -> None:
    for i, health in enumerate(
        [Health(), Health("cooldown", 1_800_000_060.5, EVERY_CHAR, 2, 1), Health("disabled")]
    ):
        await put(store, f"h{i}", health.encode())
        await echo(store, "health", f"h{i}", f"g{i}")
        assert await get(store, f"g{i}") == health.encode()
        assert Health.decode(await get(store, f"g{i}")) == health
    # an unreadable record is a healthy key on both sides
    await put(store, "bad", "cooldown\t1.0\traw reason")
    await echo(store, "health", "bad", "read")
    assert Health.decode("cooldown\t1.0\traw reason") == Health(reason="unreadable_record")
    assert Health.decode(await get(store, "read")) == Health(reason="unreadable_record")


@all_stores
async def test_low_water_marks_round_trip(store: Store) -> None:
    # 1.005 * 1000 is 1004.9999999999999: a mark re-rounded down on every write lost 0.001 each
    # time; a mark the script did not change is written back as it was read
    drifting = Lows(9, 0, ((8, 1.005), (9, 4.355)))
    for i, lows in enumerate([Lows(), Lows(7, 2, ((3, 10.5), (5, 20.0), (7, 123.125))), drifting]):
        await put(store, lows_field(f"grp|m{i}"), lows.encode())
        await echo(store, "lows", f"grp|m{i}", f"grp|n{i}")
        assert await get(store, lows_field(f"grp|n{i}")) == lows.encode()
        assert Lows.decode(await get(store, lows_field(f"grp|n{i}"))) == lows


@all_stores
async def test_windows_round_trip(store: Store) -> None:
    window = [(1000, 1, 20), (1001, 0, 5), (1030, 3, 0)]
    await put(store, "w", encode_window(window))
    await echo(store, "window", "w", "v", now=1040.5)
    assert decode_window(await get(store, "v")) == window
    await echo(store, "window", "w", "gone", now=1091.0)  # every slot older than the window
    assert await get(store, "gone") is None and decode_window(None) == []


@all_stores
async def test_key_and_model_records_round_trip(store: Store) -> None:
    records = [KeyRecord("team-a", True, {"k": EVERY_CHAR, "x": ""}), KeyRecord("g", False, {})]
    for i, record in enumerate(records):
        await put(store, key_field(f"key{i}"), record.encode())
        await echo(store, "key", f"key{i}", f"copy{i}")
        assert await get(store, key_field(f"copy{i}")) == record.encode()
        assert KeyRecord.decode(await get(store, key_field(f"copy{i}")) or "") == record
    for i, model in enumerate([ModelRecord(-1, (0,)), ModelRecord(12000, (0, 2, 5))]):
        await put(store, model_field(f"m{i}"), model.encode())
        await echo(store, "model", f"m{i}", f"n{i}")
        assert ModelRecord.decode(await get(store, model_field(f"n{i}")) or "") == model


@all_stores
async def test_limits_weights_and_bucket_names_read_alike(store: Store) -> None:
    for limits in (
        Limits(60, 100_000, 1000, 90, 150_000, True, "America/Los_Angeles"),
        Limits(60, 0, 0, 60, 0, False, "UTC", 40_000, 8000, 30_000, 6000, True),
    ):
        await put(store, limits_field("grp|m"), limits.encode())
        rpm, tpm, rpd, br, bt, strict, tz, itpm, otpm, bi, bo, learn = await echo(
            store, "limits", "grp|m", ""
        )
        read = Limits(rpm, tpm, rpd, br, bt, strict == 1, tz, itpm, otpm, bi, bo, learn == 1)
        assert read == limits == Limits.decode(limits.encode())
    # a record of 7 fields (written before learned limits) is read as not learning
    old = Limits(5, 6, 7, 8, 9, False, "UTC")
    await put(store, limits_field("grp|old"), "\t".join(old.encode().split("\t")[:7]))
    assert (await echo(store, "limits", "grp|old", ""))[-1] == 0
    assert Limits.decode("\t".join(old.encode().split("\t")[:7])) == old
    for weight in (WeightRecord(0.1), WeightRecord(2.5, "gpt-4o*")):
        await put(store, weight_field("k1", "gpt-4o-mini"), weight.encode())
        read, pattern, bucket = await echo(store, "weight", "k1", "gpt-4o-mini")
        assert WeightRecord(float(read), pattern) == weight == WeightRecord.decode(weight.encode())
        assert bucket == bucket_name("grp", weight.pattern or "gpt-4o-mini")
    assert await echo(store, "bucket", "team-a", "gpt-4o*#openai") == bucket_name(
        "team-a", "gpt-4o*#openai"
    )


# -- the status mirror of roll() and gcra_level() --------------------------------------------------
ROLL = lua.inline(
    "records_roll",
    """-- include: lib_pool
local S = read_state(KEYS[1], ARGV[1])
local now, day, limit = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
roll(S, now, day)
write_state(KEYS[1], ARGV[1] .. ':rolled', S)
return {f6(gcra_level(S.tat_r, now, limit)), f6(gcra_level(S.tat_t, now, limit))}
""",
)


@all_stores
async def test_the_python_mirror_of_roll_and_gcra_level_agrees_with_lua(store: Store) -> None:
    minute = 30_000_000
    state = State(minute * 60 + 30.0, minute * 60 + 90.0, 20833, 7, 900, minute, 3, 120, 5, 80)
    for now, day, limit in [
        (minute * 60 + 10.0, 20833, 60),  # same minute, same day
        (minute * 60 + 70.0, 20833, 7),  # the next minute: the current one becomes the previous
        (minute * 60 + 200.0, 20834, 100),  # minutes later, another day
        (minute * 60 + 95.0, 20833, 0),  # no limit
    ]:
        await put(store, "s", state.encode())
        levels = await store.run(ROLL, [store.keys.pool_state], ["s", repr(now), day, limit])
        assert State.decode(await get(store, "s:rolled")) == rolled(state, now, day)
        python = [gcra_level(state.tat_r, now, limit), gcra_level(state.tat_t, now, limit)]
        assert [float(v) for v in levels] == pytest.approx(python, abs=1e-6)
