"""lua/budget_hold.lua: a sharded pool's budgets, held in their own slot (keys/shards.py)."""

from __future__ import annotations

from kernel.store import Store
from lua import budget_hold
from lua.reserve import BudgetExceeded
from lua.usage_records import BudgetRecord, SpendRecord, budget_field
from tests.helpers import all_stores

ALICE = budget_field("user", "alice")
NOW = "1800000000.0"


async def spend(store: Store) -> SpendRecord:
    return SpendRecord.decode(await store.call(store.client.hget(store.keys.budget_spend, ALICE)))


def keys(store: Store, rid: str) -> budget_hold.HoldKeys:
    n = store.keys
    return budget_hold.HoldKeys(n.budgets, n.budget_spend, n.budget_hold(rid))


@all_stores
async def test_a_hold_charges_once_settles_once_and_refuses_past_the_limit(store: Store) -> None:
    await store.call(
        store.client.hset(
            store.keys.budgets, ALICE, BudgetRecord(1000, "day", alert_share=0.5).encode()
        )
    )
    options = {"fields": [ALICE], "ttl": 60, "now": NOW}
    first = await budget_hold.hold(store, keys(store, "r1"), cost_nanos=600, **options)
    assert first == budget_hold.Held((ALICE,))  # past half of the budget: the alert, once
    again = await budget_hold.hold(store, keys(store, "r1"), cost_nanos=600, **options)
    assert again == budget_hold.Held(()) and (await spend(store)).reserved == 600  # a retry
    refused = await budget_hold.hold(store, keys(store, "r2"), cost_nanos=500, **options)
    assert isinstance(refused, BudgetExceeded) and (refused.limit, refused.used) == (1000, 600)
    unknown = await budget_hold.hold(store, keys(store, "r3"), cost_nanos=None, **options)
    assert isinstance(unknown, BudgetExceeded) and unknown.used == -1
    assert await budget_hold.settle(store, keys(store, "r1"), cost_nanos=250, now=NOW)
    assert not await budget_hold.settle(store, keys(store, "r1"), cost_nanos=250, now=NOW)
    assert ((await spend(store)).reserved, (await spend(store)).spent) == (0, 250)
    await budget_hold.hold(store, keys(store, "r4"), cost_nanos=300, **options)
    assert await budget_hold.settle(store, keys(store, "r4"), refund=True, now=NOW)
    assert ((await spend(store)).reserved, (await spend(store)).spent) == (0, 250)
    assert (await spend(store)).requests == 2  # r1 and r4 held; refusals count nothing
