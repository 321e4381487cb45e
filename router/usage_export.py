"""The usage log's raw records, paged over the stream (kernel/redis_keys.py's ``usage_stream``).

    page = await records(store, store.keys, since, until, cursor=None, limit=100)
    page.records, page.next_cursor             # pass next_cursor back for the next page
    async for line in export(store, store.keys, since, until): ...   # every record's JSON

Pages are read by stream id (XRANGE): an id is the time the record was written, so a window
[since, until) is an id range (to the millisecond), and a cursor (the last id a page read) resumes exactly after it. A record written
while pages are read has a newer id than every record before it: paging returns each record
exactly once, in the order they were written. ``next_cursor`` is None once the window is read.
Filters (model, user, vkey, team, key_id, success) apply to each record; a filtered page reads
at most ``SCAN_PAGES`` times its limit of records, so it may hold fewer than ``limit`` records
and still have a ``next_cursor``. A record's ``id`` is its stream id.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from kernel import jsonio
from kernel.errors import ClientRequestError
from kernel.log import get_logger
from kernel.redis_keys import RedisKeys
from kernel.store import Store

log = get_logger("router.usage")
#: Filters a caller may give, by the record field they compare.
FILTERS = ("model", "user", "vkey", "team", "key_id", "success")
MAX_LIMIT = 1000
#: A filtered page reads at most this many times ``limit`` records.
SCAN_PAGES = 10
EXPORT_PAGE = 1000
#: A record's id: its stream id, and with a sharded pool (POOL_SHARDS > 1) ``.<n>``, the
#: slot it was written in (kernel.redis_keys.usage_views), so ids are unique across streams.
_STREAM_ID = re.compile(r"^\d{1,20}-\d{1,20}(\.\d{1,4})?$")
_BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


@dataclass
class RecordPage:
    records: list[dict[str, Any]] = field(default_factory=list)
    next_cursor: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"records": self.records, "next_cursor": self.next_cursor}


def parse_filters(given: Mapping[str, Any]) -> dict[str, Any]:
    """The filters among ``given`` (other names are ignored), ``success`` as a bool."""
    out: dict[str, Any] = {}
    for name in FILTERS:
        value = given.get(name)
        if value is None or value == "":
            continue
        if name == "success" and not isinstance(value, bool):
            flag = _BOOLEANS.get(str(value).lower())
            if flag is None:
                raise ClientRequestError(f"success {value!r}: expected true or false", "success")
            value = flag
        out[name] = value
    return out


def parse_limit(text: str | None, default: int = 100) -> int:
    if text is None or text == "":
        return default
    try:
        limit = int(text)
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_LIMIT:
        raise ClientRequestError(f"limit {text!r}: expected 1 to {MAX_LIMIT}", "limit")
    return limit


def check_cursor(cursor: str | None) -> str | None:
    if cursor and (not _STREAM_ID.match(cursor) or max(_id_key(cursor)) >= 2**64):
        raise ClientRequestError(f"cursor {cursor!r}: expected a record id (ms-seq)", "cursor")
    return cursor or None


def matches(record: Mapping[str, Any], filters: Mapping[str, Any]) -> bool:
    for name, wanted in filters.items():
        if name == "model":
            if wanted not in (record.get("model"), record.get("requested_model")):
                return False
        elif record.get(name) != wanted:
            return False
    return True


def _bounds(since: float, until: float, cursor: str | None) -> tuple[str, str]:
    """XRANGE's start and end (inclusive: the last millisecond before ``until``) for a window,
    resuming after ``cursor``."""
    start, end = f"{int(since * 1000)}-0", str(max(0, int(until * 1000) - 1))
    if cursor is not None and _id_key(cursor) >= _id_key(start):
        start = "(" + cursor
    return start, end


def _id_key(stream_id: str) -> tuple[int, int]:
    ms, _, seq = stream_id.partition(".")[0].partition("-")
    return int(ms), int(seq or 0)


async def _read(store: Store, names: RedisKeys, start: str, end: str, count: int) -> list[Any]:
    return await read_merged(store, names, start, end, count)


def _merged_order(entry: Any) -> tuple[int, int, int]:
    stream_id, _, view = str(entry[0]).partition(".")
    return (*_id_key(stream_id), int(view or 0))


def _view_bound(bound: str, view: int, *, newest: bool) -> str:
    """One stream's bound of a merged read: a bound past a record ``(<id>.<n>`` excludes that
    id in the streams ordered at or before ``n`` (after it when reading newest first) and
    includes it in the others, where the same id is a different, later record."""
    if not bound.startswith("(") or "." not in bound:
        return bound
    stream_id, _, mark = bound[1:].partition(".")
    passed = view >= int(mark) if newest else view <= int(mark)
    return ("(" if passed else "") + stream_id


async def read_merged(
    store: Store, names: RedisKeys, low: str, high: str, count: int, *, newest: bool = False
) -> list[Any]:
    """Up to ``count`` records between stream ids ``low`` and ``high`` (oldest first, or newest
    first), over every stream usage records are written to (kernel.redis_keys.usage_views: one,
    or the pool's and one per shard, merged by id; each record's id then says its stream). Across
    streams the order is by time to the millisecond: records of one millisecond written to
    different shards come in stream order, not necessarily in the order they were written."""
    store.require_shared("read the usage log")
    client = store.shared_client
    views = names.usage_views()
    merged: list[Any] = []
    for v, view in enumerate(views):
        lo, hi = _view_bound(low, v, newest=False), _view_bound(high, v, newest=True)
        if newest:
            command = client.xrevrange(view.usage_stream, hi, lo, count=count)
        else:
            command = client.xrange(view.usage_stream, lo, hi, count=count)
        entries = await store.call(command, shared_only=True) or []
        if len(views) == 1:
            return list(entries)
        merged.extend((f"{stream_id}.{v}", fields) for stream_id, fields in entries)
    merged.sort(key=_merged_order, reverse=newest)
    return merged[:count]


def _decode(stream_id: str, fields: Mapping[str, str]) -> dict[str, Any] | None:
    raw = fields.get("r")
    try:
        record = jsonio.loads(raw) if raw else None
    except ValueError:
        record = None
    if not isinstance(record, dict):
        log.warning("unreadable usage record skipped", id=stream_id)
        return None
    return record


async def records(
    store: Store,
    names: RedisKeys,
    since: float,
    until: float,
    cursor: str | None = None,
    limit: int = 100,
    filters: Mapping[str, Any] | None = None,
) -> RecordPage:
    """One page of the window's records (oldest first) matching ``filters``."""
    wanted = parse_filters(filters or {})
    start, end = _bounds(since, until, check_cursor(cursor))
    page, scanned = RecordPage(), 0
    while len(page.records) < limit and scanned < limit * SCAN_PAGES:
        count = limit - len(page.records) if not wanted else limit
        entries = await _read(store, names, start, end, count)
        scanned += len(entries)
        consumed = _take(entries, page, wanted, limit)
        if consumed == len(entries) and len(entries) < count:
            page.next_cursor = None  # the window is read
            break
        start = "(" + str(page.next_cursor)
    return page


