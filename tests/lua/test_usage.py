"""lib_usage.lua's usage log and calendar, through record_usage.lua's binding and the library
itself, on real Redis, the real Redis Cluster and the embedded store: periods exactly as
lua.usage_records.period_of computes them, the stream bounded exactly by length and by age, the
rollups equal to what was written (names past the cap under ``~other``) and expiring."""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import random
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lua
from kernel.settings import Settings
from kernel.store import Store, create_store
from lua import record_usage
from lua.records import encode_text
from lua.usage_records import OTHER, Rollup, UsageArgs, period_of, rollup_field
from tests.helpers import all_stores
from tests.keys.test_engine_properties import backend

PERIODS = lua.inline(
    "periods",
    """-- include: lib_pool
-- include: lib_usage
local out = {}
for i = 1, #ARGV, 3 do
  local id, nxt = period_of(tonumber(ARGV[i]), tonumber(ARGV[i + 1]), ARGV[i + 2])
  out[#out + 1] = id
  out[#out + 1] = string.format('%.17g', nxt)
end
return out
""",
)

Case = tuple[float, int, str]


async def lua_periods(store: Store, cases: list[Case]) -> list[tuple[str, float]]:
    args = [v for now, offset, period in cases for v in (repr(now), str(offset), period)]
    flat = await store.run(PERIODS, [store.keys.pool_config], args)
    return [(flat[i], float(flat[i + 1])) for i in range(0, len(flat), 2)]


def boundary_cases() -> list[Case]:
    """Instants around every month's first midnight (and so every year end) of ordinary, leap and
    century years, on calendars east and west of UTC, a microsecond either side and on it."""
    cases: list[Case] = []
    for year in (1970, 1999, 2000, 2023, 2024, 2027, 2100, 2400):
        for month in range(1, 13):
            for offset in (0, 3600, -28800, 19800, 50400, -43200):
                start = dt.datetime(year, month, 1, tzinfo=dt.UTC).timestamp() - offset
                before = math.nextafter(start, -math.inf)  # the last instant of the month
                for now in (start - 86400, start - 1, before, start, start + 1e-6, start + 43200):
                    cases.extend((now, offset, period) for period in ("day", "month"))
    return [c for c in cases if c[0] + c[1] >= 0]


@all_stores
async def test_periods_at_month_and_year_ends_are_pythons(store: Store) -> None:
    cases = boundary_cases()
    assert await lua_periods(store, cases) == [period_of(*case) for case in cases]
    # spot checks of the mirror itself: a leap day, and the month after December
    feb29 = dt.datetime(2024, 2, 29, 12, tzinfo=dt.UTC).timestamp()
    march = dt.datetime(2024, 3, 1, tzinfo=dt.UTC).timestamp()
    assert period_of(feb29, 0, "month") == (f"m{2024 * 12 + 1}", march)
    new_year = dt.datetime(2027, 1, 1, tzinfo=dt.UTC).timestamp()
    assert period_of(new_year - 1, 0, "month") == (f"m{2026 * 12 + 11}", new_year)


cases = st.lists(
    st.tuples(
        st.floats(0, 7e9, allow_nan=False),  # 1970 .. 2191
        st.integers(-14 * 3600, 14 * 3600),
        st.sampled_from(["day", "month"]),
    ),
    min_size=1,
    max_size=300,
)


async def periods_on(url: str | None, cluster: bool, batch: list[Case]) -> list[tuple[str, float]]:
    values: dict[str, object] = {"REDIS_KEY_PREFIX": f"p{uuid.uuid4().hex[:10]}"}
    if url:
        values.update(REDIS_URL=url, REDIS_CLUSTER=cluster)
    store = create_store(Settings.from_env({}, **values))
    try:
        return await lua_periods(store, batch)
    finally:
        await store.close()


@pytest.mark.parametrize("kind", ["redis", "cluster", "embedded"])
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(batch=cases)
def test_periods_at_random_times_are_pythons(
    kind: str, request: pytest.FixtureRequest, batch: list[Case]
) -> None:
    url, cluster = backend(kind, request)
    batch = [(now, offset, period) for now, offset, period in batch if now + offset >= 0]
    assert asyncio.run(periods_on(url, cluster, batch)) == [period_of(*case) for case in batch]


# -- the stream and the rollups --------------------------------------------------------------------
def usage(record: str, **fields: object) -> UsageArgs:
    values: dict[str, object] = {
        "max_records": 1000,
        "max_age_seconds": 3600,
        "rollup_ttl": 600,
        "rollup_cap": 1000,
        "names": {},
    }
    values.update(fields)
    return UsageArgs(record, **values)  # type: ignore[arg-type]


