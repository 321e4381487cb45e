"""The usage log's and budgets' records, defined once in Python (their Lua twins: lua/lib_usage.lua).

Money is counted in whole nano-dollars (1e-9 USD) everywhere in the store, so sums are exact
(HINCRBY, integer arithmetic in Lua below 2**53 nano-dollars, about 9 million USD per field).

    budgets  <field>             limit, period (day|month), time zone, alert share   BudgetRecord
    spend    <field>             period id, reserved, spent, alerted (0/1), requests  SpendRecord
    usage:m:<minute> <dim>|<name>   requests, tokens in, tokens out, cost, errors     Rollup
    usage:m:<minute> #<dim>         how many names of the dimension the minute holds
    res:<id> budgets             "<field>|<period>|<estimate>;..." what a reservation holds

A budget's field is ``global`` or ``<scope>:<id>`` (:func:`budget_field`), the id encoded like
every free text of the pool's records (lua.records.encode_text). A rollup's field is
``<dim>|<name>`` with ``dim`` one of :data:`DIMENSIONS`; past USAGE_ROLLUP_MAX_NAMES names of one
dimension in a minute, further names count under :data:`OTHER`.

A period is the calendar day or month of the budget's time zone (:func:`period_of`, the mirror of
lib_usage.lua's ``period_of``): ``d<days since 1970-01-01>`` or ``m<year * 12 + month - 1>``.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from lua.records import TAB, decode_text, encode_text

#: Nano-dollars per dollar: the store's unit of money.
NANOS = 1_000_000_000
SCOPES = ("global", "user", "team", "vkey")
Scope = Literal["global", "user", "team", "vkey"]
Period = Literal["day", "month"]
PERIODS: tuple[Period, ...] = ("day", "month")
#: Rollup dimensions: every call counts once in ``all`` and once under each name it has.
DIMENSIONS = ("all", "key", "model", "user", "vkey", "team")
#: The name further names of a dimension count under once a minute holds the maximum.
OTHER = "~other"


def usd_to_nanos(usd: float) -> int:
    return round(usd * NANOS)


def nanos_to_usd(nanos: int | float) -> float:
    return round(nanos / NANOS, 9)


# -- budgets ---------------------------------------------------------------------------------------
def budget_field(scope: str, ident: str = "") -> str:
    """The field of a budget: ``global``, or ``<scope>:<id>`` (id encoded)."""
    if scope not in SCOPES:
        raise ValueError(f"unknown budget scope {scope!r}; one of {', '.join(SCOPES)}")
    if scope == "global":
        return "global"
    if not ident:
        raise ValueError(f"a {scope} budget needs an id")
    return f"{scope}:{encode_text(ident)}"


def parse_budget_field(field: str) -> tuple[str, str]:
    """(scope, id) of a budget's field (``("global", "")`` for the global one)."""
    if field == "global":
        return "global", ""
    scope, _, ident = field.partition(":")
    return scope, decode_text(ident)


@dataclass(frozen=True)
class BudgetRecord:
    """A budget: at most ``limit_nanos`` per ``period`` of time zone ``tz``; a soft alert once the
    period's spend and reservations pass ``alert_share`` of it."""

    limit_nanos: int
    period: Period = "month"
    tz: str = "UTC"
    alert_share: float = 0.8

    def encode(self) -> str:
        return TAB.join([str(int(self.limit_nanos)), self.period, self.tz, repr(self.alert_share)])

    @classmethod
    def decode(cls, raw: str) -> BudgetRecord:
        limit, period, tz, share = raw.split(TAB)
        if period not in PERIODS:
            raise ValueError(f"budget record with period {period!r}")
        return cls(int(limit), period, tz, float(share))


@dataclass(frozen=True)
class SpendRecord:
    """A budget's current period: reserved (calls in flight, at their worst-case estimate) and
    spent (settled calls, at their real cost) nano-dollars, whether the alert fired, requests."""

    period: str = ""
    reserved: int = 0
    spent: int = 0
    alerted: bool = False
    requests: int = 0

    def encode(self) -> str:
        values = [self.period, str(self.reserved), str(self.spent), "1" if self.alerted else "0"]
        return TAB.join([*values, str(self.requests)])

    @classmethod
    def decode(cls, raw: str | None) -> SpendRecord:
        if not raw:
            return cls()
        period, reserved, spent, alerted, requests = raw.split(TAB)
        return cls(period, int(reserved), int(spent), alerted == "1", int(requests))

    @property
    def used(self) -> int:
        return self.reserved + self.spent


