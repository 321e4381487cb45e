"""acquire_limits.lua, called directly with a manual clock: all-or-nothing, retry times, refills."""

from __future__ import annotations

import pytest

import lua
from kernel.store import Store
from tests.helpers import all_stores, local_stores

SCRIPT = lua.load("acquire_limits")
T0 = 1_800_000_000.0


def keys(store: Store, user: str = "alice", vkey: str = "vk-1") -> list[str]:
    k = store.keys
    return [
        k.rl_user(user),
        k.rl_global,
        k.rl_vkey(vkey, "rpm"),
        k.rl_vkey(vkey, "tpm"),
        k.rl_vkey_revoked(vkey),
    ]


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
) -> tuple[int, float, str]:
    args = [repr(now), "acquire", user, glob, rpm, tpm, tokens]
    code, retry, name = await store.run(SCRIPT, keys(store, who), args)
    return int(code), float(retry), str(name)


async def adjust(store: Store, now: float, tpm: int, delta: int) -> None:
    await store.run(SCRIPT, keys(store), [repr(now), "adjust", 0, 0, 0, tpm, delta])


@all_stores
async def test_a_user_gets_a_burst_of_its_limit_then_one_per_interval(store: Store) -> None:
    for _ in range(10):
        assert (await acquire(store, T0, user=10))[0] == 1
    code, retry, name = await acquire(store, T0, user=10)
    assert (code, name) == (0, "user")
    assert retry == pytest.approx(6.0)  # 60 s / 10 requests
    assert (await acquire(store, T0 + 5.9, user=10))[0] == 0
    assert (await acquire(store, T0 + 6.0, user=10))[0] == 1


@local_stores
async def test_users_have_separate_buckets_but_share_the_global_one(store: Store) -> None:
    for i in range(3):
        assert (await acquire(store, T0, user=2, glob=3, who=f"u{i}"))[0] == 1
    code, retry, name = await acquire(store, T0, user=2, glob=3, who="u9")
    assert (code, name) == (0, "global") and retry == pytest.approx(20.0)
    # u0 has one request left of its own, but the global limit still binds
    assert (await acquire(store, T0, user=2, glob=3, who="u0"))[2] == "global"


@local_stores
async def test_a_refusal_charges_nothing(store: Store) -> None:
    assert (await acquire(store, T0, user=5, rpm=1))[0] == 1
    for _ in range(5):
        assert (await acquire(store, T0, user=5, rpm=1))[2] == "key_rpm"
    # the refused requests did not use the user's limit: four are left for another key
    user_key = store.keys.rl_user("alice")
    tat = float(await store.client.get(user_key))
    assert tat == pytest.approx(T0 + 12)  # exactly one request of 5/min charged


@local_stores
async def test_retry_after_is_when_every_limit_has_room(store: Store) -> None:
    assert (await acquire(store, T0, user=1, rpm=2))[0] == 1
    # user: next at +60 s; key rpm: still one left now. The user limit binds.
    code, retry, name = await acquire(store, T0 + 1, user=1, rpm=2)
    assert (code, name) == (0, "user") and retry == pytest.approx(59.0)


@local_stores
async def test_tokens_per_minute_of_a_key(store: Store) -> None:
    assert (await acquire(store, T0, tpm=1000, tokens=600))[0] == 1
    code, retry, name = await acquire(store, T0, tpm=1000, tokens=600)
    assert (code, name) == (0, "key_tpm")
    assert retry == pytest.approx(12.0)  # 200 tokens short at 1000/60 per second
    code, retry, name = await acquire(store, T0, tpm=1000, tokens=1001)
    assert (code, retry, name) == (0, -1.0, "key_tpm")  # never fits


@local_stores
async def test_adjust_refunds_and_charges_the_key_tpm(store: Store) -> None:
    assert (await acquire(store, T0, tpm=1000, tokens=900))[0] == 1
    await adjust(store, T0, 1000, -800)  # only 100 were used
    assert (await acquire(store, T0, tpm=1000, tokens=900))[0] == 1
    await adjust(store, T0, 1000, 100)  # that one used 100 more than estimated
    code, retry, name = await acquire(store, T0, tpm=1000, tokens=1)
    # 100 + 900 + 100 tokens charged: 101 must drain at 1000/60 per second
    assert (code, name) == (0, "key_tpm") and retry == pytest.approx(6.06)


