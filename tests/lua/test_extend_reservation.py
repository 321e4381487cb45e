"""extend_reservation.lua through its binding: only a held reservation is extended, only it is touched,
repeating it changes nothing more, and a bad TTL is refused."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from kernel.errors import StoreError
from kernel.store import Store
from keys.engine import CapacityEngine, Reservation
from lua import extend_reservation
from lua.extend_reservation import ExtendArgs, ExtendKeys, ExtendReply
from tests.helpers import all_stores, local_stores
from tests.keys.engine_helpers import engine_for, make_key


async def extend(store: Store, reservation: Reservation, ttl: Any) -> ExtendReply:
    """The script through its binding (``ttl`` may be anything: the script checks it)."""
    keys = ExtendKeys(store.keys.reservation(reservation.reservation_id))
    return await extend_reservation.run(store, keys, ExtendArgs(ttl))


async def held(store: Store, ttl: int = 100) -> tuple[CapacityEngine, Reservation]:
    engine = engine_for(store, reservation_ttl=ttl)
    await engine.configure([make_key("k", rpm=100, tpm=100_000)])
    return engine, await engine.reserve("gpt-4o", 50)


async def pttl(store: Store, reservation: Reservation) -> int:
    return int(await store.client.pttl(store.keys.reservation(reservation.reservation_id)))


async def pool_records(store: Store) -> dict[str, Any]:
    """Everything of the pool a script could change, besides reservations."""
    n, client = store.keys, store.client
    out: dict[str, Any] = {}
    for name in (n.pool_config, n.pool_state, n.pool_health, n.pool_stats, n.pool_cursor):
        out[name] = await client.hgetall(name)
    for name in (n.ready("gpt-4o", 0), n.order("gpt-4o", 0), n.share("gpt-4o", 0)):
        out[name] = await client.zrange(name, 0, -1, withscores=True)
    return out


@all_stores
async def test_a_held_reservation_gets_the_new_ttl_and_nothing_else_changes(store: Store) -> None:
    _, reservation = await held(store, ttl=100)
    key = store.keys.reservation(reservation.reservation_id)
    record = await store.client.hgetall(key)
    before = await pool_records(store)
    assert 0 < await pttl(store, reservation) <= 100_000
    assert await extend(store, reservation, 1000) == ExtendReply("extended", 1000)
    assert 100_000 < await pttl(store, reservation) <= 1_000_000
    assert await store.client.hgetall(key) == record
    assert await pool_records(store) == before


@all_stores
async def test_repeating_an_extension_is_harmless(store: Store) -> None:
    _, reservation = await held(store)
    before = await pool_records(store)
    for _ in range(3):
        assert await extend(store, reservation, 500) == ExtendReply("extended", 500)
    assert 400_000 < await pttl(store, reservation) <= 500_000
    assert await pool_records(store) == before


@all_stores
async def test_a_settled_or_released_reservation_keeps_its_expiry(store: Store) -> None:
    engine, settled = await held(store, ttl=100)
    released = await engine.reserve("gpt-4o", 50)
    assert (await engine.settle(settled, 40)).settled
    assert await engine.release(released)
    assert await extend(store, settled, 5000) == ExtendReply("settled")
    assert await extend(store, released, 5000) == ExtendReply("released")
    assert await pttl(store, settled) <= 100_000 and await pttl(store, released) <= 100_000
    assert await engine.extend(settled) == "settled" and await engine.extend(released) == "released"


@all_stores
async def test_a_missing_reservation_is_expired_and_is_not_created(store: Store) -> None:
    engine, reservation = await held(store)
    await store.client.delete(store.keys.reservation(reservation.reservation_id))
    assert await extend(store, reservation, 100) == ExtendReply("expired")
    assert not await store.client.exists(store.keys.reservation(reservation.reservation_id))
    assert await engine.extend(reservation) == "expired"


@local_stores
@pytest.mark.parametrize("ttl", [0, -5, "1.5", "soon", ""])
async def test_a_ttl_that_is_not_a_positive_integer_is_refused(store: Store, ttl: Any) -> None:
    _, reservation = await held(store)
    with pytest.raises(StoreError, match="ttl must be a positive integer"):
        await extend(store, reservation, ttl)
    assert 0 < await pttl(store, reservation) <= 100_000


@local_stores
async def test_the_binding_refuses_a_ttl_below_one_second(store: Store) -> None:
    engine, reservation = await held(store)
    with pytest.raises(ValueError, match="ttl"):
        await engine.extend(reservation, 0)
    assert await engine.extend(reservation, 1) == "extended"
    assert 0 < await pttl(store, reservation) <= 1000


@local_stores
async def test_an_extended_reservation_outlives_its_ttl_and_settles(store: Store) -> None:
    engine, kept = await held(store, ttl=1)
    control = await engine.reserve("gpt-4o", 50)
    assert await engine.extend(kept, 30) == "extended"
    control_key = store.keys.reservation(control.reservation_id)
    for _ in range(300):  # the control expires after its TTL of 1 s (bounded wait)
        if not await store.client.exists(control_key):
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError("the control reservation never expired")
    result = await engine.settle(kept, 30)
    assert result.settled and result.tokens == 30
    assert (await engine.settle(control, 30)).note == "expired"
