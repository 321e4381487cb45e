"""A pool split into shards (POOL_SHARDS, keys/shards.py) on real Redis, the real Redis Cluster and
the embedded store: a quota group never spans shards, a shard the client did not ask first still
serves, and no room answers the earliest retry time over the shards asked."""

from __future__ import annotations

from pathlib import Path

import pytest

from kernel.errors import AllKeysExhaustedError, ConfigError
from kernel.redis_keys import shard_of
from kernel.settings import Settings
from kernel.store import Store, create_store
from keys.shards import ShardedEngine, check_pool_shards
from lua.records import key_field
from lua.usage_records import BudgetRecord, SpendRecord, budget_field, usd_to_nanos
from tests.conftest import settings_for
from tests.helpers import all_stores, local_stores
from tests.keys.engine_helpers import ManualClock, engine_for, make_key
from tests.keys.manager_helpers import manager_for
from tests.servers import RedisCluster

#: One quota group per shard of three (their shard_of): ``GROUPS[i]`` lives in shard i.
GROUPS = ("k2", "k", "k3")


def sharded(store: Store, clock: ManualClock | None = None) -> ShardedEngine:
    engine = engine_for(store, clock)
    assert isinstance(engine, ShardedEngine)
    return engine


@pytest.mark.parametrize("pool_shards", [3], indirect=True)
@all_stores
async def test_a_quota_group_never_spans_shards(store: Store) -> None:
    engine = sharded(store)
    keys = [make_key(f"key{i}", rpm=10, quota_group=f"group{i % 12}") for i in range(48)]
    await engine.configure(keys)
    found: dict[str, int] = {}
    for shard, view in enumerate(store.keys.pool_views()):
        records = await store.call(store.client.hkeys(view.pool_config))
        for key in keys:
            if key_field(key.key_id) in records:
                assert key.key_id not in found, f"{key.key_id} in two shards"
                found[key.key_id] = shard
    assert set(found) == {key.key_id for key in keys}
    for key in keys:
        assert found[key.key_id] == shard_of(key.group, 3)
    groups: dict[str, set[int]] = {}
    for key in keys:
        groups.setdefault(key.group, set()).add(found[key.key_id])
    assert all(len(shards) == 1 for shards in groups.values())
    assert set(found.values()) == {0, 1, 2}  # twelve groups spread over all three


@pytest.mark.parametrize("pool_shards", [3], indirect=True)
@all_stores
async def test_room_only_in_a_shard_not_asked_first_still_serves(store: Store) -> None:
    clock = ManualClock()
    engine = sharded(store, clock)
    await engine.configure([make_key(g, rpm=2) for g in GROUPS])
    for _ in range(4):  # shards 0 and 1 full (2 each); shard 2 untouched
        await engine.reserve("gpt-4o", 1, exclude=[GROUPS[2]])
    for first in (0, 1):  # a full shard asked first, then the other full one
        fresh = sharded(store, clock)
        await fresh.configure([make_key(g, rpm=2) for g in GROUPS])
        fresh._turns["gpt-4o"] = first
        reservation = await fresh.reserve("gpt-4o", 1)
        assert (reservation.key_id, reservation.shard) == (GROUPS[2], 2)
        assert await fresh.release(reservation)


@pytest.mark.parametrize("pool_shards", [3], indirect=True)
@all_stores
async def test_no_room_answers_the_earliest_retry_over_the_shards_asked(store: Store) -> None:
    clock = ManualClock()
    engine = sharded(store, clock)
    await engine.configure([make_key(g, rpm=1) for g in GROUPS])
    start = clock.now
    for offset, group in zip((20.0, 0.0, 40.0), GROUPS, strict=True):
        clock.now = start + offset  # shard 1 full first, then shard 0, then shard 2
        others = [g for g in GROUPS if g != group]
        assert (await engine.reserve("gpt-4o", 1, exclude=others)).key_id == group
    clock.now = start + 41
    with pytest.raises(AllKeysExhaustedError) as caught:
        await engine.reserve("gpt-4o", 1)
    assert caught.value.retry_at == pytest.approx(start + 60)  # shard 1's key, full at +0
    assert caught.value.now == pytest.approx(start + 41)
    assert {note.key_id for note in caught.value.keys} == set(GROUPS)


