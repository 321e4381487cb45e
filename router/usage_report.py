"""Usage summaries: what the pool served in a period, grouped by key, model, user, virtual key or
team, from the per-minute rollups (kernel/redis_keys.py's ``usage_rollup``).

    since, until = time_window("1h", None, now=await store.server_time())
    report = await summary(store, store.keys, since, until, by="model")
    report.rows, report.total                  # UsageRow: requests, tokens, cost (USD), errors

A summary reads one hash per minute of the window (HGETALL, pipelined in batches: a week is
10,080 minutes) and is exact to the minute: the minutes of ``since`` and ``until`` count whole.
Calls of an unknown price count 0 USD in the rollups. Past USAGE_ROLLUP_MAX_NAMES names of one
dimension in a minute, the further names count under ``~other``; calls that have no name in the
dimension (no user, no team, ...) form one row whose ``name`` is None, so the rows add up to the
total. Times are parsed by :func:`parse_time`: ``30m``, ``1h``, ``7d``, ``2w`` back from the
store's clock, an ISO 8601 time (UTC unless it says otherwise) or unix seconds.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import AsyncIterator, Iterable
from dataclasses import asdict, dataclass
from typing import Any

from kernel.errors import ClientRequestError
from kernel.redis_keys import RedisKeys
from kernel.store import Store
from lua.usage_records import DIMENSIONS, Rollup, nanos_to_usd, parse_rollup_field

#: What a summary may be grouped by (``total``: no rows, the total only).
GROUPS = ("total", *[d for d in DIMENSIONS if d != "all"])
#: Minute keys read per pipelined round trip.
BATCH = 1000
#: The longest window a summary reads (minutes of rollups).
MAX_DAYS = 31
DEFAULT_SINCE = "1h"
#: The latest time accepted (9999-12-31T23:59:59Z).
LATEST = 253402300799.0
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_EXPECTED = "expected a duration back from now (30m, 1h, 7d), an ISO 8601 time or unix seconds"


def parse_time(text: str, now: float, param: str = "since") -> float:
    """Unix seconds of ``text`` (see the module's docstring); ClientRequestError naming
    ``param`` otherwise."""
    value = text.strip()
    found = _DURATION.match(value.lower())
    if found:  # back from now; at most to 1970
        return max(0.0, now - min(float(found[1]) * UNITS[found[2]], LATEST))
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        try:
            moment = dt.datetime.fromisoformat(value)
        except ValueError:
            raise ClientRequestError(f"{param} {text!r}: {_EXPECTED}", param) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=dt.UTC)
        number = moment.timestamp()
    if not 0 <= number <= LATEST:
        raise ClientRequestError(f"{param} {text!r}: must be between 1970 and 9999", param)
    return number


def parse_since(text: str, now: float) -> float:
    return parse_time(text, now, "since")


def time_window(
    since: str | None,
    until: str | None,
    now: float,
    *,
    default_since: str | None = DEFAULT_SINCE,
    names: tuple[str, str] = ("since", "until"),
) -> tuple[float, float]:
    """(since, until) in unix seconds from the texts given (``until`` defaults to ``now``,
    ``since`` to ``default_since``, or the beginning of time when that is None)."""
    start = parse_time(since, now, names[0]) if since else None
    if start is None:
        start = parse_time(default_since, now, names[0]) if default_since else 0.0
    end = parse_time(until, now, names[1]) if until else now
    if start >= end:
        raise ClientRequestError(f"{names[0]} must be before {names[1]}", names[0])
    return start, end


@dataclass(frozen=True)
class UsageRow:
    """One name's calls in the window (``name`` None: calls with no name in the dimension)."""

    name: str | None
    requests: int
    tokens_in: int
    tokens_out: int
    cost_usd: float
    errors: int

    @classmethod
    def of(cls, name: str | None, rollup: Rollup) -> UsageRow:
        return cls(
            name,
            rollup.requests,
            rollup.tokens_in,
            rollup.tokens_out,
            nanos_to_usd(rollup.cost_nanos),
            rollup.errors,
        )


@dataclass(frozen=True)
class UsageSummary:
    since: float
    until: float
    by: str
    rows: list[UsageRow]
    total: UsageRow

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


async def summary(
    store: Store, names: RedisKeys, since: float, until: float, by: str = "model"
) -> UsageSummary:
    """The calls of [since, until] (to the minute), grouped ``by`` one of :data:`GROUPS`."""
    if by not in GROUPS:
        raise ClientRequestError(f"by {by!r}: expected one of {', '.join(GROUPS)}", "by")
    first, last = int(since // 60), int(until // 60)
    if last - first > MAX_DAYS * 1440:
        raise ClientRequestError(f"since: a summary covers at most {MAX_DAYS} days", "since")
    total, groups = Rollup(), dict[str, Rollup]()
    rollups = [v.usage_rollup(m) for v in names.usage_views() for m in range(first, last + 1)]
    async for minute in read_rollups(store, rollups):
        for field, raw in minute.items():
            dim, name = parse_rollup_field(field)
            if dim == "all":
                total = total + Rollup.decode(raw)
            elif dim == by:
                groups[name] = groups.get(name, Rollup()) + Rollup.decode(raw)
    rows = [UsageRow.of(name, rollup) for name, rollup in groups.items()]
    unnamed = _unnamed(total, groups.values())
    if by != "total" and unnamed.requests > 0:
        rows.append(UsageRow.of(None, unnamed))
    rows.sort(key=lambda r: (-r.cost_usd, -r.requests, r.name is None, r.name or ""))
    return UsageSummary(since, until, by, rows, UsageRow.of("total", total))


def _unnamed(total: Rollup, named: Iterable[Rollup]) -> Rollup:
    """What the total holds beyond the named rows (calls without a name in the dimension)."""
    rest = total
    for rollup in named:
        rest = Rollup(
            rest.requests - rollup.requests,
            rest.tokens_in - rollup.tokens_in,
            rest.tokens_out - rollup.tokens_out,
            rest.cost_nanos - rollup.cost_nanos,
            rest.errors - rollup.errors,
        )
    return rest


async def read_rollups(store: Store, keys: list[str]) -> AsyncIterator[dict[str, str]]:
    """Each key's hash (HGETALL), ``BATCH`` keys per pipelined round trip; the shared store only
    (a process's local store in degraded mode holds a fraction of the calls)."""
    store.require_shared("read the usage rollups")
    for start in range(0, len(keys), BATCH):
        chunk = keys[start : start + BATCH]

        def read(client: Any, chunk: list[str] = chunk) -> Any:
            pipe = client.pipeline(transaction=False)
            for key in chunk:
                pipe.hgetall(key)
            return pipe.execute()

        for reply in await store.call(read, shared_only=True):
            if reply:
                yield reply
