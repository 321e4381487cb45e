"""record_usage.lua's budget charge (calls served while Redis was unreachable: their cost reaches
the shared spend when their record is replayed), through its binding, on real Redis, the real
Redis Cluster and the embedded store: the cost goes to ``spent`` (and a request to ``requests``)
of each listed budget that exists, once per field, in the period current on the budget's
calendar; nothing without a cost or fields; each run charges again (the replay runs once)."""

from __future__ import annotations

from kernel.store import Store
from lua import record_usage
from lua.record_usage import BudgetCharge, RecordUsageKeys
from lua.usage_records import BudgetRecord, Rollup, SpendRecord, UsageArgs, budget_field, period_of
from tests.helpers import all_stores
from tests.lua.pool import put_budget, spend_of

ALICE = budget_field("user", "alice")
BOB = budget_field("user", "bob")
#: A calendar 40 days east of UTC: its day and month always differ from UTC's.
FAR = 40 * 86400


def usage(record: str, cost: int) -> UsageArgs:
    return UsageArgs(record, 100, 3600, 600, 100, {"user": "alice"}, 5, 7, cost, minute=1)


def keys_of(store: Store) -> RecordUsageKeys:
    n = store.keys
    return RecordUsageKeys(n.usage_stream, n.usage_rollup(1), n.budgets, n.budget_spend)


async def charge(store: Store, cost: int | None, *fields: str, offsets: str = "") -> None:
    charged = BudgetCharge(fields, cost, offsets)
    await record_usage.run(store, keys_of(store), usage("r", cost or 0), charge=charged)


@all_stores
async def test_the_cost_goes_to_spent_of_each_budget_once(store: Store) -> None:
    await put_budget(store, ALICE, BudgetRecord(10_000, "day"))
    await put_budget(store, "global", BudgetRecord(10**9, "month"))
    now = await store.server_time()
    today = period_of(now, 0, "day")[0]
    # a live reservation's estimate stays reserved: only spent and requests grow
    await store.call(
        store.client.hset(store.keys.budget_spend, ALICE, SpendRecord(today, 300, 50).encode())
    )
    await charge(store, 1234, "global", ALICE, ALICE, BOB)  # bob has no budget: skipped
    await charge(store, 66, ALICE)
    spend = await spend_of(store, ALICE)
    assert (spend.reserved, spend.spent, spend.requests) == (300, 50 + 1234 + 66, 2)
    assert spend.period in (today, period_of(await store.server_time(), 0, "day")[0])
    assert (await spend_of(store, "global")).spent == 1234
    assert (await spend_of(store, "global")).requests == 1
    assert await store.call(store.client.hexists(store.keys.budget_spend, BOB)) == 0
    # the record and its rollups are written as without a charge
    assert await store.call(store.client.xlen(store.keys.usage_stream)) == 2
    raw = await store.call(store.client.hget(store.keys.usage_rollup(1), "all|"))
    assert Rollup.decode(raw) == Rollup(2, 10, 14, 1300, 0)


@all_stores
async def test_the_charge_rolls_an_old_period_on_the_budgets_calendar(store: Store) -> None:
    await put_budget(store, ALICE, BudgetRecord(10_000, "month", "Far"))
    now = await store.server_time()
    utc_month, far_month = period_of(now, 0, "month")[0], period_of(now, FAR, "month")[0]
    assert utc_month != far_month
    old = SpendRecord(utc_month, 700, 900, True, 4)  # the UTC month's: an old one on Far's
    await store.call(store.client.hset(store.keys.budget_spend, ALICE, old.encode()))
    await charge(store, 25, ALICE, offsets=f"UTC=0;Far={FAR}")
    assert await spend_of(store, ALICE) == SpendRecord(far_month, 0, 25, False, 1)


@all_stores
async def test_no_cost_or_no_fields_charges_nothing(store: Store) -> None:
    await put_budget(store, ALICE, BudgetRecord(10_000, "day"))
    await charge(store, None, ALICE)
    await charge(store, 40)
    # without the budget keys nothing is charged, whatever the arguments say
    await record_usage.run(store, keys_of(store), usage("r", 40))
    assert await store.call(store.client.hexists(store.keys.budget_spend, ALICE)) == 0
    assert await store.call(store.client.xlen(store.keys.usage_stream)) == 3


@all_stores
async def test_each_run_charges_again(store: Store) -> None:
    """Not idempotent: degraded mode runs each kept write once on the shared store (a reply lost
    after the write is the one case that can charge twice)."""
    await put_budget(store, ALICE, BudgetRecord(10_000, "day"))
    await charge(store, 100, ALICE)
    await charge(store, 100, ALICE)
    assert (await spend_of(store, ALICE)).spent == 200
