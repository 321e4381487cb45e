"""acquire_limits.lua through its binding, with a manual clock: all-or-nothing, retry times, refills."""

from __future__ import annotations

import pytest

from kernel.store import Store
from lua import acquire_limits
from lua.acquire_limits import AcquireArgs, AcquireKeys, AcquireReply, Mode
from tests.helpers import all_stores, local_stores

T0 = 1_800_000_000.0


def keys(store: Store, user: str = "alice", vkey: str = "vk-1", call: str = "") -> AcquireKeys:
    k = store.keys
    return AcquireKeys(
        k.rl_user(user),
        k.rl_global,
        k.rl_vkey(vkey, "rpm"),
        k.rl_vkey(vkey, "tpm"),
        k.rl_vkey_revoked(vkey),
        k.rl_call(call) if call else "",
    )


async def acquire(
    store: Store,
    now: float,
    *,
    user: int = 0,
    glob: int = 0,
    rpm: int = 0,
    tpm: int = 0,
    tokens: int = 0,
    who: str = "alice",
) -> AcquireReply:
    args = AcquireArgs(repr(now), "acquire", user, glob, rpm, tpm, tokens)
    return await acquire_limits.run(store, keys(store, who), args)


async def adjust(store: Store, now: float, tpm: int, delta: int) -> None:
    await acquire_limits.run(
        store, keys(store), AcquireArgs(repr(now), "adjust", 0, 0, 0, tpm, delta)
    )


def refused(limit: str, retry_after: float | None) -> AcquireReply:
    return AcquireReply(False, limit=limit, retry_after=retry_after)


@all_stores
async def test_a_user_gets_a_burst_of_its_limit_then_one_per_interval(store: Store) -> None:
    for _ in range(10):
        assert (await acquire(store, T0, user=10)).allowed
    assert await acquire(store, T0, user=10) == refused(
        "user", pytest.approx(6.0)
    )  # 60 s / 10 requests
    assert not (await acquire(store, T0 + 5.9, user=10)).allowed
    assert (await acquire(store, T0 + 6.0, user=10)).allowed


@local_stores
async def test_users_have_separate_buckets_but_share_the_global_one(store: Store) -> None:
    for i in range(3):
        assert (await acquire(store, T0, user=2, glob=3, who=f"u{i}")).allowed
    reply = await acquire(store, T0, user=2, glob=3, who="u9")
    assert reply == refused("global", pytest.approx(20.0))
    # u0 has one request left of its own, but the global limit still binds
    assert (await acquire(store, T0, user=2, glob=3, who="u0")).limit == "global"


@local_stores
async def test_a_refusal_charges_nothing(store: Store) -> None:
    assert (await acquire(store, T0, user=5, rpm=1)).allowed
    for _ in range(5):
        assert (await acquire(store, T0, user=5, rpm=1)).limit == "key_rpm"
    # the refused requests did not use the user's limit: four are left for another key
    user_key = store.keys.rl_user("alice")
    tat = float(await store.client.get(user_key))
    assert tat == pytest.approx(T0 + 12)  # exactly one request of 5/min charged


@local_stores
async def test_retry_after_is_when_every_limit_has_room(store: Store) -> None:
    assert (await acquire(store, T0, user=1, rpm=2)).allowed
    # user: next at +60 s; key rpm: still one left now. The user limit binds.
    reply = await acquire(store, T0 + 1, user=1, rpm=2)
    assert reply == refused("user", pytest.approx(59.0))


@local_stores
async def test_tokens_per_minute_of_a_key(store: Store) -> None:
    assert (await acquire(store, T0, tpm=1000, tokens=600)).allowed
    reply = await acquire(store, T0, tpm=1000, tokens=600)
    assert reply == refused("key_tpm", pytest.approx(12.0))  # 200 short at 1000/60 per second
    never = await acquire(store, T0, tpm=1000, tokens=1001)
    assert never == refused("key_tpm", None)  # never fits


