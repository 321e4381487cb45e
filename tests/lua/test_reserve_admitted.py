"""reserve_admitted.lua through its binding: the gateway's limits (lib_limits.lua) then reserve
in one script run. A refusal reserves nothing; a call repeated with the same call id (a retry
after a lost reply, the call's next reservation) is not charged again."""

from __future__ import annotations

from kernel.store import Store
from lua import reserve, reserve_admitted
from lua.acquire_limits import AcquireArgs, AcquireKeys, AcquireReply
from tests.helpers import local_stores
from tests.lua.pool import GROUP, MODEL, T0, Key, limits, reserve_keys, stat, state_of, sync


def limit_keys(store: Store, call: str = "") -> AcquireKeys:
    n = store.keys
    return AcquireKeys(
        n.rl_user("alice"),
        n.rl_global,
        n.rl_vkey("v1", "rpm"),
        n.rl_vkey("v1", "tpm"),
        n.rl_vkey_revoked("v1"),
        n.rl_call(call) if call else "",
    )


async def admitted(
    store: Store, rid: str, *, call: str = "", vkey_rpm: int = 1
) -> reserve.ReserveReply | AcquireReply:
    args = reserve.ReserveArgs(MODEL, 10, "capacity", rid, 600, repr(T0), "UTC=0", 0.5)
    limit_args = AcquireArgs(repr(T0), "acquire", 0, 0, vkey_rpm, 0, 0, 30 if call else 0)
    reply, local = await reserve_admitted.run_where(
        store,
        reserve_keys(store),
        store.keys.reservation(rid),
        args,
        (limit_keys(store, call), limit_args, None),
    )
    assert local is False
    return reply


@local_stores
async def test_the_limits_refusing_reserve_nothing(store: Store) -> None:
    await sync(store, [Key("k1")], {GROUP: limits(rpm=10)})
    assert isinstance(await admitted(store, "r1"), reserve.Reserved)
    before = await state_of(store)
    refused = await admitted(store, "r2")
    assert refused == AcquireReply(False, limit="key_rpm", retry_after=60.0)
    assert await state_of(store) == before and await stat(store, "k1", "requests") == 1
    assert not await store.call(store.client.exists(store.keys.reservation("r2")))


@local_stores
async def test_a_revoked_key_reserves_nothing(store: Store) -> None:
    await sync(store, [Key("k1")], {GROUP: limits(rpm=10)})
    await store.call(store.client.set(store.keys.rl_vkey_revoked("v1"), "1"))
    assert await admitted(store, "r1") == AcquireReply(False, revoked=True, limit="revoked")
    assert await stat(store, "k1", "requests") == 0


@local_stores
async def test_the_same_call_id_is_charged_once_whatever_it_reserves(store: Store) -> None:
    await sync(store, [Key("k1")], {GROUP: limits(rpm=10)})
    for rid in ("r1", "r2", "r3"):  # the call's reservations: one key, another, again
        assert isinstance(await admitted(store, rid, call="c1"), reserve.Reserved)
    assert await stat(store, "k1", "requests") == 3
    # the key's 1 request a minute went to call c1 alone: another call is refused
    refused = await admitted(store, "r4", call="c2")
    assert isinstance(refused, AcquireReply) and refused.limit == "key_rpm"
