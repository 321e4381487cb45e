"""The Spend and Requests pages' data: spend by a dimension, budgets, the latest usage records.

Spend comes from the per-minute rollups (router/usage_report.py), budgets from the budget book
(keys/budgets.py), requests from the usage stream read newest first (router/dashboard/recent.py).
A listing never carries a record's prompt or completion; the detail view shows them only when the
operator stored them (USAGE_STORE_CONTENT).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from kernel.errors import ClientRequestError
from keys.budgets import BudgetBook
from router.dashboard import recent
from router.gateway.errors import not_found
from router.gateway.state import Gateway
from router.usage_report import summary, time_window

SPEND_BY = ("key", "model", "user", "vkey", "team")
SPEND_SINCE = ("1h", "24h", "7d", "30d")
MAX_REQUESTS = 500
#: Records a filtered listing reads at most.
REQUESTS_SCAN = 5000
REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
_FILTER_LENGTH = 200


def _choice(query: Mapping[str, str], name: str, allowed: tuple[str, ...], default: str) -> str:
    value = query.get(name) or default
    if value not in allowed:
        raise ClientRequestError(f"{name} {value!r}: expected one of {', '.join(allowed)}", name)
    return value


async def spend(gateway: Gateway, query: Mapping[str, str]) -> dict[str, Any]:
    by = _choice(query, "by", SPEND_BY, "model")
    since_text = _choice(query, "since", SPEND_SINCE, "24h")
    store = gateway.store
    since, until = time_window(since_text, None, await store.server_time())
    report = await summary(store, store.keys, since, until, by)
    book = BudgetBook(store, store.keys)
    budgets = [
        {**status.as_dict(), "used_share": round(status.used_share, 4)}
        for status in await book.list()
    ]
    return {
        "by": by,
        "since": since_text,
        "rows": [row_dict(r) for r in report.rows],
        "total": row_dict(report.total),
        "budgets": budgets,
    }


def row_dict(row: Any) -> dict[str, Any]:
    return {
        "name": row.name,
        "requests": row.requests,
        "tokens_in": row.tokens_in,
        "tokens_out": row.tokens_out,
        "cost_usd": round(row.cost_usd, 6),
        "errors": row.errors,
    }


def _filters(query: Mapping[str, str]) -> dict[str, str]:
    out = {}
    for param, field in (("model", "model"), ("key_id", "key_id"), ("user", "user")):
        value = (query.get(param) or "").strip()
        if len(value) > _FILTER_LENGTH:
            raise ClientRequestError(f"{param}: at most {_FILTER_LENGTH} characters", param)
        if value:
            out[field] = value
    return out


def _limit(text: str | None) -> int:
    if not text:
        return 100
    try:
        limit = int(text)
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_REQUESTS:
        raise ClientRequestError(f"limit {text!r}: expected 1 to {MAX_REQUESTS}", "limit")
    return limit


def listing(record: dict[str, Any]) -> dict[str, Any]:
    """A record as the Requests table shows it (never its content)."""
    out = {k: v for k, v in record.items() if k not in recent.CONTENT_FIELDS}
    out["outcome"] = recent.outcome_of(record)
    return out


async def requests(gateway: Gateway, query: Mapping[str, str]) -> dict[str, Any]:
    outcome = (query.get("outcome") or "").strip()[:_FILTER_LENGTH] or None
    found = await recent.newest(
        gateway.store,
        limit=_limit(query.get("limit")),
        scan=REQUESTS_SCAN,
        filters=_filters(query),
        outcome=outcome,
    )
    return {"requests": [listing(r) for r in found]}


async def request_detail(gateway: Gateway, request_id: str) -> dict[str, Any]:
    if not REQUEST_ID.match(request_id):
        raise ClientRequestError("request_id: expected letters, digits and ._:-", "request_id")
    record = await recent.find_request(gateway.store, request_id)
    if record is None:
        raise not_found(
            f"No recent usage record has the request id {request_id!r}.",
            code="request_not_found",
            param="request_id",
        )
    out = listing(record)
    if gateway.settings.USAGE_STORE_CONTENT:
        for name in recent.CONTENT_FIELDS:
            if record.get(name) is not None:
                out[name] = record[name]
    return out
