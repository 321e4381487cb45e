"""settle.lua through its binding: refunds and extra tokens, each outcome's effect on the key and
the bucket, a repeated settle and an expired reservation."""

from __future__ import annotations

from kernel.store import Store
from lua import reserve, settle
from lua.records import Health
from tests.helpers import all_stores, local_stores
from tests.lua.pool import (
    GROUP,
    POLICY,
    T0,
    Key,
    health_of,
    limits,
    put_health,
    ready_score,
    reserve_one,
    settle_one,
    stat,
    state_of,
    sync,
)


async def held(store: Store, rid: str = "r1", tokens: int = 100, **lim: int) -> None:
    await sync(store, [Key("k1")], {GROUP: limits(**(lim or {"rpm": 10, "tpm": 1000}))})
    assert isinstance(await reserve_one(store, rid, tokens), reserve.Reserved)


@all_stores
async def test_a_success_refunds_what_was_not_used(store: Store) -> None:
    await held(store)
    reply = await settle_one(store, "r1", 40)
    assert reply == settle.Settled("k1", 40, "ok", 0.0, 40.0, "ok", T0)
    state = await state_of(store)
    assert (state.day_tok, state.min_tok) == (40, 40)
    assert state.tat_t == T0 + 2.4  # 40 of 1000 tpm
    assert await stat(store, "k1", "successes") == 1 and await stat(store, "k1", "tokens") == 40


@all_stores
async def test_extra_tokens_are_charged(store: Store) -> None:
    await held(store)
    reply = await settle_one(store, "r1", 150)
    assert isinstance(reply, settle.Settled) and (reply.tokens, reply.charged) == (150, 150.0)
    assert (await state_of(store)).min_tok == 150


@all_stores
async def test_a_rate_limit_blocks_the_bucket_for_retry_after_or_the_day(store: Store) -> None:
    await held(store)
    reply = await settle_one(store, "r1", None, "rate_limited", retry_after=10)
    assert isinstance(reply, settle.Settled) and (reply.state, reply.until) == ("cooldown", T0 + 10)
    state = await state_of(store)
    assert (state.blocked, state.level) == (T0 + 10, 1)
    assert await ready_score(store, "k1") == T0 + 10
    assert isinstance(await reserve_one(store, "r2", 1), reserve.NoRoom)
    assert isinstance(await reserve_one(store, "r3", 1, now=T0 + 10), reserve.Reserved)
    day = await settle_one(store, "r3", None, "rate_limited", scope="day", now=T0 + 10)
    next_day = (T0 // 86400 + 1) * 86400
    assert isinstance(day, settle.Settled) and day.until == next_day


@all_stores
async def test_an_auth_failure_disables_the_key(store: Store) -> None:
    await held(store)
    reply = await settle_one(store, "r1", None, "auth", error_class="401")
    assert isinstance(reply, settle.Settled) and (reply.state, reply.until) == ("disabled", 0.0)
    assert (await health_of(store, "k1")).reason == "auth"
    assert await ready_score(store, "k1") is None
    assert await stat(store, "k1", "failures") == 1


@all_stores
async def test_transient_failures_open_the_circuit_at_the_threshold(store: Store) -> None:
    await held(store, "r0", 1, rpm=100, tpm=0)
    states = []
    for i in range(POLICY.breaker_threshold):
        rid = f"r{i}"
        if i:
            assert isinstance(await reserve_one(store, rid, 1), reserve.Reserved)
        reply = await settle_one(store, rid, 1, "transient", error_class="503")
        assert isinstance(reply, settle.Settled)
        states.append(reply.state)
    assert states == ["ok", "ok", "open"]
    health = await health_of(store, "k1")
    assert (health.state, health.until, health.reason) == (
        "open",
        T0 + POLICY.breaker_timeout_seconds,
        "503",
    )


@all_stores
async def test_unreachable_gives_everything_back_and_cools_the_key(store: Store) -> None:
    await held(store)
    reply = await settle_one(store, "r1", None, "unreachable", error_class="connect")
    assert reply == settle.Settled(
        "k1", 0, "cooldown", T0 + POLICY.unreachable_seconds, 0.0, "ok", T0
    )
    state = await state_of(store)
    assert (state.day_req, state.day_tok, state.min_req, state.min_tok) == (0, 0, 0, 0)
    assert await stat(store, "k1", "released") == 1 and await stat(store, "k1", "requests") == 0


@local_stores
async def test_a_cancelled_probe_frees_the_probe_and_keeps_the_circuit_open(store: Store) -> None:
    await sync(store, [Key("k1")], {GROUP: limits(rpm=100)})
    await put_health(store, "k1", Health("open", T0 - 1, "503", 0, 3))
    probe = await reserve_one(store, "p", 1)
    assert isinstance(probe, reserve.Reserved) and probe.kind == "probe"
    reply = await settle_one(store, "p", 1, "cancelled", probe=True, now=T0 + 1)
    assert isinstance(reply, settle.Settled) and (reply.state, reply.until) == ("open", T0 + 1)
    assert (await health_of(store, "k1")).fails == 3
    again = await reserve_one(store, "p2", 1, now=T0 + 1)
    assert isinstance(again, reserve.Reserved) and again.kind == "probe"


@all_stores
async def test_a_repeated_settle_changes_nothing_and_an_expired_one_says_so(store: Store) -> None:
    await held(store)
    assert isinstance(await settle_one(store, "r1", 40), settle.Settled)
    state, health = await state_of(store), await health_of(store, "k1")
    assert await settle_one(store, "r1", 10, "auth") == settle.NotSettled("settled")
    assert (await state_of(store), await health_of(store, "k1")) == (state, health)
    assert await settle_one(store, "never-made", 10) == settle.NotSettled("expired")
