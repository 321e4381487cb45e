"""Gemini's quota, as its 429 bodies tell it: a ``google.rpc.QuotaFailure`` whose violations name
each quota exceeded (``quotaId``: ``GenerateRequestsPerMinutePerProjectPerModel-FreeTier``,
``GenerateContentInputTokensPerModelPerMinute-FreeTier``, ``GenerateRequestsPerDayPerProjectPerModel``;
``quotaMetric``; ``quotaValue``: the limit) and a ``google.rpc.RetryInfo`` (``retryDelay: "26s"``).
Gemini reports its limits nowhere else (no headers): the pool learns them from these
(keys/learned.py)."""

from __future__ import annotations

import time
from typing import Any

from router.providers.ratelimits import LimitState, RateLimitSnapshot, as_int, parse_duration


def gemini_quota_details(body: Any) -> tuple[float | None, bool, list[dict[str, Any]]]:
    """(retry delay in seconds, per-day?, quota violations) from a Gemini error body."""
    error = body.get("error") if isinstance(body, dict) else None
    details = error.get("details") if isinstance(error, dict) else None
    delay: float | None = None
    violations: list[dict[str, Any]] = []
    for detail in details if isinstance(details, list) else []:
        if not isinstance(detail, dict):
            continue
        kind = str(detail.get("@type", ""))
        if kind.endswith("google.rpc.RetryInfo"):
            delay = parse_duration(str(detail.get("retryDelay", "")))
        elif kind.endswith("google.rpc.QuotaFailure"):
            violations.extend(v for v in detail.get("violations") or [] if isinstance(v, dict))
    per_day = any("perday" in str(v.get("quotaId", "")).lower() for v in violations)
    return delay, per_day, violations


def gemini_quota(violation: dict[str, Any]) -> tuple[str, str] | None:
    """(``minute`` | ``day``, ``requests`` | ``tokens``) of a QuotaFailure violation, from its
    ``quotaId`` (``GenerateRequestsPerMinutePerProjectPerModel-FreeTier``,
    ``GenerateContentInputTokensPerModelPerMinute-FreeTier``, ``...PerDay...``) and
    ``quotaMetric``; None for a quota of another period."""
    quota_id = str(violation.get("quotaId", "")).lower()
    metric = str(violation.get("quotaMetric", "")).lower()
    if "perday" in quota_id:
        period = "day"
    elif "perminute" in quota_id:
        period = "minute"
    else:
        return None
    return period, "tokens" if "token" in quota_id or "token" in metric else "requests"


def parse_gemini_error(body: Any, now: float | None = None) -> RateLimitSnapshot:
    """What a Gemini 429 body says: each violated quota's limit (``quotaValue``) per minute
    (requests, input tokens) and per day (requests), the retry delay and whether per-day."""
    at = time.time() if now is None else now
    delay, per_day, violations = gemini_quota_details(body)
    reset = at + delay if delay is not None else None
    found: dict[tuple[str, str], LimitState] = {}
    for violation in violations:
        kind = gemini_quota(violation)
        value = as_int(str(violation.get("quotaValue"))) if violation.get("quotaValue") else None
        if kind is not None and value is not None and value > 0:
            found[kind] = LimitState(value, 0, reset if kind[0] == "minute" else None)
    return RateLimitSnapshot(
        "gemini",
        at,
        found.get(("minute", "requests"), LimitState()),
        found.get(("minute", "tokens"), LimitState()),
        retry_after=delay,
        per_day=per_day,
        day_requests=found.get(("day", "requests")),
    )