@local_stores
async def test_a_revoked_key_is_refused_before_any_limit(store: Store) -> None:
    await store.client.set(store.keys.rl_vkey_revoked("vk-1"), "1")
    assert await acquire(store, T0, user=10) == (-1, 0.0, "revoked")
    assert await store.client.exists(store.keys.rl_user("alice")) == 0


@local_stores
async def test_zero_limits_are_not_enforced_and_write_nothing(store: Store) -> None:
    for _ in range(100):
        assert (await acquire(store, T0, tokens=10_000))[0] == 1
    assert await store.client.exists(*keys(store)) == 0


@local_stores
async def test_keys_expire_once_their_bucket_is_full_again(store: Store) -> None:
    assert (await acquire(store, T0, user=60))[0] == 1
    ttl = await store.client.pttl(store.keys.rl_user("alice"))
    # the manual clock is far from Redis's, so only the bound is checked: at most 1 s + margin
    assert 0 < ttl <= 2000


@local_stores
async def test_real_clock_is_used_without_an_override(store: Store) -> None:
    args = ["", "acquire", 1, 0, 0, 0, 0]
    assert (await store.run(SCRIPT, keys(store), args))[0] == 1
    code, retry, _ = await store.run(SCRIPT, keys(store), args)
    assert int(code) == 0 and 55 < float(retry) <= 60


@local_stores
async def test_unknown_mode_is_an_error(store: Store) -> None:
    from kernel.errors import StoreError

    with pytest.raises(StoreError, match="unknown mode"):
        await store.run(SCRIPT, keys(store), ["", "take", 0, 0, 0, 0, 0])


async def call(
    store: Store, now: float, call_id: str, mode: str = "acquire", **limits: int
) -> tuple[int, float, str]:
    """One limits call with an id, as RequestLimits makes it (the answer kept 30 s)."""
    args = [repr(now), mode, limits.get("user", 0), limits.get("glob", 0), 0]
    args += [limits.get("tpm", 0), limits.get("tokens", 0), 30]
    code, retry, name = await store.run(SCRIPT, [*keys(store), store.keys.rl_call(call_id)], args)
    return int(code), float(retry), str(name)


@all_stores
async def test_a_call_repeated_with_its_id_charges_once(store: Store) -> None:
    """What the script lane does after a lost connection: the same call again. It answers as the
    first run did and charges nothing more (it charged twice before calls carried an id)."""
    assert (await call(store, T0, "a", user=2))[0] == 1
    assert (await call(store, T0, "a", user=2))[0] == 1  # the retry
    assert (await call(store, T0, "b", user=2))[0] == 1
    assert (await call(store, T0, "c", user=2))[:3:2] == (0, "user")
    ttl = await store.client.pttl(store.keys.rl_call("a"))
    assert 0 < ttl <= 30_000


@all_stores
async def test_an_adjust_repeated_with_its_id_moves_the_charge_once(store: Store) -> None:
    assert (await call(store, T0, "acq", tpm=600, tokens=100))[0] == 1
    await call(store, T0, "adj", "adjust", tpm=600, tokens=200)
    await call(store, T0, "adj", "adjust", tpm=600, tokens=200)  # the retry
    tat = float(await store.client.get(store.keys.rl_vkey("vk-1", "tpm")))
    assert tat == pytest.approx(T0 + 30.0)  # 300 tokens at 600/min, not 500


@local_stores
async def test_a_refused_call_is_not_remembered(store: Store) -> None:
    assert (await call(store, T0, "a", user=1))[0] == 1
    assert (await call(store, T0, "b", user=1))[0] == 0  # no room: nothing charged, nothing kept
    assert await store.client.exists(store.keys.rl_call("b")) == 0
    assert (await call(store, T0 + 60, "b", user=1))[0] == 1  # its retry, once room: charged
    assert (await call(store, T0 + 60, "c", user=1))[0] == 0
