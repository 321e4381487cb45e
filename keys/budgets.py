"""The budget book: the budgets in the store, and where each one stands in its current period.

    book = BudgetBook(store, store.keys)
    await book.set(budget_field("user", "alice"), BudgetRecord(usd_to_nanos(5), "day"))
    for status in await book.list(): ...      # BudgetStatus: limit, spent, reserved, remaining

Budgets live in one hash (``budgets``: field -> lua.usage_records.BudgetRecord) and their spend
in another (``spend``: field -> SpendRecord), both written by the scripts that reserve and settle
calls. This module only writes budgets (``set``/``delete`` by the admin API, ``sync`` of the
configured ones at start) and reads both; it never writes spend. Deleting a budget keeps its
spend: setting it again within the same period counts what was already spent.

A budget's period is the calendar day or month of its time zone at the store's clock
(``period_of`` with the zone's UTC offset at that instant, as the scripts compute it); a spend
record of an older period counts as nothing spent.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from kernel.errors import ConfigError
from kernel.log import get_logger
from kernel.redis_keys import RedisKeys
from kernel.store import Store
from lua.usage_records import (
    PERIODS,
    SCOPES,
    BudgetRecord,
    SpendRecord,
    nanos_to_usd,
    parse_budget_field,
    period_of,
)

log = get_logger("keys.budgets")
#: Scopes in the order listings show them.
_SCOPE_ORDER = {scope: i for i, scope in enumerate(SCOPES)}


def utc_offset(tz: str, now: float) -> int:
    """Seconds east of UTC of time zone ``tz`` at unix time ``now`` (ConfigError naming the
    field ``timezone`` when the zone is unknown)."""
    try:
        zone = ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ConfigError(f"unknown time zone {tz!r}", field="timezone") from None
    offset = dt.datetime.fromtimestamp(now, zone).utcoffset()
    return int(offset.total_seconds()) if offset is not None else 0


def check_budget(record: BudgetRecord) -> BudgetRecord:
    """``record`` when it is a usable budget, else ConfigError naming the field."""
    if not isinstance(record.limit_nanos, int) or record.limit_nanos < 0:
        raise ConfigError("must be a non-negative amount of USD", field="limit_usd")
    if record.period not in PERIODS:
        raise ConfigError(f"must be one of {', '.join(PERIODS)}", field="period")
    utc_offset(record.tz, 0.0)
    share = record.alert_share
    if not (isinstance(share, float | int) and math.isfinite(share) and 0 < share <= 1):
        raise ConfigError("must be a share above 0 and at most 1", field="alert_at")
    return record


@dataclass(frozen=True)
class BudgetStatus:
    """Where one budget stands in its current period (money in USD)."""

    scope: str
    id: str
    limit_usd: float
    period: str
    timezone: str
    alert_share: float
    spent_usd: float
    reserved_usd: float
    remaining_usd: float
    requests: int
    #: The current period's id (``d<days>`` / ``m<months>``) and when the next one begins (unix).
    period_id: str
    resets_at: float

    @property
    def used_share(self) -> float:
        """Spent and reserved over the limit (1.0 for a limit of 0)."""
        used = self.spent_usd + self.reserved_usd
        return used / self.limit_usd if self.limit_usd > 0 else 1.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def budget_status(field: str, budget: BudgetRecord, spend: SpendRecord, now: float) -> BudgetStatus:
    """``budget``'s status at unix time ``now`` given its spend record."""
    scope, ident = parse_budget_field(field)
    period_id, resets_at = period_of(now, utc_offset(budget.tz, now), budget.period)
    if spend.period != period_id:
        spend = SpendRecord(period_id)
    remaining = max(0, budget.limit_nanos - spend.used)
    return BudgetStatus(
        scope=scope,
        id=ident,
        limit_usd=nanos_to_usd(budget.limit_nanos),
        period=budget.period,
        timezone=budget.tz,
        alert_share=budget.alert_share,
        spent_usd=nanos_to_usd(spend.spent),
        reserved_usd=nanos_to_usd(spend.reserved),
        remaining_usd=nanos_to_usd(remaining),
        requests=spend.requests,
        period_id=period_id,
        resets_at=resets_at,
    )


