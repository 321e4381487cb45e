"""What the dashboard's pages show, as JSON-ready dicts: the overview, the keys, the models.

Everything is read from the store (key statuses, the usage log's records and per-minute rollups),
not from this process's counters, so every gateway worker, and ``python -m router dashboard``,
shows the same numbers. Keys are named by id and masked secret only.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from kernel.errors import StoreError
from keys.models import key_serves
from lua.usage_records import nanos_to_usd
from router.dashboard import recent
from router.gateway.state import Gateway
from router.usage_report import summary

#: The overview's recent window (outcomes, 429s avoided, latency) and its requests/s window.
WINDOW_SECONDS = 300
RATE_SECONDS = 10
#: Records the overview reads at most per refresh.
OVERVIEW_SCAN = 2000
#: How long the month's cost (up to 31 days of rollups) is reused.
MONTH_CACHE_SECONDS = 60.0


def _ts(iso: str | None) -> float | None:
    return datetime.fromisoformat(iso).timestamp() if iso else None


def _limit_use(used: Any, limit: Any) -> dict[str, Any]:
    return {"used": int(used or 0), "limit": int(limit) if limit else None}


def key_row(status: dict[str, Any]) -> dict[str, Any]:
    """One key as the Keys page shows it (no secret: the masked form only)."""
    rpm, tpm, rpd = status["rpm_usage"], status["tpm_usage"], status["rpd_usage"]
    return {
        "key_id": status["key_id"],
        "masked": status["masked_key"],
        "provider": status["provider"],
        "models": status["models"],
        "tags": status["tags"],
        "active": status["active"],
        "state": status["state"],
        "reason": status["reason"],
        "until": status["until"],
        "until_ts": _ts(status["until"]),
        "requests": status["requests"],
        "successes": status["successes"],
        "failures": status["failures"],
        "rate_limited": status["rate_limited"],
        "tokens": status["tokens"],
        "last_error": status["last_error"],
        "last_error_at": status["last_error_at"],
        "rpm": _limit_use(rpm.get("count"), rpm.get("limit")),
        "tpm": _limit_use(tpm.get("used"), tpm.get("limit")),
        "rpd": _limit_use(rpd.get("count"), rpd.get("limit")),
        # configured, learned (from the provider's answers), both, none: keys/learned.py
        "limits_source": status.get("limits", {}).get("source"),
    }


async def keys(gateway: Gateway) -> dict[str, Any]:
    statuses = await gateway.router.key_manager.get_all_key_statuses()
    rows = [key_row(s) for s in statuses]
    return {"keys": rows, "now": await gateway.store.server_time()}


def _share(used: int, capacity: int) -> float | None:
    return round(used / capacity, 4) if capacity > 0 else None


def _percentile(values: list[float], share: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))], 1)


def _rate(records: list[dict[str, Any]], now: float) -> float:
    """Requests per second over the last RATE_SECONDS (over the span read, when the records
    read do not reach that far back)."""
    recent_ones = [r for r in records if float(r.get("ts", 0)) >= now - RATE_SECONDS]
    span = float(RATE_SECONDS)
    if len(records) >= OVERVIEW_SCAN and recent_ones == records:
        span = max(1.0, now - float(records[-1].get("ts", now)))
    return round(len(recent_ones) / span, 2)


def window_stats(records: list[dict[str, Any]], now: float) -> dict[str, Any]:
    """Outcomes, 429s avoided (calls that waited for room or were told to retry later) and
    latency percentiles of the recent records."""
    outcomes = Counter(recent.outcome_of(r) for r in records)
    waited = sum(1 for r in records if float(r.get("wait_ms") or 0) > 0)
    told = outcomes.get("rate_limited", 0)
    latencies = [float(r.get("latency_ms") or 0) for r in records if r.get("success", True)]
    return {
        "window_seconds": WINDOW_SECONDS,
        "requests_per_second": _rate(records, now),
        "outcomes": dict(outcomes.most_common()),
        "waited": waited,
        "told_retry_after": told,
        "avoided_429": waited + told,
        "latency_p50_ms": _percentile(latencies, 0.50),
        "latency_p95_ms": _percentile(latencies, 0.95),
    }


def pool_capacity(rows: list[dict[str, Any]]) -> tuple[int, int]:
    """(requests in the last minute, rated requests per minute) of the keys that serve."""
    limited = [r for r in rows if r["rpm"]["limit"] and r["state"] != "disabled"]
    return sum(r["rpm"]["used"] for r in limited), sum(r["rpm"]["limit"] for r in limited)


async def _costs(gateway: Gateway, now: float, cache: dict[str, Any]) -> tuple[float, float]:
    """(USD today, USD this month), UTC calendar; the month reused for MONTH_CACHE_SECONDS."""
    store = gateway.store
    day = datetime.fromtimestamp(now, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    today = await summary(store, store.keys, day.timestamp(), now, "total")
    month_start = day.replace(day=1).timestamp()
    cached = cache.get("month")
    if (
        cached is None
        or cached[0] != month_start
        or time.monotonic() - cached[2] > MONTH_CACHE_SECONDS
    ):
        month = await summary(store, store.keys, month_start, now, "total")
        cached = (month_start, month.total.cost_usd, time.monotonic())
        cache["month"] = cached
    return today.total.cost_usd, max(float(cached[1]), today.total.cost_usd)


async def _usage(
    gateway: Gateway, now: float, capacity: int, cache: dict[str, Any]
) -> dict[str, Any]:
    """The overview's parts read from the usage log (the shared store only)."""
    store = gateway.store
    minute = int(now // 60)
    series = await recent.minutes(store, minute - 59, minute)
    hour = sum(r.requests for _, r in series)
    records = await recent.newest(
        store, since=now - WINDOW_SECONDS, limit=OVERVIEW_SCAN, scan=OVERVIEW_SCAN
    )
    cost_today, cost_month = await _costs(gateway, now, cache)
    return {
        "capacity_hour": _share(hour, capacity * 60),
        **window_stats(records, now),
        "cost_today": round(cost_today, 6),
        "cost_month": round(cost_month, 6),
        "series": [
            {
                "minute": m * 60,
                "requests": r.requests,
                "errors": r.errors,
                "cost": round(nanos_to_usd(r.cost_nanos), 6),
            }
            for m, r in series
        ],
        "usage_error": None,
    }


#: The overview's usage parts while the usage log cannot be read (Redis unreachable).
NO_USAGE: dict[str, Any] = {
    "capacity_hour": None,
    "window_seconds": WINDOW_SECONDS,
    "requests_per_second": None,
    "outcomes": {},
    "waited": None,
    "told_retry_after": None,
    "avoided_429": None,
    "latency_p50_ms": None,
    "latency_p95_ms": None,
    "cost_today": None,
    "cost_month": None,
    "series": [],
}


async def overview(gateway: Gateway, cache: dict[str, Any]) -> dict[str, Any]:
    """The Overview page: capacity used, traffic, outcomes, 429s, latency, cost, last hour. While
    the usage log cannot be read (degraded mode), the key-based parts still show."""
    now = await gateway.store.server_time()
    rows = (await keys(gateway))["keys"]
    used, capacity = pool_capacity(rows)
    try:
        usage = await _usage(gateway, now, capacity, cache)
    except StoreError as exc:
        usage = {**NO_USAGE, "usage_error": str(exc)}
    return {
        "now": now,
        "capacity_now": _share(used, capacity),
        "rpm_capacity": capacity,
        "provider_429": sum(int(r["rate_limited"]) for r in rows),
        "keys": {"total": len(rows), "by_state": dict(Counter(r["state"] for r in rows))},
        **usage,
    }


def _combined(values: list[int | None]) -> int | None:
    """The sum of the keys' limits; None when a key has none (no stated bound)."""
    return None if not values or any(v is None for v in values) else sum(v or 0 for v in values)


async def models(gateway: Gateway) -> dict[str, Any]:
    """The Models page: each listed model's chain, fallbacks, aliases and keys with capacity."""
    manager = gateway.router.key_manager
    pool = manager.keys
    routing = gateway.router.routing
    config = routing.config
    states = {s["key_id"]: s["state"] for s in await manager.get_all_key_statuses()}

    def served(model: str) -> bool:
        return any(key_serves(k, model) for k in pool.values())

    out = []
    for model, owner in gateway.catalog.listing():
        serving = [k for k in pool.values() if key_serves(k, model)]
        out.append(
            {
                "model": model,
                "provider": owner,
                "chain": routing.resolve(model, served),
                "fallbacks": config.fallbacks.get(model, []),
                "context_fallbacks": config.context_fallbacks.get(model, []),
                "aliases": sorted(a for a, t in config.aliases.items() if model in t),
                "keys": [{"key_id": k.key_id, "state": states.get(k.key_id)} for k in serving],
                "healthy_keys": sum(1 for k in serving if states.get(k.key_id) == "healthy"),
                "rpm": _combined([k.rpm for k in serving]),
                "tpm": _combined([k.tpm for k in serving]),
                "rpd": _combined([k.rpd for k in serving]),
            }
        )
    return {"models": out, "aliases": config.aliases, "default_model": config.default_model}
