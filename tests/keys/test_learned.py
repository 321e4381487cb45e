"""Limits learned from the provider (keys/learned.py, lua/settle.lua "Learned limits"): adopted by
every process from the pool's records, lower than the configured ones or in their place, kept
across restarts, one call at a time until the first answer. Real Redis, cluster, embedded store."""

from __future__ import annotations

from typing import Any

import pytest

from kernel.errors import AllKeysExhaustedError
from kernel.store import Store
from keys.engine import CapacityEngine
from keys.learned import divided_figures
from keys.models import APIKey
from tests.helpers import all_stores, both_pool_shards
from tests.keys.engine_helpers import ManualClock, drain, engine_for, make_key


def learner(key_id: str, **fields: Any) -> APIKey:
    return make_key(key_id, learn_limits=True, **fields)


async def limits(engine: CapacityEngine, key_id: str) -> dict[str, Any]:
    snap = await engine.snapshot([key_id])
    return dict(snap[key_id]["usage"]["gpt-4o"]["limits"])


@all_stores
@both_pool_shards
async def test_a_key_with_no_limits_takes_one_call_until_its_provider_answers(
    store: Store,
) -> None:
    clock = ManualClock()
    engine = engine_for(store, clock)
    await engine.configure([learner("k")])
    assert (await limits(engine, "k"))["learning"] is True
    first = await engine.reserve("gpt-4o", 100)
    with pytest.raises(AllKeysExhaustedError) as info:
        await engine.reserve("gpt-4o", 100)
    assert info.value.reason == "learning"
    assert info.value.retry_after == pytest.approx(0.2)  # looked at again shortly
    result = await engine.settle(first, 100, said="60,10000,,,")
    assert result.settled and result.above == ""
    status = await limits(engine, "k")
    assert status["rpm"] == {"limit": 60, "source": "learned", "configured": None, "learned": 60}
    assert status["tpm"]["limit"] == 10_000 and status["source"] == "learned"
    assert status["learning"] is False
    # the whole learned burst, less the one call already made
    assert len(await drain(engine, "gpt-4o")) == 59


@all_stores
async def test_an_answer_that_reports_nothing_leaves_the_key_without_limits(store: Store) -> None:
    engine = engine_for(store, ManualClock())
    await engine.configure([learner("g", model="gpt-4o", provider="gemini")])
    first = await engine.reserve("gpt-4o", 1)
    await engine.settle(first, 1, said="")  # Gemini's successes say nothing of its limits
    for _ in range(300):
        await engine.reserve("gpt-4o", 1)
    assert (await limits(engine, "g"))["source"] == "none"


@all_stores
async def test_a_failed_or_released_first_call_lets_the_next_one_go(store: Store) -> None:
    engine = engine_for(store, ManualClock())
    await engine.configure([learner("k")])
    first = await engine.reserve("gpt-4o", 1)
    assert await engine.release(first)
    second = await engine.reserve("gpt-4o", 1)
    await engine.settle(second, None, "transient", error_class="server_error")
    third = await engine.reserve("gpt-4o", 1)  # still learning: one at a time
    with pytest.raises(AllKeysExhaustedError):
        await engine.reserve("gpt-4o", 1)
    await engine.settle(third, 1, said="5,,,,")
    # the provider counted two of them this minute (the failed one and this one)
    assert len(await drain(engine, "gpt-4o")) == 3


@all_stores
async def test_a_call_never_settled_blocks_learning_for_the_probe_ttl_only(store: Store) -> None:
    clock = ManualClock()
    engine = engine_for(store, clock, probe_ttl=30.0)
    await engine.configure([learner("k")])
    await engine.reserve("gpt-4o", 1)  # its process died: never settled
    with pytest.raises(AllKeysExhaustedError):
        await engine.reserve("gpt-4o", 1)
    clock.advance(30.01)
    await engine.reserve("gpt-4o", 1)


@all_stores
@both_pool_shards
async def test_configured_above_the_provider_runs_at_the_provider_and_says_so_once(
    store: Store,
) -> None:
    clock = ManualClock()
    engine = engine_for(store, clock)
    await engine.configure([learner("k", rpm=120, tpm=100_000)])
    first = await engine.reserve("gpt-4o", 10)
    result = await engine.settle(first, 10, said="60,200000,,,")
    assert result.above == "rpm=120>60"  # tpm is configured below the provider's: no warning
    again = await engine.settle(await engine.reserve("gpt-4o", 10), 10, said="60,200000,,,")
    assert again.above == ""  # once per figure
    status = await limits(engine, "k")
    assert status["rpm"] == {"limit": 60, "source": "both", "configured": 120, "learned": 60}
    assert status["tpm"] == {
        "limit": 100_000,
        "source": "both",
        "configured": 100_000,
        "learned": 200_000,
    }
    assert status["source"] == "both"
    assert len(await drain(engine, "gpt-4o", tokens=10)) == 58
    clock.advance(1.0)  # one request refills at 60 rpm
    lower = await engine.settle(await engine.reserve("gpt-4o", 10), 10, said="50,200000,,,")
    assert lower.above == "rpm=120>50"  # a new figure: said again


