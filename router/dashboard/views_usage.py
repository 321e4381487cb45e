"""The bodies of the Spend, Requests and request detail pages (router/dashboard/spend.py's dicts)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from router.dashboard.html import attrs, bar, esc, number, table, usd
from router.dashboard.spend import SPEND_BY, SPEND_SINCE

OUTCOMES = (
    "success", "rate_limited", "no_keys_available", "model_not_available", "budget_exceeded",
    "auth", "bad_request", "context_length_exceeded", "overloaded", "server_error", "timeout",
    "connection_error", "store_unavailable",
)  # fmt: skip


def when(ts: Any) -> str:
    if not isinstance(ts, int | float):
        return ""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _select(select_id: str, label: str, values: tuple[str, ...], chosen: str, any_: bool) -> str:
    options = '<option value="">any</option>' if any_ else ""
    for value in values:
        here = " selected" if value == chosen else ""
        options += f'<option value="{esc(value)}"{here}>{esc(value)}</option>'
    return (
        f'<label for="{select_id}">{esc(label)}</label>'
        f'<select id="{select_id}" name="{select_id.removeprefix("spend-").removeprefix("filter-")}">'
        f"{options}</select>"
    )


def spend_row(row: dict[str, Any]) -> str:
    name = row["name"]
    cells = [
        f'<th scope="row">{esc(name) if name is not None else "(none)"}</th>',
        f'<td data-field="requests">{number(row["requests"])}</td>',
        f'<td data-field="tokens">{number(row["tokens_in"] + row["tokens_out"])}</td>',
        f'<td data-field="cost">{usd(row["cost_usd"])}</td>',
        f'<td data-field="errors">{number(row["errors"])}</td>',
    ]
    return f"<tr{attrs(data_name=name or '')}>" + "".join(cells) + "</tr>"


def budget_row(budget: dict[str, Any]) -> str:
    name = "global" if budget["scope"] == "global" else f"{budget['scope']}:{budget['id']}"
    used = budget["spent_usd"] + budget["reserved_usd"]
    share = f"{budget['used_share'] * 100:.1f}% used"
    cents = (round(used * 100), round(budget["limit_usd"] * 100))
    cells = [
        f'<th scope="row">{esc(name)}</th>',
        f'<td data-field="spent">{usd(budget["spent_usd"])} spent, {usd(budget["reserved_usd"])} reserved</td>',
        f'<td data-field="limit">{usd(budget["limit_usd"])} per {esc(budget["period"])}</td>',
        f"<td>{bar('use', cents[0], cents[1] or None, f'{name} budget used (cents)')} {esc(share)}</td>",
        f'<td data-field="resets">{esc(when(budget["resets_at"]))} ({esc(budget["timezone"])})</td>',
    ]
    return f"<tr{attrs(data_budget=name)}>" + "".join(cells) + "</tr>"


def spend(view: dict[str, Any]) -> str:
    form = (
        '<form class="filters" id="spend-form" method="get" action="/ui/spend">'
        + _select("spend-by", "Spend by", SPEND_BY, view["by"], False)
        + _select("spend-since", "Over the last", SPEND_SINCE, view["since"], False)
        + '<button type="submit">Show</button></form>'
    )
    rows = [spend_row(r) for r in view["rows"]]
    total = view["total"]
    budgets = [budget_row(b) for b in view["budgets"]]
    return (
        "<h1>Spend and budgets</h1>"
        + form
        + table(
            "spend-table",
            f"Spend by {view['by']}",
            ("Name", "Requests", "Tokens", "Cost", "Errors"),
            rows,
        )
        + f'<p id="spend-total">Total: {number(total["requests"])} requests, {usd(total["cost_usd"])}</p>'
        + table(
            "budgets-table",
            "Budgets in their current period",
            ("Budget", "Spent", "Limit", "Use", "Resets"),
            budgets,
        )
    )


def request_row(record: dict[str, Any]) -> str:
    rid = str(record.get("request_id", ""))
    cells = [
        f'<td data-field="ts">{esc(when(record.get("ts")))}</td>',
        f'<th scope="row"><a href="/ui/requests/{esc(rid)}">{esc(rid)}</a></th>',
        f'<td data-field="model">{esc(record.get("model") or record.get("requested_model"))}</td>',
        f'<td data-field="key_id">{esc(record.get("key_id"))}</td>',
        f'<td data-field="user">{esc(record.get("user"))}</td>',
        f'<td data-field="outcome">{esc(record.get("outcome"))}</td>',
        f'<td data-field="latency">{number(round(float(record.get("latency_ms") or 0)))} ms</td>',
        f'<td data-field="wait">{number(round(float(record.get("wait_ms") or 0)))} ms</td>',
        f'<td data-field="attempts">{number(record.get("attempts"))}</td>',
        f'<td data-field="cost">{usd(record.get("cost"))}</td>',
    ]
    return f"<tr{attrs(data_request_id=rid)}>" + "".join(cells) + "</tr>"


REQUEST_HEADERS = (
    "Time", "Request id", "Model", "Key", "User", "Outcome", "Latency", "Waited", "Attempts", "Cost",
)  # fmt: skip


def requests(view: dict[str, Any], query: Mapping[str, str]) -> str:
    def field(field_id: str, label: str, name: str) -> str:
        value = attrs(value=query.get(name) or None)
        return f'<label for="{field_id}">{label}</label><input id="{field_id}" name="{name}" type="search"{value}>'

    form = (
        '<form class="filters" id="requests-form" method="get" action="/ui/requests" role="search">'
        + field("filter-model", "Model", "model")
        + field("filter-key", "Key", "key_id")
        + field("filter-user", "User", "user")
        + _select("filter-outcome", "Outcome", OUTCOMES, query.get("outcome", ""), True)
        + '<button type="submit">Filter</button></form>'
    )
    rows = [request_row(r) for r in view["requests"]]
    return (
        "<h1>Recent requests</h1>"
        + form
        + table("requests-table", "Latest usage records, newest first", REQUEST_HEADERS, rows)
    )


def _shown(name: str, value: Any) -> Any:
    if name == "ts":
        return when(value)
    if name == "cost":
        return "unknown (no price)" if value is None else f"${value:.6f}"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return value


def request_detail(record: dict[str, Any]) -> str:
    items = []
    for name, value in record.items():
        shown = _shown(name, value)
        items.append(f"<dt>{esc(name)}</dt><dd{attrs(data_field=name)}>{esc(shown)}</dd>")
    rid = record.get("request_id", "")
    return (
        f"<h1>Request {esc(rid)}</h1>"
        '<p><a href="/ui/requests">Back to the requests</a></p>'
        f'<section id="request-detail"><dl>{"".join(items)}</dl></section>'
    )
