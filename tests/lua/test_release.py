"""release.lua through its binding: the request and tokens come back once; a repeated release, a
settled or an expired reservation changes nothing."""

from __future__ import annotations

from kernel.store import Store
from lua import release, reserve, settle
from tests.helpers import all_stores
from tests.lua.pool import (
    GROUP,
    T0,
    Key,
    limits,
    ready_score,
    release_one,
    reserve_one,
    settle_one,
    stat,
    state_of,
    sync,
)


@all_stores
async def test_a_release_gives_the_request_and_tokens_back_once(store: Store) -> None:
    await sync(store, [Key("k1")], {GROUP: limits(rpm=1, tpm=1000)})
    assert isinstance(await reserve_one(store, "r1", 300), reserve.Reserved)
    assert isinstance(await reserve_one(store, "r2", 1), reserve.NoRoom)
    assert await release_one(store, "r1", now=T0 + 1) == release.ReleaseReply(True, "k1")
    state = await state_of(store)
    assert (state.day_req, state.day_tok, state.min_req, state.min_tok) == (0, 0, 0, 0)
    assert await ready_score(store, "k1") == T0 + 1
    assert await stat(store, "k1", "released") == 1 and await stat(store, "k1", "requests") == 0
    assert isinstance(await reserve_one(store, "r3", 1, now=T0 + 1), reserve.Reserved)
    # again: nothing more comes back
    before = await state_of(store)
    assert await release_one(store, "r1", now=T0 + 2) == release.ReleaseReply(
        False, state="released"
    )
    assert await state_of(store) == before
    assert await stat(store, "k1", "released") == 1


@all_stores
async def test_a_settled_or_expired_reservation_is_not_released(store: Store) -> None:
    await sync(store, [Key("k1")], {GROUP: limits(rpm=10)})
    assert isinstance(await reserve_one(store, "r1", 5), reserve.Reserved)
    assert isinstance(await settle_one(store, "r1", 5), settle.Settled)
    before = await state_of(store)
    assert await release_one(store, "r1") == release.ReleaseReply(False, state="settled")
    assert await release_one(store, "gone") == release.ReleaseReply(False, state="expired")
    assert await state_of(store) == before