@local_stores
async def test_adjust_refunds_and_charges_the_key_tpm(store: Store) -> None:
    assert (await acquire(store, T0, tpm=1000, tokens=900)).allowed
    await adjust(store, T0, 1000, -800)  # only 100 were used
    assert (await acquire(store, T0, tpm=1000, tokens=900)).allowed
    await adjust(store, T0, 1000, 100)  # that one used 100 more than estimated
    reply = await acquire(store, T0, tpm=1000, tokens=1)
    # 100 + 900 + 100 tokens charged: 101 must drain at 1000/60 per second
    assert reply == refused("key_tpm", pytest.approx(6.06))


@local_stores
async def test_a_revoked_key_is_refused_before_any_limit(store: Store) -> None:
    await store.client.set(store.keys.rl_vkey_revoked("vk-1"), "1")
    assert await acquire(store, T0, user=10) == AcquireReply(False, revoked=True, limit="revoked")
    assert await store.client.exists(store.keys.rl_user("alice")) == 0


@local_stores
async def test_zero_limits_are_not_enforced_and_write_nothing(store: Store) -> None:
    for _ in range(100):
        assert (await acquire(store, T0, tokens=10_000)).allowed
    assert await store.client.exists(*keys(store).encode()) == 0


@local_stores
async def test_keys_expire_once_their_bucket_is_full_again(store: Store) -> None:
    assert (await acquire(store, T0, user=60)).allowed
    ttl = await store.client.pttl(store.keys.rl_user("alice"))
    # the manual clock is far from Redis's, so only the bound is checked: at most 1 s + margin
    assert 0 < ttl <= 2000


@local_stores
async def test_real_clock_is_used_without_an_override(store: Store) -> None:
    args = AcquireArgs("", "acquire", 1, 0, 0, 0, 0)
    assert (await acquire_limits.run(store, keys(store), args)).allowed
    reply = await acquire_limits.run(store, keys(store), args)
    assert not reply.allowed and reply.retry_after is not None and 55 < reply.retry_after <= 60


@local_stores
async def test_unknown_mode_is_an_error(store: Store) -> None:
    from kernel.errors import StoreError

    with pytest.raises(StoreError, match="unknown mode"):
        take = AcquireArgs("", "take", 0, 0, 0, 0, 0)  # type: ignore[arg-type]
        await acquire_limits.run(store, keys(store), take)


async def call(
    store: Store, now: float, call_id: str, mode: Mode = "acquire", **limits: int
) -> AcquireReply:
    """One limits call with an id, as RequestLimits makes it (the answer kept 30 s)."""
    user, glob, tpm, tokens = (limits.get(name, 0) for name in ("user", "glob", "tpm", "tokens"))
    args = AcquireArgs(repr(now), mode, user, glob, 0, tpm, tokens, 30)
    return await acquire_limits.run(store, keys(store, call=call_id), args)


@all_stores
async def test_a_call_repeated_with_its_id_charges_once(store: Store) -> None:
    """What the script lane does after a lost connection: the same call again. It answers as the
    first run did and charges nothing more (it charged twice before calls carried an id)."""
    assert (await call(store, T0, "a", user=2)).allowed
    assert (await call(store, T0, "a", user=2)).allowed  # the retry
    assert (await call(store, T0, "b", user=2)).allowed
    assert (await call(store, T0, "c", user=2)).limit == "user"
    ttl = await store.client.pttl(store.keys.rl_call("a"))
    assert 0 < ttl <= 30_000


@all_stores
async def test_an_adjust_repeated_with_its_id_moves_the_charge_once(store: Store) -> None:
    assert (await call(store, T0, "acq", tpm=600, tokens=100)).allowed
    await call(store, T0, "adj", "adjust", tpm=600, tokens=200)
    await call(store, T0, "adj", "adjust", tpm=600, tokens=200)  # the retry
    tat = float(await store.client.get(store.keys.rl_vkey("vk-1", "tpm")))
    assert tat == pytest.approx(T0 + 30.0)  # 300 tokens at 600/min, not 500


@local_stores
async def test_a_refused_call_is_not_remembered(store: Store) -> None:
    assert (await call(store, T0, "a", user=1)).allowed
    assert not (
        await call(store, T0, "b", user=1)
    ).allowed  # no room: nothing charged, nothing kept
    assert await store.client.exists(store.keys.rl_call("b")) == 0
    assert (await call(store, T0 + 60, "b", user=1)).allowed  # its retry, once room: charged
    assert not (await call(store, T0 + 60, "c", user=1)).allowed
