"""The admin API's usage log and budgets (master key, under ``/api/v1/admin`` like the rest).

    GET    /usage?since=1h&until=&by=model          a summary (router/usage_report.py)
    GET    /usage/records?since=&until=&cursor=&limit=&model=&user=...   a page of records
    GET    /budgets                                 every budget's status (keys/budgets.py)
    PUT    /budgets/global, /budgets/{scope}/{id}   set one: {"limit_usd": 5, "period": "day",
                                                    "timezone": "UTC", "alert_at": 0.8}
    DELETE /budgets/global, /budgets/{scope}/{id}   remove one (its spend is kept)

Bad parameters are a 400 naming the parameter or field; the usage log and budget changes need
the shared store (a 503 ``store_unavailable`` while it is unreachable).
"""

from __future__ import annotations

import math
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, field_validator

from kernel.errors import ConfigError
from kernel.text import check_plain
from kernel.validation import parse_request
from keys.budgets import BudgetBook, utc_offset
from lua.usage_records import BudgetRecord, budget_field, usd_to_nanos
from router.gateway.admin import PREFIX, admin, ok
from router.gateway.admin import _object_body as object_body
from router.gateway.errors import bad_request, not_found
from router.gateway.state import Gateway
from router.usage_export import parse_limit, records
from router.usage_report import summary, time_window

#: Scopes a budget with an id has (the global one has its own route).
ID_SCOPES = ("user", "team", "vkey")
MAX_ID_LENGTH = 200
#: The largest limit accepted (the store counts nano-dollars below 2**53).
MAX_LIMIT_USD = 1_000_000.0


class BudgetBody(BaseModel):
    """A budget as the admin API takes it."""

    model_config = ConfigDict(extra="forbid")

    limit_usd: float = Field(ge=0, le=MAX_LIMIT_USD)
    period: Literal["day", "month"] = "month"
    timezone: str = Field("UTC", min_length=1, max_length=64)
    #: The share of the limit at which a soft alert fires (default BUDGET_ALERT_SHARE).
    alert_at: float | None = Field(None, gt=0, le=1)

    @field_validator("limit_usd", "alert_at")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            utc_offset(value, 0.0)
        except ConfigError:
            raise ValueError(
                f"unknown time zone {value!r} (an IANA name: UTC, Europe/Paris)"
            ) from None
        return value

    @classmethod
    def parse(cls, data: Any) -> BudgetBody:
        return parse_request(cls, data)

    def record(self, default_share: float) -> BudgetRecord:
        share = self.alert_at if self.alert_at is not None else default_share
        return BudgetRecord(usd_to_nanos(self.limit_usd), self.period, self.timezone, share)


def _book(gateway: Gateway) -> BudgetBook:
    return BudgetBook(gateway.store, gateway.store.keys)


def _field(request: web.Request) -> str:
    """The budget field of the route's scope and id (``global`` on the global routes)."""
    scope = request.match_info.get("scope")
    if scope is None:
        return "global"
    if scope not in ID_SCOPES:
        raise bad_request(
            f"scope {scope!r}: expected one of {', '.join(ID_SCOPES)} (or the route /budgets/global)",
            "scope",
        )
    ident = request.match_info["id"]
    if len(ident) > MAX_ID_LENGTH:
        raise bad_request(f"id: at most {MAX_ID_LENGTH} characters", "id")
    return budget_field(scope, check_plain(ident, "id"))


@admin
async def usage_summary(request: web.Request, gateway: Gateway) -> web.Response:
    query, store = request.query, gateway.store
    since, until = time_window(query.get("since"), query.get("until"), await store.server_time())
    report = await summary(store, store.keys, since, until, query.get("by") or "model")
    return ok(report.as_dict())


@admin
async def usage_records(request: web.Request, gateway: Gateway) -> web.Response:
    query, store = request.query, gateway.store
    now = await store.server_time()
    since, until = time_window(query.get("since"), query.get("until"), now, default_since=None)
    limit = parse_limit(query.get("limit"))
    page = await records(store, store.keys, since, until, query.get("cursor"), limit, query)
    return ok(page.as_dict())


@admin
async def list_budgets(request: web.Request, gateway: Gateway) -> web.Response:
    return ok([status.as_dict() for status in await _book(gateway).list()])


@admin
async def put_budget(request: web.Request, gateway: Gateway) -> web.Response:
    field = _field(request)
    body = BudgetBody.parse(await object_body(request))
    book = _book(gateway)
    await book.set(field, body.record(gateway.settings.BUDGET_ALERT_SHARE))
    status = await book.get(field)
    assert status is not None
    return ok(status.as_dict())


@admin
async def delete_budget(request: web.Request, gateway: Gateway) -> web.Response:
    field = _field(request)
    if not await _book(gateway).delete(field):
        raise not_found(f"No budget is set for {field!r}.", code="budget_not_found", param="id")
    scope = request.match_info.get("scope", "global")
    return ok({"scope": scope, "id": request.match_info.get("id", ""), "deleted": True})


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get(f"{PREFIX}/usage", usage_summary)
    r.add_get(f"{PREFIX}/usage/records", usage_records)
    r.add_get(f"{PREFIX}/budgets", list_budgets)
    r.add_put(f"{PREFIX}/budgets/global", put_budget)
    r.add_delete(f"{PREFIX}/budgets/global", delete_budget)
    r.add_put(f"{PREFIX}/budgets/{{scope}}/{{id}}", put_budget)
    r.add_delete(f"{PREFIX}/budgets/{{scope}}/{{id}}", delete_budget)
