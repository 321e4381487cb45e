"""The providers' rate-limit signals, parsed into one snapshot.

OpenAI (and OpenAI-compatible hosts) send ``x-ratelimit-{limit,remaining,reset}-{requests,tokens}``
with resets as durations (``1s``, ``6m0s``, ``12ms``); Azure OpenAI sends the remaining counts and,
on a 429, ``retry-after`` / ``retry-after-ms``. Anthropic sends
``anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,remaining,reset}`` with
RFC 3339 resets and ``retry-after`` in seconds. Gemini sends no such headers; its 429 body carries a
``google.rpc.QuotaFailure`` (the ``quotaId`` says per-minute or per-day, ``quotaValue`` the limit)
and a ``google.rpc.RetryInfo`` (``retryDelay: "26s"``).

Every reset becomes an absolute unix time, so snapshots can be stored and compared later.
:class:`RateLimitBook` keeps the latest snapshot per key for status answers and adaptive limits.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|us|µs|ns|h|m|s)")
_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


def parse_duration(text: str | None) -> float | None:
    """Seconds in a Go duration (``6m0s``, ``1.5s``, ``12ms``, ``1h2m3s``) or a bare number."""
    if text is None:
        return None
    value = text.strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    parts = _DURATION.findall(value)
    if not parts or "".join(n + u for n, u in parts) != value.replace(" ", ""):
        return None
    return sum(float(number) * _UNITS[unit] for number, unit in parts)


def parse_timestamp(text: str | None) -> float | None:
    """Unix time of an RFC 3339 timestamp (``2024-01-01T00:00:30Z``)."""
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.strip().replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def parse_retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds from ``retry-after-ms`` or ``retry-after`` (seconds or an HTTP date)."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


@dataclass(frozen=True)
class LimitState:
    """One limit: its size, what is left and when it is full again (unix time), each if known."""

    limit: int | None = None
    remaining: int | None = None
    reset_at: float | None = None

    @property
    def known(self) -> bool:
        return self.limit is not None or self.remaining is not None or self.reset_at is not None

    def as_dict(self) -> dict[str, Any]:
        return {"limit": self.limit, "remaining": self.remaining, "reset_at": self.reset_at}

    def wait_for(self, need: float, at: float, window: float = 60.0) -> float:
        """Seconds after ``at`` until ``need`` more fits this limit, as the provider enforces it: a
        bucket of ``limit`` refilled at ``limit / window`` per second (OpenAI's and Anthropic's
        per-minute limits). The level comes from the reset (``limit`` minus what refills by then),
        kept within what ``remaining`` (its floor) allows. A precise report thus gives exactly the
        provider's next room: when the router runs a key at its limit (its nominal state) the hold
        ends when the router's own schedule would admit the next call anyway, costing nothing.

        0 when ``need`` fits now, when it never fits (more than the limit), or when the limit,
        what remains or the reset is unknown (nothing to go on); never past the reset.
        """
        if self.limit is None or self.remaining is None or self.reset_at is None:
            return 0.0
        if self.limit <= 0 or need <= self.remaining or need > self.limit:
            return 0.0
        full_in = max(0.0, self.reset_at - at)
        rate = self.limit / window
        level = min(max(self.limit - full_in * rate, self.remaining), self.remaining + 1)
        return max(0.0, min(full_in, (need - level) / rate))


@dataclass(frozen=True)
class RateLimitSnapshot:
    """What one answer said about the key's limits."""

    provider: str
    observed_at: float
    requests: LimitState = field(default_factory=LimitState)
    tokens: LimitState = field(default_factory=LimitState)
    input_tokens: LimitState | None = None
    output_tokens: LimitState | None = None
    retry_after: float | None = None
    per_day: bool = False

    @property
    def empty(self) -> bool:
        return not (self.requests.known or self.tokens.known or self.retry_after is not None)

    def hold_for(
        self, prompt_tokens: int, completion_tokens: int, now: float | None = None
    ) -> float:
        """Seconds from ``now`` until the provider's own buckets, as this answer reported them,
        have room for another call like the one just made (1 request, its tokens); 0 when they
        have room or did not say enough.

        The router's reservations keep a key within its configured limits; this catches the
        provider's bucket running dry anyway (the key also used outside this router, or
        configured above its real limits), so the next call waits for room instead of a 429.
        """
        at = self.observed_at
        total = prompt_tokens + completion_tokens
        wait = max(self.requests.wait_for(1, at), self.tokens.wait_for(total, at))
        if self.input_tokens is not None:
            wait = max(wait, self.input_tokens.wait_for(prompt_tokens, at))
        if self.output_tokens is not None:
            wait = max(wait, self.output_tokens.wait_for(completion_tokens, at))
        return max(0.0, wait - ((time.time() if now is None else now) - at))

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "provider": self.provider,
            "observed_at": self.observed_at,
            "requests": self.requests.as_dict(),
            "tokens": self.tokens.as_dict(),
            "retry_after": self.retry_after,
            "per_day": self.per_day,
        }
        if self.input_tokens is not None:
            out["input_tokens"] = self.input_tokens.as_dict()
        if self.output_tokens is not None:
            out["output_tokens"] = self.output_tokens.as_dict()
        return out


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(float(value))
    except ValueError:
        return None


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def parse_openai_headers(
    headers: Mapping[str, str], now: float | None = None, provider: str = "openai"
) -> RateLimitSnapshot:
    """OpenAI's (and Azure's) rate-limit headers."""
    h = _lower(headers)
    at = time.time() if now is None else now

    def state(scope: str) -> LimitState:
        reset = parse_duration(h.get(f"x-ratelimit-reset-{scope}"))
        return LimitState(
            _int(h.get(f"x-ratelimit-limit-{scope}")),
            _int(h.get(f"x-ratelimit-remaining-{scope}")),
            at + reset if reset is not None else None,
        )

    return RateLimitSnapshot(
        provider, at, state("requests"), state("tokens"), retry_after=parse_retry_after(h, at)
    )