def period_of(now: float, offset: int, period: str) -> tuple[str, float]:
    """The period id at unix time ``now`` on a calendar ``offset`` seconds east of UTC, and the
    unix time the next period begins (lib_usage.lua's ``period_of``)."""
    day = int((now + offset) // 86400)
    if period == "day":
        return f"d{day}", float((day + 1) * 86400 - offset)
    date = _dt.date(1970, 1, 1) + _dt.timedelta(days=day)
    nxt = _dt.date(date.year + (date.month == 12), date.month % 12 + 1, 1)
    start = (nxt - _dt.date(1970, 1, 1)).days
    return f"m{date.year * 12 + date.month - 1}", float(start * 86400 - offset)


@dataclass(frozen=True)
class ReservedBudget:
    """One budget a reservation holds: its field, the period charged, the estimate reserved."""

    field: str
    period: str
    estimate: int


def encode_reserved(entries: list[ReservedBudget]) -> str:
    return ";".join(f"{e.field}|{e.period}|{e.estimate}" for e in entries)


def decode_reserved(raw: str | None) -> list[ReservedBudget]:
    out = []
    for item in (raw or "").split(";"):
        if item:
            field, period, estimate = item.split("|")
            out.append(ReservedBudget(field, period, int(estimate)))
    return out


# -- rollups ---------------------------------------------------------------------------------------
def rollup_field(dim: str, name: str) -> str:
    return f"{dim}|{encode_text(name)}"


def parse_rollup_field(field: str) -> tuple[str, str]:
    dim, _, name = field.partition("|")
    return dim, decode_text(name)


@dataclass(frozen=True)
class Rollup:
    """One name's calls in one minute (cost in nano-dollars; ``errors``: calls that failed)."""

    requests: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cost_nanos: int = 0
    errors: int = 0

    def encode(self) -> str:
        values = (self.requests, self.tokens_in, self.tokens_out, self.cost_nanos, self.errors)
        return TAB.join(map(str, values))

    @classmethod
    def decode(cls, raw: str | None) -> Rollup:
        if not raw:
            return cls()
        r, i, o, c, e = raw.split(TAB)
        return cls(int(r), int(i), int(o), int(c), int(e))

    def __add__(self, other: Rollup) -> Rollup:
        return Rollup(
            self.requests + other.requests,
            self.tokens_in + other.tokens_in,
            self.tokens_out + other.tokens_out,
            self.cost_nanos + other.cost_nanos,
            self.errors + other.errors,
        )


# -- what the scripts that write a usage record take ----------------------------------------------
@dataclass(slots=True)
class UsageArgs:
    """The usage segment of a script's ARGV (settle's tail, record_usage's whole): the record
    (JSON; '' = write none), the stream's bounds, the rollup's TTL and name cap, the names the
    call counts under (dimension -> name; empty names are skipped; ``all`` is implied), and
    what it counts: tokens in and out, cost (nano-dollars; unknown = 0 in rollups), error."""

    record: str
    max_records: int
    max_age_seconds: int
    rollup_ttl: int
    rollup_cap: int
    names: Mapping[str, str]
    tokens_in: int = 0
    tokens_out: int = 0
    cost_nanos: int = 0
    error: bool = False
    #: The record's rollup minute (its ``minute`` field): the rollup key its caller passes.
    minute: int | None = None

    def encode(self) -> list[object]:
        names = ",".join(
            f"{dim}={encode_text(name)}"
            for dim, name in self.names.items()
            if name and dim != "all"
        )
        return [
            self.record,
            int(self.max_records),
            int(self.max_age_seconds) * 1000,
            int(self.rollup_ttl),
            int(self.rollup_cap),
            names,
            int(self.tokens_in),
            int(self.tokens_out),
            int(self.cost_nanos),
            "1" if self.error else "0",
        ]


#: How many ARGV entries a UsageArgs takes.
USAGE_ARGC = 10
