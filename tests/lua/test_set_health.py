"""set_health.lua through its binding: cooldown, clear, disable, enable and reset, each with its
effect on the key's ready sets and its buckets' provider blocks."""

from __future__ import annotations

import pytest

from kernel.errors import StoreError
from kernel.store import Store
from lua import reserve, set_health
from lua.records import Health, bucket_name
from tests.helpers import all_stores, local_stores
from tests.lua.pool import (
    GROUP,
    MODEL,
    T0,
    Key,
    health_action,
    health_of,
    limits,
    put_health,
    ready_score,
    reserve_one,
    settle_one,
    state_of,
    sync,
)

BUCKET = bucket_name(GROUP, MODEL)


async def pool(store: Store) -> None:
    await sync(store, [Key("k1")], {GROUP: limits(rpm=100)})


@all_stores
async def test_a_cooldown_holds_the_key_until_it_ends(store: Store) -> None:
    await pool(store)
    reason = "ops\tsaid|so;x=y"
    reply = await health_action(store, "k1", "cooldown", seconds=30, reason=reason)
    assert reply == set_health.SetHealthReply("cooldown", T0 + 30, reason)
    assert await health_of(store, "k1") == Health("cooldown", T0 + 30, reason, 0, 0)
    assert await ready_score(store, "k1") == T0 + 30
    refused = await reserve_one(store, "r1", now=T0 + 29)
    assert isinstance(refused, reserve.NoRoom) and refused.keys[0].reason == "cooldown"
    assert isinstance(await reserve_one(store, "r2", now=T0 + 30), reserve.Reserved)


@all_stores
async def test_clear_ends_a_cooldown_and_the_buckets_provider_block(store: Store) -> None:
    await pool(store)
    assert isinstance(await reserve_one(store, "r1"), reserve.Reserved)
    await settle_one(store, "r1", None, "rate_limited", retry_after=120)
    await health_action(store, "k1", "cooldown", seconds=60)
    reply = await health_action(store, "k1", "clear", now=T0 + 1, buckets=[BUCKET])
    assert reply == set_health.SetHealthReply("ok", 0.0, "")
    state = await state_of(store)
    assert (state.blocked, state.level) == (0.0, 0)
    assert await ready_score(store, "k1") == T0 + 1
    assert isinstance(await reserve_one(store, "r2", now=T0 + 1), reserve.Reserved)


@all_stores
async def test_disable_removes_the_key_until_enabled_and_clear_does_not_revive_it(
    store: Store,
) -> None:
    await pool(store)
    reply = await health_action(store, "k1", "disable", reason="manual")
    assert reply == set_health.SetHealthReply("disabled", 0.0, "manual")
    assert await ready_score(store, "k1") is None
    assert (await health_action(store, "k1", "clear")).state == "disabled"
    assert (await health_action(store, "k1", "cooldown", seconds=5)).state == "disabled"
    assert await health_action(store, "k1", "enable") == set_health.SetHealthReply("ok", 0.0, "")
    await pool(store)  # the caller syncs after enable: the key rejoins the index
    assert isinstance(await reserve_one(store, "r1"), reserve.Reserved)


@local_stores
async def test_reset_closes_an_open_circuit_and_forgets_failures(store: Store) -> None:
    await pool(store)
    await put_health(store, "k1", Health("open", T0 + 300, "503", 2, 3))
    assert (await health_action(store, "k1", "reset")).state == "ok"
    assert await health_of(store, "k1") == Health()


@local_stores
async def test_an_unknown_action_is_refused(store: Store) -> None:
    await pool(store)
    with pytest.raises(StoreError, match="unknown action"):
        await health_action(store, "k1", "revive")  # type: ignore[arg-type]
    assert await health_of(store, "k1") == Health()