def keys_of(store: Store, minute: int = 1) -> record_usage.RecordUsageKeys:
    return record_usage.RecordUsageKeys(store.keys.usage_stream, store.keys.usage_rollup(minute))


async def records(store: Store) -> list[str]:
    entries = await store.call(store.client.xrange(store.keys.usage_stream))
    return [fields["r"] for _, fields in entries]


async def rollups(store: Store, minute: int = 1) -> dict[str, Rollup | int]:
    raw = await store.call(store.client.hgetall(store.keys.usage_rollup(minute)))
    return {f: int(v) if f.startswith("#") else Rollup.decode(v) for f, v in raw.items()}


@all_stores
async def test_an_empty_record_writes_nothing(store: Store) -> None:
    await record_usage.run(store, keys_of(store), usage("", names={"model": "m"}, tokens_in=5))
    assert await store.call(store.client.exists(store.keys.usage_stream)) == 0
    assert await store.call(store.client.exists(store.keys.usage_rollup(1))) == 0


@all_stores
async def test_the_stream_never_holds_more_than_its_maximum(store: Store) -> None:
    for i in range(12):
        await record_usage.run(store, keys_of(store), usage(f"rec{i}", max_records=5))
        assert await store.call(store.client.xlen(store.keys.usage_stream)) == min(i + 1, 5)
    assert await records(store) == [f"rec{i}" for i in range(7, 12)]


@all_stores
async def test_records_older_than_the_retention_are_trimmed(store: Store) -> None:
    stream = store.keys.usage_stream
    ms = int(await store.server_time() * 1000)
    await store.call(store.client.xadd(stream, {"r": "ancient"}, id="1000-0"))
    await store.call(store.client.xadd(stream, {"r": "past"}, id=f"{ms - 61_000}-0"))
    await store.call(store.client.xadd(stream, {"r": "recent"}, id=f"{ms - 30_000}-0"))
    await record_usage.run(store, keys_of(store), usage("new", max_age_seconds=60))
    assert await records(store) == ["recent", "new"]


@all_stores
async def test_rollups_are_the_sum_of_the_records_and_expire(store: Store) -> None:
    rng = random.Random(15)
    cap = 3
    # names with the records' separators: encoded, they stay one field each
    pool = {
        "key": ["k1", "k2"],
        "model": ["gpt-4o", "a|b", "c,d=e", "f;g", "h%i", "j"],
        "user": ["alice", "bob", "carol", "dave", "eve"],
        "team": ["t1"],
    }
    expected: dict[str, Rollup] = {}
    first_seen: dict[str, list[str]] = {dim: [] for dim in pool}
    for i in range(60):
        names = {dim: rng.choice(values) for dim, values in pool.items() if rng.random() < 0.8}
        one = Rollup(1, rng.randrange(500), rng.randrange(200), rng.randrange(10**6), i % 7 == 0)
        args = usage(f"r{i}", rollup_cap=cap, names=names, tokens_in=one.tokens_in)
        args.tokens_out, args.cost_nanos, args.error = one.tokens_out, one.cost_nanos, i % 7 == 0
        await record_usage.run(store, keys_of(store), args)
        fields = [rollup_field("all", "")]
        for dim, name in names.items():
            seen = first_seen[dim]
            if name not in seen and len(seen) < cap:
                seen.append(name)
            fields.append(rollup_field(dim, name if name in seen else OTHER))
        for f in fields:
            expected[f] = expected.get(f, Rollup()) + one
    counts = {f"#{dim}": len(seen) for dim, seen in first_seen.items() if seen}
    assert await rollups(store) == {**expected, **counts}
    assert rollup_field("model", "a|b") == "model|" + encode_text("a|b") != "model|a|b"
    ttl = await store.call(store.client.ttl(store.keys.usage_rollup(1)))
    assert 0 < ttl <= 600


@all_stores
async def test_record_usage_writes_one_record_and_its_rollups(store: Store) -> None:
    args = usage(
        '{"request_id": "x"}',
        names={"model": "gpt-4o", "user": "", "all": "ignored"},
        tokens_in=10,
        tokens_out=3,
        cost_nanos=4500,
        error=True,
    )
    await record_usage.run(store, keys_of(store, 7), args)
    assert await records(store) == ['{"request_id": "x"}']
    assert await rollups(store, 7) == {
        "all|": Rollup(1, 10, 3, 4500, 1),
        "model|gpt-4o": Rollup(1, 10, 3, 4500, 1),
        "#model": 1,
    }
