"""The OpenAPI paths and schemas of the admin API's usage log and budgets
(router/gateway/admin_usage.py), merged into the document by router/gateway/openapi.py."""

from __future__ import annotations

from router.gateway.admin_usage import ID_SCOPES, MAX_LIMIT_USD
from router.gateway.openapi_schemas import Schema
from router.usage_export import FILTERS, MAX_LIMIT
from router.usage_report import GROUPS

_TIME = "30m, 1h, 7d back from now, an ISO 8601 time (UTC unless it says otherwise) or unix seconds"
INT: Schema = {"type": "integer"}
NUMBER: Schema = {"type": "number"}
STRING: Schema = {"type": "string"}


def _query(name: str, schema: Schema, description: str) -> Schema:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


def _object(properties: dict[str, Schema], extra: bool = False) -> Schema:
    return {
        "type": "object",
        "required": list(properties),
        "properties": properties,
        "additionalProperties": extra,
    }


def usage_row_schema() -> Schema:
    return _object(
        {
            "name": {"type": ["string", "null"]},
            "requests": INT,
            "tokens_in": INT,
            "tokens_out": INT,
            "cost_usd": NUMBER,
            "errors": INT,
        }
    )


def usage_summary_schema() -> Schema:
    row = {"$ref": "#/components/schemas/UsageRow"}
    return _object(
        {
            "since": NUMBER,
            "until": NUMBER,
            "by": {"enum": list(GROUPS)},
            "rows": {"type": "array", "items": row},
            "total": row,
        }
    )


def usage_page_schema() -> Schema:
    record = {
        "type": "object",
        "required": ["id", "ts", "request_id"],
        "properties": {"id": STRING, "ts": NUMBER, "request_id": STRING},
        "description": "a usage record (README: Usage record) and its stream id",
    }
    return _object(
        {
            "records": {"type": "array", "items": record},
            "next_cursor": {"type": ["string", "null"]},
        }
    )


def budget_status_schema() -> Schema:
    return _object(
        {
            "scope": {"enum": ["global", *ID_SCOPES]},
            "id": STRING,
            "limit_usd": NUMBER,
            "period": {"enum": ["day", "month"]},
            "timezone": STRING,
            "alert_share": NUMBER,
            "spent_usd": NUMBER,
            "reserved_usd": NUMBER,
            "remaining_usd": NUMBER,
            "requests": INT,
            "period_id": STRING,
            "resets_at": NUMBER,
        }
    )


def budget_body_schema() -> Schema:
    return {
        "type": "object",
        "required": ["limit_usd"],
        "additionalProperties": False,
        "properties": {
            "limit_usd": {"type": "number", "minimum": 0, "maximum": MAX_LIMIT_USD},
            "period": {"enum": ["day", "month"], "default": "month"},
            "timezone": {"type": "string", "minLength": 1, "maxLength": 64, "default": "UTC"},
            "alert_at": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
        },
    }


def usage_schemas() -> dict[str, Schema]:
    return {
        "UsageRow": usage_row_schema(),
        "UsageSummary": usage_summary_schema(),
        "UsageRecordsPage": usage_page_schema(),
        "BudgetStatus": budget_status_schema(),
        "BudgetSpec": budget_body_schema(),
    }


def _window() -> list[Schema]:
    return [
        _query("since", STRING, f"start: {_TIME}"),
        _query("until", STRING, f"end (default now): {_TIME}"),
    ]


def usage_paths(prefix: str) -> Schema:
    """The usage and budget paths under ``prefix`` (the admin API's)."""
    return {**_usage_read_paths(prefix), **_budget_paths(prefix)}


def _usage_read_paths(prefix: str) -> Schema:
    from router.gateway.openapi import _admin, _envelope, _ref

    filters = [_query(name, STRING, f"only records whose {name} is this") for name in FILTERS]
    limit = {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": 100}
    cursor = {"type": "string", "pattern": r"^\d+-\d+$"}
    return {
        f"{prefix}/usage": {
            "get": _admin(
                "Usage summary for a period (per-minute rollups), grouped",
                _envelope(_ref("UsageSummary")),
                operationId="usageSummary",
                parameters=[
                    *_window(),
                    _query("by", {"enum": list(GROUPS), "default": "model"}, "group by"),
                ],
            )
        },
        f"{prefix}/usage/records": {
            "get": _admin(
                "The usage log's records, oldest first, a page at a time",
                _envelope(_ref("UsageRecordsPage")),
                operationId="usageRecords",
                parameters=[
                    *_window(),
                    _query("cursor", cursor, "next_cursor of the previous page"),
                    _query("limit", limit, "records per page"),
                    *filters,
                ],
            )
        },
    }


def _budget_paths(prefix: str) -> Schema:
    from router.gateway.openapi import _admin, _body, _envelope, _ref

    scope_id = [
        {"name": "scope", "in": "path", "required": True, "schema": {"enum": list(ID_SCOPES)}},
        {
            "name": "id",
            "in": "path",
            "required": True,
            "schema": {"type": "string", "minLength": 1},
        },
    ]
    example = {"limit_usd": 5, "period": "day", "timezone": "UTC", "alert_at": 0.8}
    spec, status = _body(_ref("BudgetSpec"), example), _envelope(_ref("BudgetStatus"))
    deleted = _envelope(_object({"scope": STRING, "id": STRING, "deleted": {"const": True}}))
    listing = _envelope({"type": "array", "items": _ref("BudgetStatus")})
    return {
        f"{prefix}/budgets": {
            "get": _admin(
                "Every budget and its current period's spend", listing, operationId="listBudgets"
            )
        },
        f"{prefix}/budgets/global": {
            "put": _admin(
                "Set the global budget", status, operationId="setGlobalBudget", requestBody=spec
            ),
            "delete": _admin("Remove the global budget", deleted, operationId="deleteGlobalBudget"),
        },
        f"{prefix}/budgets/{{scope}}/{{id}}": {
            "put": _admin(
                "Set a user's, team's or virtual key's budget",
                status,
                operationId="setBudget",
                parameters=scope_id,
                requestBody=spec,
            ),
            "delete": _admin(
                "Remove a budget (its spend is kept)",
                deleted,
                operationId="deleteBudget",
                parameters=scope_id,
            ),
        },
    }
