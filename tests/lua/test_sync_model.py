"""sync_model.lua through its binding: the index's records and sets match the configuration,
applying it twice changes nothing, keys and whole indexes are removed, and changed limits keep
the usage in units."""

from __future__ import annotations

from typing import Any

from kernel.store import Store
from lua import reserve, sync_model
from lua.records import (
    KeyRecord,
    Limits,
    ModelRecord,
    WeightRecord,
    bucket_name,
    key_field,
    limits_field,
    model_field,
    weight_field,
)
from tests.helpers import all_stores, local_stores
from tests.lua.pool import GROUP, MODEL, T0, Key, limits, reserve_one, state_of, sync


async def everything(store: Store, tiers: tuple[int, ...] = (0, 1)) -> dict[str, Any]:
    n, client = store.keys, store.client
    out: dict[str, Any] = {
        "cfg": await store.call(client.hgetall(n.pool_config)),
        "models": sorted(await store.call(client.smembers(n.pool_models))),
    }
    for t in tiers:
        for name in (n.ready(MODEL, t), n.order(MODEL, t), n.share(MODEL, t)):
            out[name] = await store.call(client.zrange(name, 0, -1, withscores=True))
    return out


KEYS = [
    Key("a", tier=0, weight=2.0, tags={"team": "x"}),
    Key("b", "g2", tier=1),
    Key("c", active=False),
]
BUCKETS = {GROUP: limits(rpm=60, tpm=1000), "g2": limits(rpm=10)}


@all_stores
async def test_the_records_and_sets_match_the_configuration(store: Store) -> None:
    reply = await sync(store, KEYS, BUCKETS, tiers=(0, 1), max_burst=1000)
    assert reply == sync_model.SyncReply(indexed=2, removed=0)
    cfg = (await everything(store))["cfg"]
    assert ModelRecord.decode(cfg[model_field(MODEL)]) == ModelRecord(1000, (0, 1))
    assert KeyRecord.decode(cfg[key_field("a")]) == KeyRecord(GROUP, True, {"team": "x"})
    assert KeyRecord.decode(cfg[key_field("c")]) == KeyRecord(GROUP, False, {})
    assert WeightRecord.decode(cfg[weight_field("a", MODEL)]) == WeightRecord(2.0)
    assert Limits.decode(cfg[limits_field(bucket_name("g2", MODEL))]) == BUCKETS["g2"]
    n = store.keys
    assert await store.call(store.client.zrange(n.ready(MODEL, 0), 0, -1)) == ["a"]
    assert await store.call(store.client.zrange(n.ready(MODEL, 1), 0, -1)) == ["b"]
    assert await store.call(store.client.smembers(n.pool_models)) == {MODEL}


@all_stores
async def test_syncing_twice_changes_nothing(store: Store) -> None:
    await sync(store, KEYS, BUCKETS, tiers=(0, 1))
    assert isinstance(await reserve_one(store, "r1", 5, tiers=(0, 1)), reserve.Reserved)
    before, state = await everything(store), await state_of(store)
    assert await sync(store, KEYS, BUCKETS, tiers=(0, 1), now=T0 + 1) == sync_model.SyncReply(2, 0)
    assert await everything(store) == before
    assert await state_of(store) == state


@all_stores
async def test_a_key_no_longer_configured_leaves_the_sets(store: Store) -> None:
    await sync(store, KEYS, BUCKETS, tiers=(0, 1))
    reply = await sync(store, KEYS[:1], BUCKETS, tiers=(0, 1))
    assert reply == sync_model.SyncReply(indexed=1, removed=1)
    n = store.keys
    assert await store.call(store.client.zcard(n.order(MODEL, 1))) == 0


@all_stores
async def test_an_index_nobody_serves_is_removed(store: Store) -> None:
    await sync(store, KEYS, BUCKETS, tiers=(0, 1))
    reply = await sync(store, [], {}, tiers=(0, 1))
    assert reply.indexed == 0 and reply.removed > 0
    after = await everything(store)
    assert model_field(MODEL) not in after["cfg"] and after["models"] == []
    assert all(not v for k, v in after.items() if k not in ("cfg", "models"))
    assert await reserve_one(store, "r1") == reserve.NoKeys(T0)


@local_stores
async def test_changed_limits_keep_the_usage_in_units(store: Store) -> None:
    await sync(store, [Key("a")], {GROUP: Limits(60, 0, 0, 4, 0, False, "UTC")})
    for rid in ("r1", "r2"):
        assert isinstance(await reserve_one(store, rid, 0), reserve.Reserved)
    assert (await state_of(store)).tat_r == T0 + 2.0  # 2 requests at 1 per second
    await sync(store, [Key("a")], {GROUP: Limits(120, 0, 0, 4, 0, False, "UTC")})
    assert (await state_of(store)).tat_r == T0 + 1.0  # still 2 requests, now at 2 per second
