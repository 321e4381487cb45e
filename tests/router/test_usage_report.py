"""Usage summaries from the per-minute rollups and paged records from the stream (real stores)."""

from __future__ import annotations

import datetime as dt

import pytest

from kernel.errors import ClientRequestError
from kernel.store import Store
from lua.usage_records import OTHER
from router.usage_export import export, records
from router.usage_report import parse_time, summary, time_window
from tests.helpers import all_stores, both_pool_shards
from tests.router.usage_data import add_call, add_record, id_order, record

#: Records and rollups spread over the slots of a sharded pool too (tests/router/usage_data.py).
pytestmark = both_pool_shards

NOW = 1_800_000_000.0  # 2027-01-15T08:00:00Z
M = int(NOW // 60)


@all_stores
async def test_summaries_group_and_total_across_minutes(store: Store) -> None:
    await add_call(store, M - 30, {"model": "gpt-4o", "user": "alice"}, 100, 10, 0.5)
    await add_call(store, M - 30, {"model": "gpt-4o-mini", "user": "bob"}, 20, 5, 0.01)
    await add_call(store, M - 2, {"model": "gpt-4o", "user": "alice"}, 300, 30, 1.5, error=True)
    await add_call(store, M, {"model": "gpt-4o-mini"}, 40, 4, 0.02)  # no user
    await add_call(store, M - 90, {"model": "gpt-4o", "user": "alice"}, 1, 1, 9.0)  # outside

    report = await summary(store, store.keys, NOW - 3600, NOW, by="model")
    rows = {r.name: r for r in report.rows}
    assert set(rows) == {"gpt-4o", "gpt-4o-mini"}
    assert (rows["gpt-4o"].requests, rows["gpt-4o"].tokens_in, rows["gpt-4o"].tokens_out) == (
        2,
        400,
        40,
    )
    assert rows["gpt-4o"].cost_usd == 2.0 and rows["gpt-4o"].errors == 1
    assert rows["gpt-4o-mini"].requests == 2 and rows["gpt-4o-mini"].cost_usd == 0.03
    assert [r.name for r in report.rows] == ["gpt-4o", "gpt-4o-mini"]  # by cost
    total = report.total
    assert (total.requests, total.tokens_in, total.tokens_out, total.errors) == (4, 460, 49, 1)
    assert total.cost_usd == 2.03

    by_user = await summary(store, store.keys, NOW - 3600, NOW, by="user")
    users = {r.name: r for r in by_user.rows}
    assert users["alice"].requests == 2 and users["bob"].requests == 1
    assert users[None].requests == 1 and users[None].tokens_in == 40  # the call with no user
    assert sum(r.requests for r in by_user.rows) == by_user.total.requests


async def test_names_past_the_cap_show_as_other(store: Store) -> None:
    await add_call(store, M, {"user": "alice"}, 10, 1, 0.1)
    await add_call(store, M, {"user": OTHER}, 10, 1, 0.1)
    await add_call(store, M, {"user": OTHER}, 10, 1, 0.1)
    report = await summary(store, store.keys, NOW - 60, NOW, by="user")
    assert {r.name: r.requests for r in report.rows} == {OTHER: 2, "alice": 1}
    assert report.total.requests == 3


async def test_an_empty_range_is_zero_rows_and_a_zero_total(store: Store) -> None:
    await add_call(store, M - 100, {"model": "gpt-4o"}, 1, 1, 1.0)
    report = await summary(store, store.keys, NOW - 3600, NOW, by="model")
    assert report.rows == [] and report.total.requests == 0 and report.total.cost_usd == 0
    totals = await summary(store, store.keys, NOW - 7200, NOW, by="total")
    assert totals.rows == [] and totals.total.requests == 1


async def test_a_week_of_minutes_is_read(store: Store) -> None:
    await add_call(store, M - 6 * 1440, {"team": "research"}, 5, 5, 0.25)
    await add_call(store, M, {"team": "research"}, 5, 5, 0.25)
    report = await summary(store, store.keys, NOW - 7 * 86400, NOW, by="team")
    assert [(r.name, r.requests, r.cost_usd) for r in report.rows] == [("research", 2, 0.5)]


async def test_bad_parameters_name_themselves(store: Store) -> None:
    with pytest.raises(ClientRequestError) as caught:
        await summary(store, store.keys, NOW - 60, NOW, by="colour")
    assert caught.value.param == "by"
    with pytest.raises(ClientRequestError) as caught:
        await summary(store, store.keys, NOW - 90 * 86400, NOW)
    assert caught.value.param == "since"


def test_times_parse_from_durations_iso_and_unix() -> None:
    assert parse_time("1h", NOW) == NOW - 3600
    assert parse_time("30m", NOW) == NOW - 1800
    assert parse_time("7d", NOW) == NOW - 7 * 86400
    assert (
        parse_time("2026-12-03T10:00:00Z", NOW)
        == dt.datetime(2026, 12, 3, 10, tzinfo=dt.UTC).timestamp()
    )
    assert parse_time("2026-12-03T10:00:00", NOW) == parse_time("2026-12-03T11:00:00+01:00", NOW)
    assert parse_time("1700000000", NOW) == 1_700_000_000
    assert time_window(None, None, NOW) == (NOW - 3600, NOW)
    assert time_window(None, None, NOW, default_since=None) == (0.0, NOW)
    for bad in ("yesterday", "1x", "-5", "nan", "1e300", ""):
        with pytest.raises(ClientRequestError) as caught:
            parse_time(bad, NOW, "since")
        assert caught.value.param == "since" and "since" in str(caught.value)
    with pytest.raises(ClientRequestError) as caught:
        time_window("1h", "2h", NOW)
    assert caught.value.param == "since"


# -- records -------------------------------------------------------------------------------------
async def seed(store: Store, n: int, start_ms: int) -> list[str]:
    """n records, one millisecond apart from ``start_ms`` (ids given explicitly)."""
    ids = []
    for i in range(n):
        ms = start_ms + i
        user = "alice" if i % 3 == 0 else "bob"
        rec = record(ms / 1000, i, user=user, success=i % 4 != 0)
        ids.append(await add_record(store, rec, f"{ms}-0"))
    return ids


@all_stores
async def test_records_page_in_order_and_end_with_no_cursor(store: Store) -> None:
    start = int((NOW - 600) * 1000)
    ids = await seed(store, 25, start)
    seen, cursor, pages = [], None, 0
    while True:
        page = await records(store, store.keys, NOW - 3600, NOW, cursor=cursor, limit=10)
        seen += [r["id"] for r in page.records]
        pages += 1
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == ids and pages == 3
    first = (await records(store, store.keys, NOW - 3600, NOW, limit=1)).records[0]
    assert first["request_id"] == "req-0" and first["user"] == "alice"


async def test_records_written_while_paging_come_once_in_order(store: Store) -> None:
    server_now = await store.server_time()
    ids = await seed(store, 12, int((server_now - 60) * 1000))
    seen, cursor, added = [], None, []
    for _ in range(20):
        page = await records(store, store.keys, server_now - 120, 4e9, cursor=cursor, limit=5)
        seen += [r["id"] for r in page.records]
        if len(added) < 6:  # two new calls land between pages
            for n in range(2):
                added.append(await add_record(store, record(server_now, 100 + len(added) + n)))
        cursor = page.next_cursor
        if cursor is None:
            break
    # several streams (a sharded pool): records of one millisecond come in their slots' order
    assert seen == sorted(ids + added, key=id_order) and len(set(seen)) == len(seen)


async def test_a_window_ending_now_leaves_later_records_out(store: Store) -> None:
    server_now = await store.server_time()
    ids = await seed(store, 4, int((server_now - 10) * 1000))
    until = await store.server_time()
    page = await records(store, store.keys, server_now - 60, until, limit=2)
    await add_record(store, record(until + 1, 99))  # after the window
    rest = await records(store, store.keys, server_now - 60, until, page.next_cursor, limit=10)
    assert [r["id"] for r in page.records + rest.records] == ids and rest.next_cursor is None


async def test_filters_select_records_and_pages_resume(store: Store) -> None:
    ids = await seed(store, 30, int((NOW - 600) * 1000))
    alice = [ids[i] for i in range(30) if i % 3 == 0]
    seen, cursor = [], None
    for _ in range(10):
        page = await records(store, store.keys, 0, NOW, cursor, 4, {"user": "alice"})
        assert all(r["user"] == "alice" for r in page.records)
        seen += [r["id"] for r in page.records]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == alice
    failed = await records(store, store.keys, 0, NOW, None, 100, {"success": "false"})
    assert [r["id"] for r in failed.records] == [ids[i] for i in range(30) if i % 4 == 0]
    none = await records(store, store.keys, 0, NOW, None, 100, {"model": "claude"})
    assert none.records == [] and none.next_cursor is None
    with pytest.raises(ClientRequestError) as caught:
        await records(store, store.keys, 0, NOW, None, 10, {"success": "maybe"})
    assert caught.value.param == "success"
    with pytest.raises(ClientRequestError) as caught:
        await records(store, store.keys, 0, NOW, "not-an-id", 10)
    assert caught.value.param == "cursor"


async def test_export_streams_every_record_once_while_more_arrive(store: Store) -> None:
    server_now = await store.server_time()
    ids = await seed(store, 23, int((server_now - 60) * 1000))
    lines, added = [], []
    async for line in export(store, store.keys, server_now - 120, 4e9, page_size=5):
        lines.append(line)
        if len(lines) % 5 == 0 and len(added) < 4:
            added.append(await add_record(store, record(server_now, 200 + len(added))))
    request_ids = [line.split('"request_id":"')[1].split('"')[0] for line in lines]
    # every record exactly once, the seeded ones in their order; the four added during the export
    # share one millisecond, and with shards records of one millisecond from different shards'
    # streams come in slot order, not arrival order (router/usage_export.read_merged)
    assert request_ids[:23] == [f"req-{i}" for i in range(23)]
    assert sorted(request_ids[23:]) == [f"req-{200 + i}" for i in range(4)]
    assert len(ids) == 23


async def test_export_filters(store: Store) -> None:
    await seed(store, 9, int((NOW - 600) * 1000))
    lines = [line async for line in export(store, store.keys, 0, NOW, {"user": "bob"}, 2)]
    assert len(lines) == 6 and all('"user":"bob"' in line for line in lines)


async def test_the_usage_log_is_read_from_the_shared_store_only() -> None:
    """Degraded (Redis unreachable): the local store holds a fraction of the calls, so reading
    the log is refused rather than answered wrong."""
    from kernel.errors import StoreError
    from kernel.settings import Settings
    from kernel.store import create_store
    from tests.servers import free_port

    settings = Settings.from_env(
        {}, REDIS_URL=f"redis://127.0.0.1:{free_port()}/0", REDIS_TIMEOUT_SECONDS=0.5
    )
    degraded = create_store(settings)
    try:
        await degraded.check()
        assert degraded.degraded
        with pytest.raises(StoreError, match="cannot read the usage rollups"):
            await summary(degraded, degraded.keys, NOW - 60, NOW)
        with pytest.raises(StoreError, match="cannot read the usage log"):
            await records(degraded, degraded.keys, NOW - 60, NOW)
    finally:
        await degraded.close()