@all_stores
async def test_configured_below_the_provider_keeps_the_configured_limit(store: Store) -> None:
    engine = engine_for(store, ManualClock())
    await engine.configure([learner("k", rpm=30)])
    result = await engine.settle(await engine.reserve("gpt-4o", 1), 1, said="60,,,,")
    assert result.above == ""
    assert (await limits(engine, "k"))["rpm"]["limit"] == 30
    assert len(await drain(engine, "gpt-4o")) == 29


@all_stores
async def test_a_refreshed_figure_replaces_the_learned_one(store: Store) -> None:
    clock = ManualClock()
    engine = engine_for(store, clock)
    await engine.configure([learner("k")])
    await engine.settle(await engine.reserve("gpt-4o", 1), 1, said="10,,,,")
    assert len(await drain(engine, "gpt-4o")) == 9
    clock.advance(6.0)  # one request refills at 10 rpm
    refreshed = await engine.reserve("gpt-4o", 1)
    # a tier upgrade: the usage in requests (10) stays, the room grows to the new figure
    await engine.settle(refreshed, 1, said="100,,,,")
    assert (await limits(engine, "k"))["rpm"]["limit"] == 100
    assert len(await drain(engine, "gpt-4o")) == 90


@all_stores
@both_pool_shards
async def test_keys_of_one_quota_group_learn_one_figure(store: Store) -> None:
    engine = engine_for(store, ManualClock())
    await engine.configure([learner("a", quota_group="org"), learner("b", quota_group="org")])
    first = await engine.reserve("gpt-4o", 1)
    await engine.settle(first, 1, said="6,,,,")
    other = "b" if first.key_id == "a" else "a"
    assert (await limits(engine, other))["rpm"]["limit"] == 6
    assert len(await drain(engine, "gpt-4o")) == 5  # one budget for the group


@all_stores
@both_pool_shards
async def test_learned_limits_survive_a_restart_and_are_shared(store: Store) -> None:
    clock = ManualClock()
    engine = engine_for(store, clock)
    await engine.configure([learner("k")])
    await engine.settle(await engine.reserve("gpt-4o", 1), 1, said="4,,,,")
    restarted = engine_for(store, clock)  # another process, or this one after a restart
    await restarted.configure([learner("k")])
    assert (await limits(restarted, "k"))["rpm"]["limit"] == 4
    assert len(await drain(restarted, "gpt-4o")) == 3  # no learning call: the limit is known


@all_stores
async def test_a_key_that_does_not_learn_ignores_the_providers_figures(store: Store) -> None:
    engine = engine_for(store, ManualClock())
    await engine.configure([make_key("k", rpm=120)])
    result = await engine.settle(await engine.reserve("gpt-4o", 1), 1, said="60,,,,")
    assert result.above == ""
    assert (await limits(engine, "k"))["rpm"]["source"] == "configured"
    assert len(await drain(engine, "gpt-4o")) == 119


@all_stores
async def test_a_limit_learned_from_a_429_starts_drained_and_per_day_blocks_the_day(
    store: Store,
) -> None:
    clock = ManualClock()
    engine = engine_for(store, clock)
    await engine.configure([learner("g", provider="gemini")])
    await engine.settle(await engine.reserve("gpt-4o", 1), 1, said="")
    made = [await engine.reserve("gpt-4o", 1) for _ in range(5)]
    # the provider refuses the sixth call: its quota is 5 per minute (Gemini's QuotaFailure)
    await engine.settle(made[-1], 1, "rate_limited", retry_after=12.0, said="5,,,,")
    with pytest.raises(AllKeysExhaustedError) as info:
        await engine.reserve("gpt-4o", 1)
    # held for the retry delay, then one request per refill (the provider's bucket is empty)
    assert info.value.retry_after == pytest.approx(12.0, abs=1e-3)
    clock.advance(12.0)
    assert len(await drain(engine, "gpt-4o")) == 1
    clock.advance(12.0)
    last = await engine.reserve("gpt-4o", 1)
    await engine.settle(last, 1, "rate_limited", scope="day", said=",,20,,")
    assert (await limits(engine, "g"))["rpd"]["limit"] == 20
    with pytest.raises(AllKeysExhaustedError) as day:
        await engine.reserve("gpt-4o", 1)
    assert day.value.retry_after is not None and day.value.retry_after > 3600


def test_degraded_mode_adopts_each_processs_share_of_the_providers_figures() -> None:
    assert divided_figures("60,100000,,40000,7", 4) == "15,25000,,10000,1"
    assert divided_figures("60,,,,", 1) == "60,,,,"
    assert divided_figures("", 4) == ""
