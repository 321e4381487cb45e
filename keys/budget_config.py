"""Budgets from keys.json's ``"budgets"`` section and the BUDGETS setting (the same JSON form).

    "budgets": {
      "global":     {"limit_usd": 500, "period": "month"},
      "user:alice": {"limit_usd": 5, "period": "day", "timezone": "America/New_York", "alert_at": 0.9},
      "team:ml":    {"limit_usd": 200, "period": "month", "timezone": "Europe/Paris"},
      "vkey:<id>":  {"limit_usd": 20, "period": "day"}
    }

An entry is ``global`` or ``<scope>:<id>`` with scope ``user``, ``team`` (a tag) or ``vkey`` (a
virtual key's id). Fields: ``limit_usd`` (required, > 0), ``period`` (``day`` or ``month``;
default ``month``), ``timezone`` (an IANA name; the calendar the period follows; default UTC),
``alert_at`` (the share of the limit at which a soft alert fires; default BUDGET_ALERT_SHARE).
Both sources are merged; BUDGETS wins per entry. Errors name the file (or BUDGETS), the entry and
the field.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from kernel.errors import ConfigError
from kernel.settings import Settings
from kernel.text import control_char_problem
from lua.usage_records import (
    PERIODS,
    SCOPES,
    BudgetRecord,
    Period,
    Scope,
    budget_field,
    usd_to_nanos,
)

#: Where budgets given by the setting come from (error messages name it).
ENV_SOURCE = "BUDGETS"
_FIELDS = ("limit_usd", "period", "timezone", "alert_at")


@dataclass(frozen=True)
class BudgetSpec:
    """One budget: at most ``limit_usd`` per calendar ``period`` of ``timezone`` for ``scope``
    (``ident``: the user, team or virtual key id; empty for ``global``), a soft alert at
    ``alert_share`` of it. ``source``: the file or BUDGETS."""

    scope: Scope
    ident: str
    limit_usd: float
    period: Period = "month"
    timezone: str = "UTC"
    alert_share: float = 0.8
    source: str = ""

    @property
    def field(self) -> str:
        """The budget's field in the store (lua.usage_records.budget_field)."""
        return budget_field(self.scope, self.ident)

    @property
    def name(self) -> str:
        """The entry's name as configured: ``global`` or ``<scope>:<id>``."""
        return "global" if self.scope == "global" else f"{self.scope}:{self.ident}"

    def record(self) -> BudgetRecord:
        return BudgetRecord(
            usd_to_nanos(self.limit_usd), self.period, self.timezone, self.alert_share
        )


def _entry_name(name: Any, where: str) -> tuple[Scope, str]:
    if not isinstance(name, str):
        raise ConfigError("an entry name is a string", source=where, entry=str(name))
    if name == "global":
        return "global", ""
    scope, sep, ident = name.partition(":")
    if not sep or scope not in SCOPES or scope == "global":
        raise ConfigError(
            "expected 'global' or '<scope>:<id>' with scope user, team or vkey",
            source=where,
            entry=name,
        )
    problem = "needs an id after the colon" if not ident else control_char_problem(ident)
    if problem:
        raise ConfigError(problem, source=where, entry=name)
    return cast(Scope, scope), ident


def _share(value: Any, where: str, entry: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
        raise ConfigError(
            "must be a number above 0 and at most 1", source=where, entry=entry, field="alert_at"
        )
    return float(value)


def _limit(data: dict[str, Any], where: str, entry: str) -> float:
    if "limit_usd" not in data:
        raise ConfigError("required field is missing", source=where, entry=entry, field="limit_usd")
    value = data["limit_usd"]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError("must be a number (USD)", source=where, entry=entry, field="limit_usd")
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(
            "must be a finite number above 0", source=where, entry=entry, field="limit_usd"
        )
    return float(value)


def _period(value: Any, where: str, entry: str) -> Period:
    if value not in PERIODS:
        raise ConfigError("must be 'day' or 'month'", source=where, entry=entry, field="period")
    return cast(Period, value)


def _timezone(value: Any, where: str, entry: str) -> str:
    try:
        if not isinstance(value, str) or not value:
            raise ValueError(value)
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            "must be an IANA time zone name such as 'UTC' or 'Europe/Paris'",
            source=where,
            entry=entry,
            field="timezone",
        ) from None
    return value


def parse_budget(name: Any, data: Any, *, where: str, default_alert_share: float) -> BudgetSpec:
    """One entry of a budgets section; a ConfigError names ``where``, the entry and the field."""
    scope, ident = _entry_name(name, where)
    entry = str(name)
    if not isinstance(data, dict):
        raise ConfigError("expected an object with 'limit_usd'", source=where, entry=entry)
    for key in data:
        if key not in _FIELDS:
            raise ConfigError(
                f"unknown field (expected {', '.join(_FIELDS)})",
                source=where,
                entry=entry,
                field=str(key),
            )
    return BudgetSpec(
        scope=scope,
        ident=ident,
        limit_usd=_limit(data, where, entry),
        period=_period(data.get("period", "month"), where, entry),
        timezone=_timezone(data.get("timezone", "UTC"), where, entry),
        alert_share=_share(data.get("alert_at", default_alert_share), where, entry),
        source=where,
    )


def parse_budgets(
    section: Any, *, where: str, default_alert_share: float = 0.8
) -> dict[str, BudgetSpec]:
    """A budgets section (``{"<entry>": {...}}``): budgets by field."""
    if not isinstance(section, dict):
        raise ConfigError("must be an object of entry: budget", source=where, field="budgets")
    budgets: dict[str, BudgetSpec] = {}
    for name, data in section.items():
        if isinstance(name, str) and name.startswith(("_", "$")):
            continue  # a comment
        spec = parse_budget(name, data, where=where, default_alert_share=default_alert_share)
        budgets[spec.field] = spec
    return budgets


def budgets_of(data: Any, *, where: str, settings: Settings) -> dict[str, BudgetSpec]:
    """The budgets of a parsed keys.json document (empty without a ``budgets`` section)."""
    if not isinstance(data, dict) or "budgets" not in data:
        return {}
    share = settings.BUDGET_ALERT_SHARE
    return parse_budgets(data["budgets"], where=where, default_alert_share=share)


def budgets_from_settings(settings: Settings) -> dict[str, BudgetSpec]:
    """The budgets of the BUDGETS setting (JSON text); empty when unset."""
    raw = settings.BUDGETS
    if raw is None or not raw.strip():
        return {}
    try:
        section = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}", source=ENV_SOURCE
        ) from None
    share = settings.BUDGET_ALERT_SHARE
    return parse_budgets(section, where=ENV_SOURCE, default_alert_share=share)


def merge_budgets(*sources: dict[str, BudgetSpec]) -> list[BudgetSpec]:
    """The budgets of every source; a later source wins per entry (keys.json, then BUDGETS)."""
    merged: dict[str, BudgetSpec] = {}
    for budgets in sources:
        merged.update(budgets)
    return list(merged.values())
