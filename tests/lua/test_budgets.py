"""Budgets in reserve.lua, settle.lua and release.lua, through their bindings, on real Redis, the
real Redis Cluster and the embedded store: a budget that would be passed refuses before any key is
charged; reservations hold the worst-case cost, settles turn it into the real cost, failed calls
give back exactly what they held; alerts fire once per period; periods roll on the budget's
calendar (a manual clock); the usage record is written once, by the settle."""

from __future__ import annotations

import datetime as dt

from kernel.store import Store
from lua import reserve, settle
from lua.usage_records import (
    BudgetRecord,
    ReservedBudget,
    Rollup,
    SpendRecord,
    UsageArgs,
    budget_field,
    decode_reserved,
)
from tests.helpers import all_stores, local_stores
from tests.lua.pool import (
    GROUP,
    T0,
    Key,
    limits,
    put_budget,
    release_one,
    reserve_one,
    settle_one,
    spend_of,
    stat,
    state_of,
    sync,
)

ALICE = budget_field("user", "alice")
TEAM = budget_field("team", "a;b")  # an id with a separator: encoded in the field
DAY = 86400.0
#: T0's day and the instant the next one begins (UTC).
TODAY, TOMORROW = f"d{int(T0 // DAY)}", (T0 // DAY + 1) * DAY


async def pool_with(store: Store, *budgets: tuple[str, BudgetRecord]) -> None:
    await sync(store, [Key("k1")], {GROUP: limits()})  # no rate limit: only budgets refuse
    for field, record in budgets:
        await put_budget(store, field, record)


async def reserve_cost(
    store: Store, rid: str, cost: int | None, *, now: float = T0, fields: tuple[str, ...] = (ALICE,)
) -> reserve.ReserveReply:
    return await reserve_one(store, rid, 10, now=now, budgets=fields, cost_nanos=cost)


@all_stores
async def test_a_budget_refuses_what_would_pass_it_and_charges_nothing(store: Store) -> None:
    await pool_with(store, (ALICE, BudgetRecord(1000, "day")))
    assert isinstance(await reserve_cost(store, "r1", 400), reserve.Reserved)
    assert isinstance(await reserve_cost(store, "r2", 400), reserve.Reserved)
    assert await spend_of(store, ALICE) == SpendRecord(TODAY, 800, 0, True, 2)
    before = await state_of(store)
    reply = await reserve_cost(store, "r3", 201)
    assert reply == reserve.BudgetExceeded(ALICE, TOMORROW, 1000, 800, T0, "day")
    assert await spend_of(store, ALICE) == SpendRecord(TODAY, 800, 0, True, 2)
    assert await state_of(store) == before and await stat(store, "k1", "requests") == 2
    assert await store.call(store.client.exists(store.keys.reservation("r3"))) == 0
    # exactly the limit fits
    assert isinstance(await reserve_cost(store, "r4", 200), reserve.Reserved)
    assert (await spend_of(store, ALICE)).reserved == 1000


@all_stores
async def test_an_unknown_price_is_refused_only_where_a_budget_applies(store: Store) -> None:
    await pool_with(store, (ALICE, BudgetRecord(1000, "month")))
    reply = await reserve_cost(store, "r1", None)
    assert isinstance(reply, reserve.BudgetExceeded) and (reply.used, reply.period) == (-1, "month")
    # fields without a budget are ignored: no budget applies, the call goes ahead
    free = await reserve_cost(store, "r2", None, fields=(budget_field("user", "bob"), "global"))
    assert isinstance(free, reserve.Reserved) and free.alerts == ()
    held = await store.call(store.client.hgetall(store.keys.reservation("r2")))
    assert "budgets" not in held and "cost" not in held


@all_stores
async def test_every_applicable_budget_is_charged_and_recorded_on_the_reservation(
    store: Store,
) -> None:
    await pool_with(
        store, (ALICE, BudgetRecord(10_000, "day")), (TEAM, BudgetRecord(10_000, "month"))
    )
    fields = (ALICE, TEAM, "global", ALICE)  # no global budget; a repeat counts once
    assert isinstance(await reserve_cost(store, "r1", 300, fields=fields), reserve.Reserved)
    assert (await spend_of(store, ALICE)).reserved == 300
    assert (await spend_of(store, TEAM)).reserved == 300
    held = await store.call(store.client.hgetall(store.keys.reservation("r1")))
    month = dt.datetime.fromtimestamp(T0, dt.UTC)
    assert decode_reserved(held["budgets"]) == [
        ReservedBudget(ALICE, TODAY, 300),
        ReservedBudget(TEAM, f"m{month.year * 12 + month.month - 1}", 300),
    ]
    assert held["cost"] == "300"
    # the other budget refuses: nothing is charged on either
    await put_budget(store, TEAM, BudgetRecord(500, "month"))
    refused = await reserve_cost(store, "r2", 300, fields=fields)
    assert isinstance(refused, reserve.BudgetExceeded) and refused.field == TEAM
    assert (await spend_of(store, ALICE)).reserved == 300


@all_stores
async def test_the_alert_fires_once_per_period(store: Store) -> None:
    await pool_with(store, (ALICE, BudgetRecord(1000, "day", alert_share=0.5)))
    alerts = []
    for i, now in enumerate([T0 + t for t in range(4)] + [TOMORROW + t for t in range(4)]):
        reply = await reserve_cost(store, f"r{i}", 200, now=now)
        assert isinstance(reply, reserve.Reserved)
        alerts.append(reply.alerts)
    # 600 of 1000 passes the half: the third call of each day alerts, no other
    assert alerts == [(), (), (ALICE,), ()] * 2


@all_stores
async def test_a_settle_turns_the_estimate_into_the_real_cost(store: Store) -> None:
    await pool_with(store, (ALICE, BudgetRecord(1000, "day")))
    await reserve_cost(store, "r1", 400)
    await reserve_cost(store, "r2", 400)
    await reserve_cost(store, "r3", 100)
    assert isinstance(await settle_one(store, "r1", 5, cost_nanos=150), settle.Settled)  # refund
    assert await spend_of(store, ALICE) == SpendRecord(TODAY, 500, 150, True, 3)
    assert isinstance(await settle_one(store, "r2", 5, cost_nanos=650), settle.Settled)  # extra
    assert await spend_of(store, ALICE) == SpendRecord(TODAY, 100, 800, True, 3)
    assert isinstance(await settle_one(store, "r3", 5), settle.Settled)  # no cost: the estimate
    assert await spend_of(store, ALICE) == SpendRecord(TODAY, 0, 900, True, 3)
    # a second settle changes nothing
    assert await settle_one(store, "r3", 5, cost_nanos=999) == settle.NotSettled("settled")
    assert await spend_of(store, ALICE) == SpendRecord(TODAY, 0, 900, True, 3)
    assert isinstance(await reserve_cost(store, "r4", 101), reserve.BudgetExceeded)


@all_stores
async def test_failed_calls_give_back_exactly_what_they_held(store: Store) -> None:
    await pool_with(store, (ALICE, BudgetRecord(1000, "day")))
    for rid, cost in (("r1", 300), ("r2", 250), ("r3", 125), ("r4", 50)):
        await reserve_cost(store, rid, cost)
    await settle_one(store, "r4", 1, cost_nanos=40)
    assert await spend_of(store, ALICE) == SpendRecord(TODAY, 675, 40, False, 4)
    await settle_one(store, "r1", None, "unreachable", cost_nanos=999)
    assert await spend_of(store, ALICE) == SpendRecord(TODAY, 375, 40, False, 4)
    assert (await release_one(store, "r2")).released
    assert await spend_of(store, ALICE) == SpendRecord(TODAY, 125, 40, False, 4)
    await settle_one(store, "r3", 1, "cancelled")  # it may have reached the provider: charged
    assert await spend_of(store, ALICE) == SpendRecord(TODAY, 0, 165, False, 4)
    assert not (await release_one(store, "r2")).released  # again: nothing more comes back
    assert await spend_of(store, ALICE) == SpendRecord(TODAY, 0, 165, False, 4)


@all_stores
async def test_a_new_period_starts_from_nothing_on_the_budgets_calendar(store: Store) -> None:
    await pool_with(store, (ALICE, BudgetRecord(1000, "day", "America/Los_Angeles")))
    # T0 is midnight in Los Angeles (08:00 UTC): its day ends a day later, not at UTC midnight
    local = {"offsets": "UTC=0;America/Los_Angeles=-28800", "budgets": (ALICE,), "cost_nanos": 900}
    assert isinstance(await reserve_one(store, "r1", 1, now=T0, **local), reserve.Reserved)
    refused = await reserve_one(store, "r2", 1, now=TOMORROW + 1, **local)
    assert refused == reserve.BudgetExceeded(ALICE, T0 + DAY, 1000, 900, TOMORROW + 1, "day")
    last = T0 + DAY - 1e-6
    assert isinstance(await reserve_one(store, "r3", 1, now=last, **local), reserve.BudgetExceeded)
    fresh = await reserve_one(store, "r4", 1, now=T0 + DAY, **local)
    assert isinstance(fresh, reserve.Reserved) and fresh.alerts == (ALICE,)
    assert await spend_of(store, ALICE) == SpendRecord(f"d{int(T0 // DAY) + 1}", 900, 0, True, 1)
    # without the zone's offset the budget's calendar is UTC's
    utc = await reserve_one(store, "r5", 1, now=T0 + DAY + 1, budgets=(ALICE,), cost_nanos=900)
    assert isinstance(utc, reserve.BudgetExceeded) and utc.resets_at == TOMORROW + DAY


@all_stores
async def test_a_reservation_across_a_period_boundary_leaves_the_new_period_alone(
    store: Store,
) -> None:
    await pool_with(store, (ALICE, BudgetRecord(1000, "day")))
    await reserve_cost(store, "old1", 600, now=TOMORROW - 1)
    await reserve_cost(store, "old2", 300, now=TOMORROW - 1)
    await reserve_cost(store, "new", 200, now=TOMORROW + 1)  # rolls the record to the new day
    tomorrow = f"d{int(TOMORROW // DAY)}"
    assert await spend_of(store, ALICE) == SpendRecord(tomorrow, 200, 0, False, 1)
    await settle_one(store, "old1", 1, cost_nanos=600, now=TOMORROW + 2)
    assert (await release_one(store, "old2", now=TOMORROW + 2)).released
    assert await spend_of(store, ALICE) == SpendRecord(tomorrow, 200, 0, False, 1)
    await settle_one(store, "new", 1, cost_nanos=150, now=TOMORROW + 3)
    assert await spend_of(store, ALICE) == SpendRecord(tomorrow, 0, 150, False, 1)


@all_stores
async def test_a_settle_writes_the_usage_record_once_in_the_same_run(store: Store) -> None:
    await pool_with(store, (ALICE, BudgetRecord(1000, "day")))
    await reserve_cost(store, "r1", 400)
    await reserve_cost(store, "r2", 400)
    record = UsageArgs('{"request_id": "r1"}', 100, 3600, 600, 100, {"key": "k1"}, 7, 3, 250)
    minute = int(T0 // 60)
    for _ in range(2):  # the second settle is a noop: no second record
        await settle_one(store, "r1", 10, cost_nanos=250, usage=record)
    failed = UsageArgs('{"request_id": "r2"}', 100, 3600, 600, 100, {"key": "k1"}, error=True)
    await settle_one(store, "r2", None, "unreachable", usage=failed)
    await settle_one(store, "gone", None, usage=failed)  # expired: nothing written
    entries = await store.call(store.client.xrange(store.keys.usage_stream))
    assert [fields["r"] for _, fields in entries] == [record.record, failed.record]
    raw = await store.call(store.client.hgetall(store.keys.usage_rollup(minute)))
    assert Rollup.decode(raw["all|"]) == Rollup(2, 7, 3, 250, 1)
    assert Rollup.decode(raw["key|k1"]) == Rollup(2, 7, 3, 250, 1)


@local_stores
async def test_without_budgets_or_usage_nothing_is_written(store: Store) -> None:
    await pool_with(store)
    reply = await reserve_one(store, "r1", 10)
    assert isinstance(reply, reserve.Reserved) and reply.alerts == ()
    await settle_one(store, "r1", 5)
    n = store.keys
    for name in (n.budget_spend, n.usage_stream, n.usage_rollup(int(T0 // 60))):
        assert await store.call(store.client.exists(name)) == 0