def _take(entries: list[Any], page: RecordPage, wanted: Mapping[str, Any], limit: int) -> int:
    """Add the entries that match to ``page`` until it holds ``limit``; answers how many
    entries were consumed (``page.next_cursor``: the last one)."""
    for consumed, (stream_id, fields) in enumerate(entries, 1):
        page.next_cursor = stream_id
        record = _decode(stream_id, fields)
        if record is not None and matches(record, wanted):
            page.records.append({"id": stream_id, **record})
            if len(page.records) >= limit:
                return consumed
    return len(entries)


async def export(
    store: Store,
    names: RedisKeys,
    since: float,
    until: float,
    filters: Mapping[str, Any] | None = None,
    page_size: int = EXPORT_PAGE,
) -> AsyncIterator[str]:
    """Every record of the window as stored (one JSON text each), oldest first, read a page at
    a time (memory stays constant whatever the window holds)."""
    wanted = parse_filters(filters or {})
    start, end = _bounds(since, until, None)
    while True:
        entries = await _read(store, names, start, end, page_size)
        for stream_id, fields in entries:
            if not wanted:
                if fields.get("r"):
                    yield fields["r"]
                continue
            record = _decode(stream_id, fields)
            if record is not None and matches(record, wanted):
                yield fields["r"]
        if len(entries) < page_size:
            return
        start = "(" + entries[-1][0]
