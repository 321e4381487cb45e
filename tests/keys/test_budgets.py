"""The budget book: budgets written and read in real Redis, periods rolled by an injected clock."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from kernel.errors import ConfigError, StoreError
from kernel.settings import Settings
from kernel.store import Store, create_store
from keys.budgets import BudgetBook, utc_offset
from lua.usage_records import (
    BudgetRecord,
    SpendRecord,
    budget_field,
    period_of,
    usd_to_nanos,
)
from tests.helpers import local_stores
from tests.servers import free_port

NEW_YORK = "America/New_York"


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def local(tz: str, *args: int) -> float:
    """Unix time of a wall-clock time in zone ``tz``."""
    return dt.datetime(*args, tzinfo=ZoneInfo(tz)).timestamp()  # type: ignore[misc]


async def write_spend(store: Store, field: str, spend: SpendRecord) -> None:
    await store.client.hset(store.keys.budget_spend, field, spend.encode())


@local_stores
async def test_list_shows_each_budget_against_its_current_period(store: Store) -> None:
    now = local(NEW_YORK, 2026, 12, 3, 23, 30)
    book = BudgetBook(store, store.keys, clock=Clock(now))
    alice = budget_field("user", "alice")
    await book.set(alice, BudgetRecord(usd_to_nanos(5), "day", NEW_YORK, 0.5))
    await book.set("global", BudgetRecord(usd_to_nanos(100), "month", "UTC", 0.8))
    period, _ = period_of(now, utc_offset(NEW_YORK, now), "day")
    spend = SpendRecord(period, reserved=usd_to_nanos(0.25), spent=usd_to_nanos(1.5), requests=7)
    await write_spend(store, alice, spend)

    listed = await book.list()
    assert [(s.scope, s.id) for s in listed] == [("global", ""), ("user", "alice")]
    status = listed[1]
    assert status.limit_usd == 5 and status.period == "day" and status.timezone == NEW_YORK
    assert status.alert_share == 0.5 and status.requests == 7
    assert status.spent_usd == 1.5 and status.reserved_usd == 0.25
    assert status.remaining_usd == 3.25
    assert status.period_id == period
    assert status.resets_at == local(NEW_YORK, 2026, 12, 4, 0, 0)
    assert listed[0].spent_usd == 0 and listed[0].remaining_usd == 100
    assert listed[0].resets_at == local("UTC", 2027, 1, 1, 0, 0)


async def test_a_new_period_starts_at_the_budgets_midnight(store: Store) -> None:
    clock = Clock(local(NEW_YORK, 2026, 12, 3, 23, 59))
    book = BudgetBook(store, store.keys, clock=clock)
    team = budget_field("team", "research|ml")  # a separator in an id is encoded
    await book.set(team, BudgetRecord(usd_to_nanos(2), "day", NEW_YORK))
    before = (await book.list())[0]
    await write_spend(store, team, SpendRecord(before.period_id, 0, usd_to_nanos(2), False, 3))
    assert (await book.list())[0].remaining_usd == 0

    clock.now = local(NEW_YORK, 2026, 12, 4, 0, 1)  # 05:01 UTC: a new day in New York
    after = (await book.list())[0]
    assert after.id == "research|ml" and after.period_id != before.period_id
    assert after.spent_usd == 0 and after.requests == 0 and after.remaining_usd == 2
    assert after.resets_at == local(NEW_YORK, 2026, 12, 5, 0, 0)


async def test_a_month_resets_on_the_first_in_its_zone(store: Store) -> None:
    clock = Clock(local("Asia/Tokyo", 2026, 12, 31, 23, 0))
    book = BudgetBook(store, store.keys, clock=clock)
    await book.set(
        budget_field("vkey", "vk-1"), BudgetRecord(usd_to_nanos(10), "month", "Asia/Tokyo")
    )
    status = await book.get(budget_field("vkey", "vk-1"))
    assert status is not None and status.resets_at == local("Asia/Tokyo", 2027, 1, 1, 0, 0)
    clock.now = status.resets_at
    rolled = await book.get(budget_field("vkey", "vk-1"))
    assert rolled is not None and rolled.period_id != status.period_id
    assert rolled.resets_at == local("Asia/Tokyo", 2027, 2, 1, 0, 0)


async def test_the_store_clock_is_used_without_an_injected_one(store: Store) -> None:
    book = BudgetBook(store, store.keys)
    await book.set("global", BudgetRecord(usd_to_nanos(1), "day"))
    status = (await book.list())[0]
    now = await store.server_time()
    assert status.period_id == period_of(now, 0, "day")[0]
    assert 0 < status.resets_at - now <= 86400


async def test_sync_writes_budgets_and_never_touches_spend(store: Store) -> None:
    book = BudgetBook(store, store.keys, clock=Clock(local("UTC", 2026, 12, 3, 12, 0)))
    bob = budget_field("user", "bob")
    await book.set(bob, BudgetRecord(usd_to_nanos(1), "day"))
    spend = SpendRecord("d20790", usd_to_nanos(0.1), usd_to_nanos(0.4), True, 4).encode()
    await store.client.hset(store.keys.budget_spend, bob, spend)

    written = await book.sync(
        [(bob, BudgetRecord(usd_to_nanos(3), "day")), ("global", BudgetRecord(usd_to_nanos(50)))]
    )
    assert written == 2
    assert await store.client.hget(store.keys.budget_spend, bob) == spend
    assert await store.client.hlen(store.keys.budget_spend) == 1
    by_id = {s.id: s for s in await book.list()}
    assert by_id["bob"].limit_usd == 3 and by_id["bob"].spent_usd == 0.4
    assert by_id[""].limit_usd == 50 and by_id[""].period == "month"
    assert await book.sync([]) == 0


async def test_delete_removes_the_budget_and_keeps_its_spend(store: Store) -> None:
    book = BudgetBook(store, store.keys, clock=Clock(1.8e9))
    carol = budget_field("user", "carol")
    await book.set(carol, BudgetRecord(usd_to_nanos(1)))
    await write_spend(store, carol, SpendRecord("m0", 0, 5, False, 1))
    assert await book.delete(carol) is True
    assert await book.list() == [] and await book.get(carol) is None
    assert await book.delete(carol) is False
    assert await store.client.hget(store.keys.budget_spend, carol) is not None


async def test_bad_budgets_are_refused_naming_the_field(store: Store) -> None:
    book = BudgetBook(store, store.keys)
    with pytest.raises(ConfigError, match="timezone"):
        await book.set("global", BudgetRecord(1, "day", "Mars/Olympus"))
    with pytest.raises(ConfigError, match="alert_at"):
        await book.set("global", BudgetRecord(1, "day", "UTC", 1.5))
    with pytest.raises(ConfigError, match="limit_usd"):
        await book.set("global", BudgetRecord(-1, "day"))
    with pytest.raises(ConfigError, match="scope"):
        await book.set("org:acme", BudgetRecord(1))
    with pytest.raises(ConfigError, match="scope"):
        await book.sync([("global:x", BudgetRecord(1))])
    assert await store.client.hlen(store.keys.budgets) == 0


async def test_an_unreadable_record_is_skipped(store: Store) -> None:
    book = BudgetBook(store, store.keys, clock=Clock(1.8e9))
    await book.set("global", BudgetRecord(usd_to_nanos(1)))
    await store.client.hset(store.keys.budgets, "user:x", "not a record")
    assert [s.scope for s in await book.list()] == ["global"]


async def test_set_and_delete_need_the_shared_store() -> None:
    settings = Settings.from_env(
        {}, REDIS_URL=f"redis://127.0.0.1:{free_port()}/0", REDIS_TIMEOUT_SECONDS=0.5
    )
    store = create_store(settings)
    try:
        await store.check()  # unreachable: degraded mode (STORE_FAILURE_MODE=open)
        assert store.degraded
        book = BudgetBook(store, store.keys)
        with pytest.raises(StoreError, match="cannot set a budget"):
            await book.set("global", BudgetRecord(usd_to_nanos(1)))
        with pytest.raises(StoreError, match="cannot delete a budget"):
            await book.delete("global")
    finally:
        await store.close()
