"""Capacity engine behaviour, the same on real Redis, the real Redis Cluster and the embedded store."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from kernel.errors import AllKeysExhaustedError, ConfigError, RequestTooLargeError
from kernel.store import Store
from tests.helpers import all_stores, both_pool_shards
from tests.keys.engine_helpers import ManualClock, drain, engine_for, make_key


@both_pool_shards
@all_stores
async def test_burst_capacity_is_exact_then_refills_continuously(store: Store) -> None:
    clock = ManualClock()
    engine = engine_for(store, clock)
    await engine.configure([make_key(f"k{i}", rpm=6, tpm=10_000) for i in range(3)])
    assert len(await drain(engine, "gpt-4o")) == 18
    clock.advance(10)  # 6 rpm -> one request per key per 10 s
    assert len(await drain(engine, "gpt-4o")) == 3
    clock.advance(60)
    assert len(await drain(engine, "gpt-4o")) == 18


@both_pool_shards
@all_stores
async def test_tokens_bind_when_they_run_out_first(store: Store) -> None:
    clock = ManualClock()
    engine = engine_for(store, clock)
    await engine.configure([make_key("k", rpm=100, tpm=1000)])
    assert len(await drain(engine, "gpt-4o", tokens=300)) == 3
    with pytest.raises(AllKeysExhaustedError) as info:
        await engine.reserve("gpt-4o", 300)
    assert info.value.reason == "tpm"
    # 200 tokens are needed on top of the 100 left: 200 * 60 / 1000 = 12 s
    assert info.value.retry_after == pytest.approx(12.0, abs=1e-3)
    clock.advance(12)
    await engine.reserve("gpt-4o", 300)


@both_pool_shards
@all_stores
async def test_request_larger_than_any_burst_never_fits(store: Store) -> None:
    engine = engine_for(store, ManualClock())
    await engine.configure([make_key("a", tpm=1000), make_key("b", tpm=2000, tpm_burst=1500)])
    with pytest.raises(RequestTooLargeError) as info:
        await engine.reserve("gpt-4o", 1501)
    assert info.value.max_tokens == 1500
    assert (await engine.reserve("gpt-4o", 1500)).key_id == "b"


@both_pool_shards
@all_stores
async def test_exhausted_error_says_when_and_why(store: Store) -> None:
    clock = ManualClock()
    engine = engine_for(store, clock)
    await engine.configure([make_key("a", rpm=1), make_key("b", rpm=2)])
    await drain(engine, "gpt-4o")
    with pytest.raises(AllKeysExhaustedError) as info:
        await engine.reserve("gpt-4o", 1)
    err = info.value
    assert err.reason == "rpm"
    assert err.retry_after == pytest.approx(30.0, abs=1e-3)  # key b refills one request in 30 s
    assert {k.key_id for k in err.keys} <= {"a", "b"}
    assert all(k.reason == "rpm" for k in err.keys)


@both_pool_shards
@all_stores
async def test_no_key_for_model(store: Store) -> None:
    engine = engine_for(store, ManualClock())
    await engine.configure([make_key("a", rpm=5)])
    with pytest.raises(AllKeysExhaustedError) as info:
        await engine.reserve("claude-3-opus", 1)
    assert info.value.retry_at is None


@both_pool_shards
@all_stores
async def test_reservation_id_is_idempotent(store: Store) -> None:
    engine = engine_for(store, ManualClock())
    await engine.configure([make_key("a", rpm=2)])
    first = await engine.reserve("gpt-4o", 5, reservation_id="r-1")
    again = await engine.reserve("gpt-4o", 5, reservation_id="r-1")
    assert again.duplicate and again.key_id == first.key_id
    second = await engine.reserve("gpt-4o", 5)
    assert second.key_id == "a"
    with pytest.raises(AllKeysExhaustedError):
        await engine.reserve("gpt-4o", 5)


@both_pool_shards
@all_stores
async def test_settle_refunds_and_charges_once(store: Store) -> None:
    clock = ManualClock()
    engine = engine_for(store, clock)
    key = make_key("a", rpm=100, tpm=1000)
    await engine.configure([key])
    r1 = await engine.reserve("gpt-4o", 600)
    await engine.reserve("gpt-4o", 300)
    result = await engine.settle(r1, actual_tokens=100)
    assert result.settled and result.charged == pytest.approx(100)
    assert not (await engine.settle(r1, actual_tokens=0)).settled  # a second settle does nothing
    usage = await engine.bucket_usage("a|gpt-4o", key)
    assert usage["tpm"]["used"] == 400
    assert usage["tpm"]["available"] == pytest.approx(600, abs=1e-3)
    await engine.reserve("gpt-4o", 600)


@both_pool_shards
@all_stores
async def test_settle_with_more_tokens_than_reserved_charges_the_extra(store: Store) -> None:
    clock = ManualClock()
    engine = engine_for(store, clock)
    key = make_key("a", rpm=100, tpm=1000)
    await engine.configure([key])
    r = await engine.reserve("gpt-4o", 100)
    assert (await engine.settle(r, actual_tokens=900)).charged == pytest.approx(900)
    with pytest.raises(AllKeysExhaustedError):
        await engine.reserve("gpt-4o", 200)


@both_pool_shards
@all_stores
async def test_refund_never_returns_capacity_that_already_refilled(store: Store) -> None:
    clock = ManualClock()
    engine = engine_for(store, clock)
    await engine.configure([make_key("a", rpm=100, tpm=600)])
    r = await engine.reserve("gpt-4o", 600)
    clock.advance(120)  # the bucket refilled completely: the reservation's charge has drained
    await engine.reserve("gpt-4o", 600)
    result = await engine.settle(r, actual_tokens=0)
    assert result.charged == pytest.approx(600)  # nothing given back
    with pytest.raises(AllKeysExhaustedError):
        await engine.reserve("gpt-4o", 1)


@both_pool_shards
@all_stores
async def test_release_gives_everything_back_at_once(store: Store) -> None:
    engine = engine_for(store, ManualClock())
    key = make_key("a", rpm=1, tpm=100, rpd=1)
    await engine.configure([key])
    r = await engine.reserve("gpt-4o", 100)
    with pytest.raises(AllKeysExhaustedError):
        await engine.reserve("gpt-4o", 1)
    assert await engine.release(r)
    assert not await engine.release(r)
    assert not (await engine.settle(r)).settled
    again = await engine.reserve("gpt-4o", 100)
    assert again.key_id == "a"
    stats = await engine.stats("a")
    assert (stats["requests"], stats["released"]) == (1, 1)


@both_pool_shards
@all_stores
async def test_requests_per_day_follow_the_providers_calendar(store: Store) -> None:
    pacific = ZoneInfo("America/Los_Angeles")
    start = datetime(2027, 3, 1, 23, 59, 0, tzinfo=pacific).timestamp()  # one minute to midnight PT
    clock = ManualClock(start)
    engine = engine_for(store, clock)
    gemini = make_key("g", model="gemini-2.0-flash", provider="gemini", rpd=2)
    openai = make_key("o", rpd=2)
    await engine.configure([gemini, openai])
    await drain(engine, "gemini-2.0-flash")
    await drain(engine, "gpt-4o")
    with pytest.raises(AllKeysExhaustedError) as info:
        await engine.reserve("gemini-2.0-flash", 1)
    assert info.value.reason == "rpd"
    assert info.value.retry_at == pytest.approx(start + 60)
    clock.advance(61)  # midnight Pacific has passed, not midnight UTC (that was 7 or 8 h earlier)
    assert len(await drain(engine, "gemini-2.0-flash")) == 2
    with pytest.raises(AllKeysExhaustedError):
        await engine.reserve("gpt-4o", 1)


@both_pool_shards
@all_stores
async def test_strict_mode_never_exceeds_a_sixty_second_window(store: Store) -> None:
    clock = ManualClock()
    engine = engine_for(store, clock)
    await engine.configure(
        [make_key("s", rpm=10, strict=True), make_key("g", model="gpt-4o-mini", rpm=10)]
    )
    times: list[float] = []
    for _ in range(240):  # 4 minutes in 1-second steps, trying 3 requests each second
        for _ in range(3):
            try:
                await engine.reserve("gpt-4o", 1)
                times.append(clock.now)
            except AllKeysExhaustedError:
                break
        clock.advance(1)
    assert max(sum(1 for t in times if s <= t < s + 60) for s in times) <= 10
    assert len(times) >= 10 * 4 * 60 / 61 - 1  # and the limit is still used, window after window


@both_pool_shards
@all_stores
async def test_changed_limits_apply_on_the_next_reservation_without_losing_state(
    store: Store,
) -> None:
    clock = ManualClock()
    engine = engine_for(store, clock)
    await engine.configure([make_key("a", rpm=2)])
    await drain(engine, "gpt-4o")
    await engine.configure([make_key("a", rpm=4)])  # live change: 2 used of a burst of 4
    assert len(await drain(engine, "gpt-4o")) == 2
    await engine.configure([make_key("a", rpm=4, active=False), make_key("b", rpm=1)])
    assert [r.key_id for r in await drain(engine, "gpt-4o")] == ["b"]


@both_pool_shards
@all_stores
async def test_store_flush_rebuilds_the_pool_on_the_next_reservation(store: Store) -> None:
    engine = engine_for(store, ManualClock())
    await engine.configure([make_key("a", rpm=5)])
    await engine.reserve("gpt-4o", 1)
    keys = [store.keys.pool_config, store.keys.pool_models, store.keys.ready("gpt-4o", 1)]
    for name in keys:
        await store.client.delete(name)
    assert (await engine.reserve("gpt-4o", 1)).key_id == "a"


@both_pool_shards
@all_stores
async def test_quota_group_shares_one_budget(store: Store) -> None:
    engine = engine_for(store, ManualClock())
    keys = [make_key(f"k{i}", rpm=4, quota_group="org-1") for i in range(3)] + [
        make_key("solo", rpm=4)
    ]
    await engine.configure(keys)
    made = await drain(engine, "gpt-4o")
    assert len(made) == 8
    by_bucket = Counter(r.bucket for r in made)
    assert by_bucket == {"org-1|gpt-4o": 4, "solo|gpt-4o": 4}


def test_quota_group_members_must_agree_on_limits() -> None:
    from keys.layout import _check_groups

    with pytest.raises(ConfigError, match="quota group 'org'"):
        _check_groups(
            [make_key("a", rpm=4, quota_group="org"), make_key("b", rpm=5, quota_group="org")]
        )


@both_pool_shards
@all_stores
async def test_priority_tiers_spill_only_when_the_first_has_no_room(store: Store) -> None:
    from keys.models import ModelBinding

    engine = engine_for(store, ManualClock())
    first = make_key("first", rpm=3)
    second = make_key("second", rpm=3, models=[ModelBinding(model="gpt-4o", priority=2)])
    await engine.configure([second, first])
    assert [r.key_id for r in await drain(engine, "gpt-4o")] == ["first"] * 3 + ["second"] * 3


@all_stores
async def test_round_robin_is_exact(store: Store) -> None:
    engine = engine_for(store, ManualClock())
    await engine.configure([make_key(f"k{i}", rpm=100) for i in range(4)])
    order = [(await engine.reserve("gpt-4o", 1, strategy="round_robin")).key_id for _ in range(12)]
    assert order == ["k0", "k1", "k2", "k3"] * 3


@all_stores
async def test_round_robin_skips_a_key_without_room(store: Store) -> None:
    engine = engine_for(store, ManualClock())
    await engine.configure(
        [make_key("k0", rpm=100), make_key("k1", rpm=1), make_key("k2", rpm=100)]
    )
    order = [(await engine.reserve("gpt-4o", 1, strategy="round_robin")).key_id for _ in range(7)]
    assert order == ["k0", "k1", "k2", "k0", "k2", "k0", "k2"]


@all_stores
async def test_least_used_evens_counts(store: Store) -> None:
    engine = engine_for(store, ManualClock())
    await engine.configure([make_key(f"k{i}", rpm=1000) for i in range(5)])
    for _ in range(3):
        await engine.reserve("gpt-4o", 1, strategy="round_robin", exclude=["k3", "k4"])
    counts = Counter(
        [(await engine.reserve("gpt-4o", 1, strategy="least_used")).key_id for _ in range(37)]
    )
    total = {f"k{i}": counts[f"k{i}"] + (1 if i < 3 else 0) for i in range(5)}
    assert max(total.values()) - min(total.values()) <= 1


@both_pool_shards
@all_stores
async def test_weights_are_proportional(store: Store) -> None:
    from keys.models import ModelBinding

    engine = engine_for(store, ManualClock())
    keys = [
        make_key(f"w{w}", rpm=10_000, models=[ModelBinding(model="gpt-4o", weight=w)])
        for w in (1, 2, 5)
    ]
    await engine.configure(keys)
    counts = Counter(
        [(await engine.reserve("gpt-4o", 1, strategy="weighted")).key_id for _ in range(400)]
    )
    assert counts["w1"] == pytest.approx(50, abs=2)
    assert counts["w2"] == pytest.approx(100, abs=2)
    assert counts["w5"] == pytest.approx(250, abs=2)


@all_stores
async def test_random_spreads_over_keys(store: Store) -> None:
    engine = engine_for(store, ManualClock())
    await engine.configure([make_key(f"k{i}", rpm=10_000) for i in range(4)])
    counts = Counter(
        [(await engine.reserve("gpt-4o", 1, strategy="random")).key_id for _ in range(400)]
    )
    assert set(counts) == {"k0", "k1", "k2", "k3"}
    assert min(counts.values()) > 50  # expected 100 each; 50 is > 5 standard deviations away


@all_stores
async def test_capacity_strategy_prefers_the_emptiest_key(store: Store) -> None:
    engine = engine_for(store, ManualClock())
    await engine.configure([make_key("busy", rpm=10), make_key("idle", rpm=10)])
    for _ in range(6):
        await engine.reserve("gpt-4o", 1, exclude=["idle"])
    picks = Counter([(await engine.reserve("gpt-4o", 1)).key_id for _ in range(6)])
    assert picks["idle"] >= 5


@both_pool_shards
@all_stores
async def test_tags_filter_candidates(store: Store) -> None:
    engine = engine_for(store, ManualClock())
    await engine.configure(
        [
            make_key("us", rpm=10, tags={"region": "us"}),
            make_key("eu", rpm=10, tags={"region": "eu"}),
        ]
    )
    picks = set(
        [(await engine.reserve("gpt-4o", 1, tags={"region": "eu"})).key_id for _ in range(5)]
    )
    assert picks == {"eu"}


@both_pool_shards
@all_stores
async def test_rate_limited_cools_the_bucket_for_what_the_provider_said(store: Store) -> None:
    clock = ManualClock()
    engine = engine_for(store, clock)
    await engine.configure([make_key("a", rpm=100), make_key("b", rpm=100)])
    r = await engine.reserve("gpt-4o", 1, exclude=["b"])
    result = await engine.settle(r, outcome="rate_limited", retry_after=7)
    assert result.state == "cooldown" and result.until == pytest.approx(clock.now + 7)
    assert set([(await engine.reserve("gpt-4o", 1)).key_id for _ in range(5)]) == {"b"}
    clock.advance(7.01)
    assert "a" in set([(await engine.reserve("gpt-4o", 1)).key_id for _ in range(5)])


@both_pool_shards
@all_stores
async def test_a_success_whose_provider_bucket_is_empty_holds_the_bucket(store: Store) -> None:
    """settle(..., hold=s): the provider said its own bucket needs s seconds; no process admits
    a call to that bucket before then, the key stays healthy and no 429 backoff grows."""
    from keys.engine import HealthPolicy

    clock = ManualClock()
    engine = engine_for(store, clock, policy=HealthPolicy(cooldown_seconds=60, cooldown_factor=2))
    await engine.configure([make_key("a", rpm=100), make_key("b", rpm=100)])
    r = await engine.reserve("gpt-4o", 1, exclude=["b"])
    result = await engine.settle(r, 5, hold=1.5)
    assert result.settled and result.state == "ok"
    assert {(await engine.reserve("gpt-4o", 1)).key_id for _ in range(5)} == {"b"}
    with pytest.raises(AllKeysExhaustedError) as info:
        await engine.reserve("gpt-4o", 1, exclude=["b"])
    assert info.value.retry_after == pytest.approx(1.5, abs=1e-3)
    clock.advance(1.51)
    again = await engine.reserve("gpt-4o", 1, exclude=["b"])
    assert again.key_id == "a"
    # a hold is not a 429: the next real 429 starts the backoff at its base
    result = await engine.settle(again, outcome="rate_limited")
    assert result.until - clock.now == pytest.approx(60, abs=1e-3)


@both_pool_shards
@all_stores
async def test_after_a_hold_no_more_goes_out_than_the_provider_has_room_for(store: Store) -> None:
    """Configured 120 rpm, the provider really allows 60: when it reports its bucket empty, the
    bucket holds 1 s and then admits one call, not the burst it believes it has, and refills
    no faster than one more per 0.5 s (its own rate) until the provider says otherwise."""
    clock = ManualClock()
    engine = engine_for(store, clock)
    await engine.configure([make_key("a", rpm=120)])
    r = await engine.reserve("gpt-4o", 1)
    await engine.settle(r, 1, hold=1.0, provider_room=(1.0, None))
    with pytest.raises(AllKeysExhaustedError):
        await engine.reserve("gpt-4o", 1)
    clock.advance(1.0)
    await engine.reserve("gpt-4o", 1)
    with pytest.raises(AllKeysExhaustedError) as info:
        await engine.reserve("gpt-4o", 1)
    assert info.value.retry_after == pytest.approx(0.5, abs=1e-3)


@both_pool_shards
@all_stores
async def test_the_providers_room_never_adds_room(store: Store) -> None:
    clock = ManualClock()
    engine = engine_for(store, clock)
    await engine.configure([make_key("a", rpm=60, rpm_burst=2)])
    first = await engine.reserve("gpt-4o", 1)
    await engine.reserve("gpt-4o", 1)
    # the provider says it has room for 50 (more than this bucket's burst): nothing changes
    await engine.settle(first, 1, provider_room=(50.0, 1e9))
    with pytest.raises(AllKeysExhaustedError) as info:
        await engine.reserve("gpt-4o", 1)
    assert info.value.retry_after == pytest.approx(1.0, abs=1e-3)


@both_pool_shards
@all_stores
async def test_less_than_one_unit_apart_is_agreement(store: Store) -> None:
    """Rounding in a provider's reset never costs room: the bucket is only brought down when
    the provider has at least one unit less."""
    clock = ManualClock()
    engine = engine_for(store, clock)
    await engine.configure([make_key("a", rpm=60, rpm_burst=3)])
    r = await engine.reserve("gpt-4o", 1)  # 2 left here
    await engine.settle(r, 1, provider_room=(1.2, None))
    assert len(await drain(engine, "gpt-4o")) == 2
    clock.advance(1.0)
    r = await engine.reserve("gpt-4o", 1)  # 0 left here... and the provider says 0 too
    await engine.settle(r, 1, provider_room=(0.0, None))
    clock.advance(1.0)
    assert len(await drain(engine, "gpt-4o")) == 1


@both_pool_shards
@all_stores
async def test_a_hold_never_shortens_a_cooldown(store: Store) -> None:
    clock = ManualClock()
    engine = engine_for(store, clock)
    await engine.configure([make_key("a", rpm=100)])
    first, second = await engine.reserve("gpt-4o", 1), await engine.reserve("gpt-4o", 1)
    await engine.settle(first, outcome="rate_limited", retry_after=30)
    await engine.settle(second, 1, hold=2)  # a late success saying "empty for 2 s"
    with pytest.raises(AllKeysExhaustedError) as info:
        await engine.reserve("gpt-4o", 1)
    assert info.value.retry_after == pytest.approx(30, abs=1e-3)


@both_pool_shards
@all_stores
async def test_default_cooldown_grows_exponentially_and_is_capped(store: Store) -> None:
    from keys.engine import HealthPolicy

    clock = ManualClock()
    engine = engine_for(
        store,
        clock,
        policy=HealthPolicy(cooldown_seconds=60, cooldown_factor=2, cooldown_max_seconds=200),
    )
    await engine.configure([make_key("a", rpm=1000)])
    waits = []
    for _ in range(4):
        r = await engine.reserve("gpt-4o", 1)
        result = await engine.settle(r, outcome="rate_limited")
        waits.append(round(result.until - clock.now, 3))
        clock.advance(result.until - clock.now + 0.001)
    assert waits == [60, 120, 200, 200]
    r = await engine.reserve("gpt-4o", 1)
    await engine.settle(r, outcome="success")  # success resets the backoff
    r = await engine.reserve("gpt-4o", 1)
    assert round((await engine.settle(r, outcome="rate_limited")).until - clock.now) == 60


@both_pool_shards
@all_stores
async def test_daily_quota_exhaustion_cools_until_the_day_resets(store: Store) -> None:
    clock = ManualClock(datetime(2027, 5, 4, 12, 0, tzinfo=ZoneInfo("UTC")).timestamp())
    engine = engine_for(store, clock)
    await engine.configure([make_key("a", rpm=100)])
    r = await engine.reserve("gpt-4o", 1)
    result = await engine.settle(r, outcome="rate_limited", scope="day")
    assert result.until == datetime(2027, 5, 5, tzinfo=ZoneInfo("UTC")).timestamp()


@both_pool_shards
@all_stores
async def test_auth_failure_disables_until_enabled(store: Store) -> None:
    clock = ManualClock()
    engine = engine_for(store, clock)
    await engine.configure([make_key("bad", rpm=100), make_key("good", rpm=100)])
    r = await engine.reserve("gpt-4o", 1, exclude=["good"])
    assert (
        await engine.settle(r, outcome="auth", error_class="ProviderAuthError")
    ).state == "disabled"
    clock.advance(10_000)
    await engine.clear_cooldown("bad")  # clearing cooldowns never revives an auth failure
    await engine.configure(list(engine.keys.values()))
    assert set([(await engine.reserve("gpt-4o", 1)).key_id for _ in range(6)]) == {"good"}
    await engine.enable("bad")
    assert "bad" in set([(await engine.reserve("gpt-4o", 1)).key_id for _ in range(6)])


@both_pool_shards
@all_stores
async def test_circuit_opens_after_three_failures_and_half_opens_with_one_probe(
    store: Store,
) -> None:
    clock = ManualClock()
    engine = engine_for(store, clock)
    await engine.configure([make_key("flaky", rpm=1000), make_key("steady", rpm=1000)])
    for i in range(3):
        r = await engine.reserve("gpt-4o", 1, exclude=["steady"])
        result = await engine.settle(r, outcome="transient", error_class="ServerError")
        assert result.state == ("open" if i == 2 else "ok")
    assert set([(await engine.reserve("gpt-4o", 1)).key_id for _ in range(5)]) == {"steady"}
    clock.advance(300)
    probe = await engine.reserve("gpt-4o", 1, exclude=["steady"])
    assert probe.key_id == "flaky" and probe.probe
    with pytest.raises(AllKeysExhaustedError) as info:  # one probe at a time
        await engine.reserve("gpt-4o", 1, exclude=["steady"])
    assert info.value.reason == "probing"
    assert (
        await engine.settle(probe, outcome="transient")
    ).state == "open"  # probe failed: open again
    clock.advance(300)
    probe = await engine.reserve("gpt-4o", 1, exclude=["steady"])
    assert (await engine.settle(probe, outcome="success")).state == "ok"
    assert (await engine.health("flaky"))["fails"] == 0


@both_pool_shards
@all_stores
async def test_success_lowers_the_failure_count(store: Store) -> None:
    engine = engine_for(store, ManualClock())
    await engine.configure([make_key("a", rpm=1000)])
    for outcome in ("transient", "transient", "success", "transient"):
        await engine.settle(await engine.reserve("gpt-4o", 1), outcome=outcome)  # type: ignore[arg-type]
    health = await engine.health("a")
    assert (health["state"], health["fails"]) == ("ok", 2)


@both_pool_shards
@all_stores
async def test_manual_cooldown_and_clear(store: Store) -> None:
    clock = ManualClock()
    engine = engine_for(store, clock)
    await engine.configure([make_key("a", rpm=1000)])
    await engine.cooldown("a", 300, reason="maintenance")
    with pytest.raises(AllKeysExhaustedError) as info:
        await engine.reserve("gpt-4o", 1)
    assert info.value.reason == "cooldown" and info.value.retry_after == pytest.approx(300)
    await engine.clear_cooldown("a")
    await engine.reserve("gpt-4o", 1)


@both_pool_shards
@all_stores
async def test_thousands_of_concurrent_reservations_admit_exactly_the_capacity(
    store: Store,
) -> None:
    engine = engine_for(store, ManualClock())
    await engine.configure([make_key(f"k{i}", rpm=50, tpm=100_000) for i in range(10)])

    async def attempt() -> int:
        try:
            await engine.reserve("gpt-4o", 10)
            return 1
        except AllKeysExhaustedError:
            return 0

    admitted = sum(await asyncio.gather(*(attempt() for _ in range(2000))))
    assert admitted == 500
