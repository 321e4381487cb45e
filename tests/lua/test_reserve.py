"""reserve.lua through its binding: a key charged, the same reservation answered again, no room
(when and why), a request too large for any key, no keys; tags, exclusions and probes."""

from __future__ import annotations

from kernel.store import Store
from lua import reserve
from lua.records import Health, bucket_name, tags_wanted
from tests.helpers import all_stores, local_stores
from tests.lua.pool import (
    GROUP,
    MODEL,
    T0,
    Key,
    health_of,
    limits,
    put_health,
    reserve_one,
    stat,
    state_of,
    sync,
)


@all_stores
async def test_a_key_with_room_is_charged(store: Store) -> None:
    await sync(store, [Key("k1")], {GROUP: limits(rpm=10, tpm=1000)}, max_burst=1000)
    reply = await reserve_one(store, "r1", 100)
    assert reply == reserve.Reserved("k1", 100, T0, 0, "new", bucket_name(GROUP, MODEL))
    state = await state_of(store)
    assert (state.day_req, state.day_tok, state.min_req, state.min_tok) == (1, 100, 1, 100)
    assert state.tat_r == T0 + 6.0 and state.tat_t == T0 + 6.0  # 1 of 10 rpm, 100 of 1000 tpm
    assert await stat(store, "k1", "requests") == 1
    held = await store.call(store.client.hgetall(store.keys.reservation("r1")))
    assert (held["key"], held["state"], held["tokens"]) == ("k1", "reserved", "100")


@all_stores
async def test_the_same_reservation_id_is_answered_not_charged_again(store: Store) -> None:
    await sync(store, [Key("k1")], {GROUP: limits(rpm=10)})
    first = await reserve_one(store, "r1", 5)
    before = await state_of(store)
    again = await reserve_one(store, "r1", 5, now=T0 + 1)
    assert isinstance(first, reserve.Reserved) and isinstance(again, reserve.Reserved)
    assert (again.kind, again.key_id, again.at) == ("dup", "k1", first.at)
    assert await state_of(store) == before


@all_stores
async def test_no_room_says_when_and_why(store: Store) -> None:
    await sync(store, [Key("k1")], {GROUP: limits(rpm=2)})
    for rid in ("r1", "r2"):
        assert isinstance(await reserve_one(store, rid), reserve.Reserved)
    refused = await reserve_one(store, "r3")
    assert refused == reserve.NoRoom(
        T0 + 30.0, "rpm", T0, (reserve.Unavailable("k1", "rpm", T0 + 30.0),)
    )
    assert isinstance(await reserve_one(store, "r4", now=T0 + 30.0), reserve.Reserved)


@all_stores
async def test_a_request_larger_than_every_burst_is_too_large(store: Store) -> None:
    await sync(store, [Key("k1")], {GROUP: limits(tpm=1000)}, max_burst=1000)
    assert await reserve_one(store, "r1", 1001) == reserve.TooLarge(T0, 1000)
    assert await state_of(store) == await state_of(store, "none")  # nothing charged


@all_stores
async def test_an_index_nobody_serves_has_no_keys(store: Store) -> None:
    assert await reserve_one(store, "r1", index="unknown") == reserve.NoKeys(T0)
    await sync(store, [Key("k1", active=False)], {GROUP: limits(rpm=5)})
    assert await reserve_one(store, "r2") == reserve.NoKeys(T0)


@local_stores
async def test_tags_and_exclusions_choose_among_keys(store: Store) -> None:
    keys = [Key("a", "ga", tags={"team": "x;y"}), Key("b", "gb", tags={"team": "z"})]
    await sync(store, keys, {"ga": limits(rpm=100), "gb": limits(rpm=100)})
    for i in range(3):
        tagged = await reserve_one(store, f"t{i}", tags=tags_wanted({"team": "z"}))
        assert isinstance(tagged, reserve.Reserved) and tagged.key_id == "b"
        other = await reserve_one(store, f"e{i}", exclude=["b"])
        assert isinstance(other, reserve.Reserved) and other.key_id == "a"
    none = await reserve_one(store, "n", tags=tags_wanted({"team": "x"}))
    assert isinstance(none, reserve.NoRoom) and none.earliest is None


@local_stores
async def test_an_open_circuit_past_its_time_is_probed_once(store: Store) -> None:
    await sync(store, [Key("k1")], {GROUP: limits(rpm=100)})
    await put_health(store, "k1", Health("open", T0 - 1, "transient", 0, 3))
    probe = await reserve_one(store, "p", probe_ttl=60)
    assert isinstance(probe, reserve.Reserved) and probe.kind == "probe"
    assert (await health_of(store, "k1")).state == "probing"
    busy = await reserve_one(store, "q")
    assert isinstance(busy, reserve.NoRoom) and busy.keys[0].reason == "probing"
    assert busy.earliest == T0 + 60
