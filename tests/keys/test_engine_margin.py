"""The reserve margin (RESERVE_MARGIN_SECONDS, lua/lib_pool.lua GCRA_MARGIN): room that refills
under sustained load is used ``margin`` seconds late, so the provider's bucket is never a sliver
short when requests arrive with varying delays; bursts and released room are used at once; the
rate over time is unchanged."""

from __future__ import annotations

import pytest

from kernel.errors import AllKeysExhaustedError
from kernel.store import Store
from tests.helpers import all_stores
from tests.keys.engine_helpers import ManualClock, drain, engine_for, make_key

MARGIN = 0.25


@all_stores
async def test_a_burst_is_whole_at_once_with_a_margin(store: Store) -> None:
    clock = ManualClock()
    engine = engine_for(store, clock, margin=MARGIN)
    await engine.configure([make_key("k", rpm=60, rpm_burst=5)])
    assert len(await drain(engine, "gpt-4o")) == 5


@all_stores
async def test_refilled_room_waits_the_margin(store: Store) -> None:
    clock = ManualClock()
    engine = engine_for(store, clock, margin=MARGIN)
    await engine.configure([make_key("k", rpm=60, rpm_burst=2)])
    assert len(await drain(engine, "gpt-4o")) == 2
    clock.advance(1.0)  # 60 rpm: one request's room is back, exactly now
    with pytest.raises(AllKeysExhaustedError) as info:
        await engine.reserve("gpt-4o", 1)
    assert info.value.retry_after == pytest.approx(MARGIN, abs=1e-3)
    clock.advance(MARGIN)
    await engine.reserve("gpt-4o", 1)


async def _served_in_a_minute(store: Store, margin: float, burst: int) -> int:
    clock = ManualClock()
    engine = engine_for(store, clock, margin=margin)
    await engine.configure([make_key(f"k{margin}", rpm=60, rpm_burst=burst)])
    served = 0
    for _ in range(600):  # 60 s in steps of 0.1 s, always asking
        try:
            await engine.reserve("gpt-4o", 1)
            served += 1
        except AllKeysExhaustedError:
            pass
        clock.advance(0.1)
    return served


@all_stores
async def test_the_margin_shifts_the_schedule_without_slowing_it(store: Store) -> None:
    # the burst at once, then one per second: the margin delays each by 0.25 s but costs none
    assert await _served_in_a_minute(store, MARGIN, 3) == await _served_in_a_minute(store, 0, 3)


@all_stores
async def test_a_burst_too_small_for_the_margin_gets_none(store: Store) -> None:
    # burst 1: each late admission would push the next one back; the margin is skipped instead
    assert await _served_in_a_minute(store, MARGIN, 1) == await _served_in_a_minute(store, 0, 1)


@all_stores
async def test_released_room_is_used_at_once_with_a_margin(store: Store) -> None:
    clock = ManualClock()
    engine = engine_for(store, clock, margin=MARGIN)
    await engine.configure([make_key("k", rpm=60, rpm_burst=1)])
    first = await engine.reserve("gpt-4o", 1)
    assert await engine.release(first)
    await engine.reserve("gpt-4o", 1)


@all_stores
async def test_no_margin_by_default_and_per_call_override(store: Store) -> None:
    clock = ManualClock()
    engine = engine_for(store, clock)
    await engine.configure([make_key("k", rpm=60, rpm_burst=2)])
    assert len(await drain(engine, "gpt-4o")) == 2
    clock.advance(1.0)
    with pytest.raises(AllKeysExhaustedError):
        await engine.reserve("gpt-4o", 1, margin=MARGIN)
    await engine.reserve("gpt-4o", 1)  # the engine's own margin: none


@all_stores
async def test_state_records_written_before_the_margin_still_read(store: Store) -> None:
    clock = ManualClock()
    engine = engine_for(store, clock, margin=MARGIN)
    await engine.configure([make_key("k", rpm=60, rpm_burst=2)])
    await engine.reserve("gpt-4o", 1)
    names = store.keys
    raw = await store.call(store.client.hget(names.pool_state, "k|gpt-4o"))
    fields = raw.split("\t")
    assert len(fields) == 15  # and the input and output limits' GCRA times
    # the 12-field record of an older version: no last admission known, so the margin applies
    await store.call(store.client.hset(names.pool_state, "k|gpt-4o", "\t".join(fields[:12])))
    with pytest.raises(AllKeysExhaustedError) as info:
        await engine.reserve("gpt-4o", 1)
    assert info.value.retry_after == pytest.approx(MARGIN, abs=1e-3)
    clock.advance(MARGIN)
    await engine.reserve("gpt-4o", 1)  # the burst's second unit
    with pytest.raises(AllKeysExhaustedError):
        await engine.reserve("gpt-4o", 1)