class BudgetBook:
    """Writes budgets and reads their status; ``clock`` (unix seconds) replaces the store's
    clock (tests roll periods with it)."""

    def __init__(
        self, store: Store, names: RedisKeys, clock: Callable[[], float] | None = None
    ) -> None:
        self.store = store
        self.names = names
        self.clock = clock

    async def now(self) -> float:
        return self.clock() if self.clock is not None else await self.store.server_time()

    async def set(self, field: str, record: BudgetRecord) -> None:
        """Create or replace a budget (admin: needs the shared store)."""
        parse_checked(field)
        check_budget(record)
        self.store.require_shared("set a budget")
        command = self.store.shared_client.hset(self.names.budgets, field, record.encode())
        await self.store.call(command, shared_only=True)
        log.info("budget set", budget=field, period=record.period, tz=record.tz)

    async def delete(self, field: str) -> bool:
        """Remove a budget (its spend is kept); False when there was none."""
        self.store.require_shared("delete a budget")
        command = self.store.shared_client.hdel(self.names.budgets, field)
        removed = int(await self.store.call(command, shared_only=True))
        if removed:
            log.info("budget deleted", budget=field)
        return removed > 0

    async def sync(self, specs: Iterable[tuple[str, BudgetRecord]]) -> int:
        """Write the configured budgets (records only: spend is never touched); answers how many."""
        mapping = {}
        for field, record in specs:
            parse_checked(field)
            mapping[field] = check_budget(record).encode()
        if mapping:
            budgets = self.names.budgets
            await self.store.call(lambda client: client.hset(budgets, mapping=mapping))
        return len(mapping)

    async def list(self) -> list[BudgetStatus]:
        """Every budget's status, global first, then by scope and id."""
        names = self.names
        budgets: dict[str, str] = await self.store.call(lambda c: c.hgetall(names.budgets))
        if not budgets:
            return []
        fields = sorted(budgets)
        spends = await self.store.call(lambda c: c.hmget(names.budget_spend, fields))
        now = await self.now()
        out = []
        for field, spend in zip(fields, spends, strict=True):
            status = _status_or_none(field, budgets[field], spend, now)
            if status is not None:
                out.append(status)
        return sorted(out, key=lambda s: (_SCOPE_ORDER.get(s.scope, 99), s.id))

    async def snapshot(self) -> dict[str, tuple[BudgetRecord, SpendRecord]]:
        """Every readable budget with its spend record as stored (any period): HGETALL budgets,
        HMGET spend. Degraded mode's local budgets are made from the last one (keys/pool.py)."""
        names = self.names
        budgets: dict[str, str] = await self.store.call(lambda c: c.hgetall(names.budgets))
        if not budgets:
            return {}
        fields = sorted(budgets)
        spends = await self.store.call(lambda c: c.hmget(names.budget_spend, fields))
        out = {}
        for field, spend in zip(fields, spends, strict=True):
            try:
                out[field] = (BudgetRecord.decode(budgets[field]), SpendRecord.decode(spend))
            except ValueError:
                continue
        return out

    async def zones(self) -> frozenset[str]:
        """The time zones of every budget in the store (the scripts need their offsets)."""
        names = self.names
        raw: list[str] = await self.store.call(lambda c: c.hvals(names.budgets))
        zones = []
        for value in raw:
            try:
                zones.append(BudgetRecord.decode(value).tz)
            except ValueError:
                continue
        return frozenset(zones)

    async def get(self, field: str) -> BudgetStatus | None:
        """One budget's status; None when it does not exist."""
        names = self.names
        raw = await self.store.call(lambda c: c.hget(names.budgets, field))
        if not raw:
            return None
        spend = await self.store.call(lambda c: c.hget(names.budget_spend, field))
        return _status_or_none(field, raw, spend, await self.now())


def parse_checked(field: str) -> tuple[str, str]:
    """(scope, id) of a budget field; ConfigError naming ``scope`` when it is not one."""
    scope, ident = parse_budget_field(field)
    if scope not in SCOPES or (scope == "global" and field != "global"):
        raise ConfigError(
            f"budget {field!r}: the scope must be one of {', '.join(SCOPES)}", field="scope"
        )
    if scope != "global" and not ident:
        raise ConfigError(f"a {scope} budget needs an id", field="id")
    return scope, ident


def _status_or_none(field: str, raw: str, spend: str | None, now: float) -> BudgetStatus | None:
    """The status of a stored budget; None (logged) for a record that cannot be read."""
    try:
        return budget_status(field, BudgetRecord.decode(raw), SpendRecord.decode(spend), now)
    except (ValueError, ConfigError) as exc:
        log.warning("unreadable budget record skipped", budget=field, error=str(exc))
        return None
