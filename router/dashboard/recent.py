"""The usage log read newest first, and one minute's rollups at a time, for the dashboard.

router/usage_export.py pages the stream oldest first (exports, the admin API); the dashboard
shows the latest calls, so it reads backwards (XREVRANGE) a bounded number of records: at most
``scan`` records are read, whatever the filters, so a poll costs the store the same whether the
log holds a hundred records or a million.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kernel.store import Store
from lua.usage_records import Rollup, rollup_field
from router.usage_export import _decode, matches, read_merged

#: Records read per round trip.
PAGE = 500
#: The rollup field counting every call of a minute.
TOTAL = rollup_field("all", "")
#: Fields a listing never shows (the detail view shows them when the operator stored them).
CONTENT_FIELDS = ("prompt", "completion")


def outcome_of(record: Mapping[str, Any]) -> str:
    """``success`` or the record's error type."""
    if record.get("success", True):
        return "success"
    return str(record.get("error_type") or "error")


def _wanted(record: Mapping[str, Any], filters: Mapping[str, Any], outcome: str | None) -> bool:
    return matches(record, filters) and (not outcome or outcome_of(record) == outcome)


async def newest(
    store: Store,
    *,
    since: float | None = None,
    limit: int = 100,
    scan: int = 5000,
    filters: Mapping[str, Any] | None = None,
    outcome: str | None = None,
) -> list[dict[str, Any]]:
    """Up to ``limit`` records, newest first, written after ``since`` (unix seconds) and matching
    ``filters`` (usage_export.matches) and ``outcome``; at most ``scan`` records are read."""
    store.require_shared("read the usage log")
    low = f"{int(since * 1000)}-0" if since is not None else "-"
    high, out, read = "+", list[dict[str, Any]](), 0
    while len(out) < limit and read < scan:
        count = min(PAGE, scan - read)
        entries = await read_merged(store, store.keys, low, high, count, newest=True)
        read += len(entries)
        for stream_id, fields in entries:
            record = _decode(stream_id, fields)
            if record is not None and _wanted(record, filters or {}, outcome):
                out.append({"id": stream_id, **record})
                if len(out) >= limit:
                    break
        if len(entries) < count:
            break
        high = "(" + entries[-1][0]
    return out


async def find_request(store: Store, request_id: str, scan: int = 20000) -> dict[str, Any] | None:
    """The newest record of ``request_id`` among the last ``scan`` records, or None."""
    found = await newest(store, limit=1, scan=scan, filters={"request_id": request_id})
    return found[0] if found else None


async def minutes(store: Store, first: int, last: int) -> list[tuple[int, Rollup]]:
    """(minute, total rollup) of every minute from ``first`` to ``last`` (one round trip)."""
    store.require_shared("read the usage rollups")
    span = last - first + 1
    views = store.keys.usage_views()  # one, or the pool's and each shard's (summed)
    names = [v.usage_rollup(m) for v in views for m in range(first, last + 1)]

    def read(client: Any) -> Any:
        pipe = client.pipeline(transaction=False)
        for name in names:
            pipe.hget(name, TOTAL)
        return pipe.execute()

    replies = await store.call(read, shared_only=True)
    totals = [Rollup() for _ in range(span)]
    for i, raw in enumerate(replies):
        totals[i % span] = totals[i % span] + Rollup.decode(raw)
    return [(first + i, total) for i, total in enumerate(totals)]
