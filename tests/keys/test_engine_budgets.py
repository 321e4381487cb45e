"""The capacity engine's budget keywords (keys/engine.py): a refusal is a BudgetExceededError that
says which budget, how much and when it resets; alerts come back on the reservation; settle takes
the real cost and the usage record; release refunds. The scripts' rules themselves are tested in
tests/lua/test_budgets.py."""

from __future__ import annotations

import pytest

from kernel.errors import BudgetExceededError
from kernel.store import Store
from lua.usage_records import BudgetRecord, SpendRecord, UsageArgs, budget_field, usd_to_nanos
from router.error_types import error_type_of
from tests.helpers import all_stores, both_pool_shards, local_stores
from tests.keys.engine_helpers import T0, ManualClock, engine_for, make_key

ALICE = budget_field("user", "alice")
DAY = 86400.0
TODAY = f"d{int(T0 // DAY)}"


async def spend(store: Store) -> SpendRecord:
    return SpendRecord.decode(await store.call(store.client.hget(store.keys.budget_spend, ALICE)))


@both_pool_shards
@all_stores
async def test_a_budget_refusal_says_which_how_much_and_when_it_resets(store: Store) -> None:
    clock = ManualClock()
    engine = engine_for(store, clock)
    await engine.configure([make_key("k1", rpm=1000)])
    record = BudgetRecord(usd_to_nanos(5.0), "day", alert_share=0.9)
    await store.call(store.client.hset(store.keys.budgets, ALICE, record.encode()))
    first = await engine.reserve("gpt-4o", 10, budgets=[ALICE], cost_nanos=usd_to_nanos(4.98))
    assert first.alerts == (ALICE,)
    clock.advance(3600 + 12 * 60 + 30)  # 09:12:30 UTC: the day resets in 14h47m30s
    with pytest.raises(BudgetExceededError) as caught:
        await engine.reserve("gpt-4o", 10, budgets=[ALICE], cost_nanos=usd_to_nanos(0.03))
    error = caught.value
    assert (
        str(error) == "budget user:alice exceeded: $4.98 of $5.00 used this day; resets in 14h47m"
    )
    assert (error.field, error.scope, error.name) == (ALICE, "user", "alice")
    assert (error.limit_usd, error.used_usd) == (5.0, 4.98)
    assert error.reset_at == (T0 // DAY + 1) * DAY and error.retry_after == 14 * 3600 + 47 * 60 + 30
    assert error_type_of(error) == "budget_exceeded"
    assert error.to_dict()["retry_after"] == error.retry_after
    with pytest.raises(BudgetExceededError) as unknown:
        await engine.reserve("gpt-4o", 10, budgets=[ALICE], cost_nanos=None)
    assert str(unknown.value) == "no price is known for gpt-4o, and budget user:alice applies"
    assert unknown.value.used_usd is None


@both_pool_shards
@local_stores
async def test_settle_charges_the_real_cost_and_writes_the_record(store: Store) -> None:
    clock = ManualClock()
    engine = engine_for(store, clock)
    await engine.configure([make_key("k1", rpm=1000)])
    await store.call(
        store.client.hset(store.keys.budgets, ALICE, BudgetRecord(1000, "month").encode())
    )
    held = await engine.reserve("gpt-4o", 10, budgets=[ALICE], cost_nanos=600)
    released = await engine.reserve("gpt-4o", 10, budgets=[ALICE], cost_nanos=300)
    assert (await spend(store)).reserved == 900
    assert await engine.release(released)
    assert (await spend(store)).reserved == 600
    usage = UsageArgs('{"request_id": "x"}', 100, 3600, 600, 100, {"model": "gpt-4o"}, 5, 2, 450)
    clock.advance(90)  # the record counts in the rollup of the settle's minute
    assert (await engine.settle(held, 8, cost_nanos=450, usage=usage)).settled
    assert ((await spend(store)).reserved, (await spend(store)).spent) == (0, 450)
    records, rolled = [], []
    for names in store.keys.usage_views():  # the shard's, when the pool is sharded
        entries = await store.call(store.client.xrange(names.usage_stream))
        records += [fields["r"] for _, fields in entries]
        rollup = names.usage_rollup(int(clock.now // 60))
        rolled.append(await store.call(store.client.hget(rollup, "model|gpt-4o")))
    assert records == [usage.record]
    assert [r for r in rolled if r] == ["1\t5\t2\t450\t0"]


@both_pool_shards
@local_stores
async def test_a_budgets_time_zone_is_passed_to_the_scripts(store: Store) -> None:
    clock = ManualClock(T0 + 9 * 3600)  # 17:00 UTC, 09:00 in Los Angeles
    engine = engine_for(store, clock)
    await engine.configure([make_key("k1", rpm=1000)])
    record = BudgetRecord(100, "day", "America/Los_Angeles")
    await store.call(store.client.hset(store.keys.budgets, ALICE, record.encode()))
    utc_midnight = (T0 // DAY + 1) * DAY
    with pytest.raises(BudgetExceededError) as utc:  # the zone unknown to the scripts: UTC
        await engine.reserve("gpt-4o", 1, budgets=[ALICE], cost_nanos=101)
    assert utc.value.reset_at == utc_midnight
    engine.use_zones(["America/Los_Angeles"])
    with pytest.raises(BudgetExceededError) as local:
        await engine.reserve("gpt-4o", 1, budgets=[ALICE], cost_nanos=101)
    assert local.value.reset_at == utc_midnight + 8 * 3600  # midnight in Los Angeles (PST)