@pytest.mark.parametrize("pool_shards", [3], indirect=True)
@all_stores
async def test_one_fallback_answers_the_earliest_of_the_two_shards_it_asked(store: Store) -> None:
    clock = ManualClock()
    engine = sharded(store, clock)
    await engine.configure([make_key(g, rpm=1) for g in GROUPS])
    for group in GROUPS:
        others = [g for g in GROUPS if g != group]
        await engine.reserve("gpt-4o", 1, exclude=others)
    engine.fallbacks = 1
    with pytest.raises(AllKeysExhaustedError) as caught:
        await engine.reserve("gpt-4o", 1)
    assert len({note.key_id for note in caught.value.keys}) == 2  # two shards asked, not three


@pytest.mark.parametrize("pool_shards", [3], indirect=True)
@local_stores
async def test_a_sharded_call_under_a_budget_holds_it_in_the_budgets_slot(store: Store) -> None:
    alice = budget_field("user", "alice")
    await store.call(
        store.client.hset(
            store.keys.budgets, alice, BudgetRecord(usd_to_nanos(1.0), "day").encode()
        )
    )
    engine = sharded(store, ManualClock())
    await engine.configure([make_key(g, rpm=1) for g in GROUPS])

    async def spend() -> SpendRecord:
        return SpendRecord.decode(
            await store.call(store.client.hget(store.keys.budget_spend, alice))
        )

    held = [await engine.reserve("gpt-4o", 1, budgets=[alice], cost_nanos=100) for _ in GROUPS]
    assert all(r.budget_hold for r in held) and (await spend()).reserved == 300
    with pytest.raises(AllKeysExhaustedError):  # no room anywhere: the budget is given back
        await engine.reserve("gpt-4o", 1, budgets=[alice], cost_nanos=100)
    assert (await spend()).reserved == 300
    assert (await engine.settle(held[0], 1, cost_nanos=40)).settled
    assert await engine.release(held[1])
    assert (await engine.settle(held[2], 1, outcome="unreachable")).settled
    assert ((await spend()).reserved, (await spend()).spent) == (0, 40)
    assert (await engine.settle(held[0], 1, cost_nanos=40)).settled is False  # idempotent
    assert ((await spend()).reserved, (await spend()).spent) == (0, 40)


async def test_three_shards_run_on_three_masters(cluster_instance: RedisCluster) -> None:
    """Each shard's tag falls in its third of the slots (kernel.redis_keys.shard_tag), so a
    three-master cluster runs one shard on each, whatever the prefix."""
    for prefix in ("llmr", "b1234", "t0", "pool.x"):
        settings = Settings.from_env(
            {},
            REDIS_URL=cluster_instance.url,
            REDIS_CLUSTER=True,
            REDIS_KEY_PREFIX=prefix,
            POOL_SHARDS=3,
        )
        store = create_store(settings)
        try:
            await store.server_time()  # the client has read the cluster's slots
            client = store.shared_client
            masters = {
                client.get_node_from_key(v.pool_config).port for v in store.keys.pool_views()
            }
        finally:
            await store.close()
        assert len(masters) == 3, prefix


@local_stores
async def test_a_process_with_another_pool_shards_refuses_to_start(
    store: Store, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    await check_pool_shards(store, 1)  # a pool in one slot records nothing
    assert await store.call(store.client.get(store.keys.pool_shards)) is None
    await check_pool_shards(store, 3)  # the first process of a sharded pool records it
    await check_pool_shards(store, 3)
    for other in (1, 2):
        with pytest.raises(ConfigError) as caught:
            await check_pool_shards(store, other)
        assert caught.value.field == "POOL_SHARDS" and "split into 3" in str(caught.value)
    kind = request.node.callspec.params["store"]
    if kind == "redis":  # a KeyManager checks at start (the embedded store is its own)
        settings = settings_for(kind, request, REDIS_KEY_PREFIX=store.keys.prefix)
        manager, _ = manager_for(settings, tmp_path, [{"key_id": "k1", "model_name": "gpt-4o"}])
        with pytest.raises(ConfigError):
            await manager.start()
        await manager.close()