def parse_anthropic_headers(
    headers: Mapping[str, str], now: float | None = None
) -> RateLimitSnapshot:
    """Anthropic's ``anthropic-ratelimit-*`` headers and ``retry-after``."""
    h = _lower(headers)
    at = time.time() if now is None else now

    def state(family: str) -> LimitState:
        prefix = f"anthropic-ratelimit-{family}-"
        return LimitState(
            _int(h.get(prefix + "limit")),
            _int(h.get(prefix + "remaining")),
            parse_timestamp(h.get(prefix + "reset")),
        )

    input_tokens, output_tokens = state("input-tokens"), state("output-tokens")
    return RateLimitSnapshot(
        "anthropic",
        at,
        state("requests"),
        state("tokens"),
        input_tokens if input_tokens.known else None,
        output_tokens if output_tokens.known else None,
        retry_after=parse_retry_after(h, at),
    )


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


def parse_gemini_error(body: Any, now: float | None = None) -> RateLimitSnapshot:
    """What a Gemini 429 body says: the limit (``quotaValue``), retry delay and whether per-day."""
    at = time.time() if now is None else now
    delay, per_day, violations = gemini_quota_details(body)
    reset = at + delay if delay is not None else None
    requests, tokens = LimitState(), LimitState()
    for violation in violations:
        quota_id = str(violation.get("quotaId", "")).lower()
        state = LimitState(
            _int(str(violation.get("quotaValue"))) if violation.get("quotaValue") else None,
            0,
            reset,
        )
        if "token" in quota_id:
            tokens = state
        else:
            requests = state
    return RateLimitSnapshot("gemini", at, requests, tokens, retry_after=delay, per_day=per_day)


def parse_rate_limits(
    provider: str, headers: Mapping[str, str], body: Any = None, now: float | None = None
) -> RateLimitSnapshot:
    """The snapshot of one answer of ``provider`` (openai, azure, anthropic or gemini)."""
    if provider == "anthropic":
        return parse_anthropic_headers(headers, now)
    if provider == "gemini":
        snapshot = (
            parse_gemini_error(body, now)
            if body is not None
            else RateLimitSnapshot("gemini", time.time() if now is None else now)
        )
        retry = parse_retry_after(_lower(headers), now)
        if snapshot.retry_after is None and retry is not None:
            return RateLimitSnapshot(
                "gemini",
                snapshot.observed_at,
                snapshot.requests,
                snapshot.tokens,
                retry_after=retry,
            )
        return snapshot
    return parse_openai_headers(headers, now, provider)


class RateLimitBook:
    """The latest non-empty snapshot per key id (thread-safe; a dict read is all a status needs)."""

    def __init__(self) -> None:
        self._latest: dict[str, RateLimitSnapshot] = {}
        self._lock = threading.Lock()

    def record(self, key_id: str, snapshot: RateLimitSnapshot | None) -> None:
        if snapshot is None or snapshot.empty:
            return
        with self._lock:
            current = self._latest.get(key_id)
            if current is None or snapshot.observed_at >= current.observed_at:
                self._latest[key_id] = snapshot

    def latest(self, key_id: str) -> RateLimitSnapshot | None:
        return self._latest.get(key_id)

    def forget(self, key_id: str) -> None:
        with self._lock:
            self._latest.pop(key_id, None)

    def all(self) -> dict[str, RateLimitSnapshot]:
        return dict(self._latest)
