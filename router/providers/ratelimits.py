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

import functools
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

#: Seconds a provider's per-minute bucket takes to refill its limit.
WINDOW = 60.0

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|us|µs|ns|h|m|s)")
_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


@functools.lru_cache(maxsize=1024)  # a few distinct texts recur on every answer
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


@functools.lru_cache(maxsize=1024)  # a few distinct texts recur on every answer
def text_precision(text: str | None) -> float:
    """Seconds of rounding a reset written as ``text`` may hide: the last digit's unit
    (``12ms`` 0.001, ``1.5s`` 0.1, ``6m0s`` 1, ``2024-01-01T00:00:30Z`` 1, ``...30.25Z`` 0.01)."""
    if not text:
        return 1.0
    value = text.strip().removesuffix("Z")
    unit = 1.0
    for suffix, size in (("ms", 1e-3), ("us", 1e-6), ("µs", 1e-6), ("ns", 1e-9)):
        if value.endswith(suffix):
            value, unit = value[: -len(suffix)], size
            break
    else:
        if value.endswith(("s", "m", "h")):
            unit = {"s": 1.0, "m": 60.0, "h": 3600.0}[value[-1]]
            value = value[:-1]
        elif "+" in value[10:] or "-" in value[10:]:  # an RFC 3339 offset: the seconds precede it
            value = re.split(r"[+-]", value[10:])[0]
    number = re.search(r"\.(\d+)$", value)
    return unit * (10.0 ** -len(number.group(1)) if number else 1.0)


@functools.lru_cache(maxsize=1024)  # a few distinct texts recur on every answer
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
    #: seconds of rounding in the reset as written (its last digit's unit)
    precision: float = 1.0

    @property
    def known(self) -> bool:
        return self.limit is not None or self.remaining is not None or self.reset_at is not None

    def as_dict(self) -> dict[str, Any]:
        return {"limit": self.limit, "remaining": self.remaining, "reset_at": self.reset_at}

    def level(self, at: float, window: float = WINDOW) -> float | None:
        """Room in this limit at ``at`` (units, fractional), as the provider enforces it: a bucket
        of ``limit`` refilled at ``limit / window`` per second (OpenAI's and Anthropic's
        per-minute limits). It is read from the reset (``limit`` minus what refills by then) and
        kept within what ``remaining`` (its floor) allows, so it is off by less than one unit
        however the reset was rounded. None when the limit, what remains or the reset is unknown.
        """
        if self.limit is None or self.remaining is None or self.reset_at is None:
            return None
        if self.limit <= 0:
            return None
        full_in = max(0.0, self.reset_at - at)
        level = self.limit - full_in * (self.limit / window)
        return float(min(max(level, self.remaining), self.remaining + 1, self.limit))

    def wait_for(self, need: float, at: float, window: float = WINDOW) -> float:
        """Seconds after ``at`` until ``need`` more fits (see ``level``): exactly the provider's
        next room for a precise report. 0 when it fits now, when it never fits (more than the
        limit) or when the report says too little; never past the reset."""
        level = self.level(at, window)
        if level is None or self.limit is None or self.reset_at is None:
            return 0.0
        if need <= level or need > self.limit:
            return 0.0
        rate = self.limit / window
        return max(0.0, min(self.reset_at - at, (need - level) / rate))

    def tolerance(self, window: float = WINDOW) -> float:
        """Units by which ``level`` may be off: the reset's rounding at the refill rate, and
        never more than one (``remaining`` bounds it)."""
        if not self.limit or self.limit <= 0:
            return 1.0
        return min(1.0, self.precision * self.limit / window) + 1e-3

    def level_after(self, at: float, seconds: float, window: float = WINDOW) -> float | None:
        """Room ``seconds`` after ``at``: ``level`` refilled at the provider's rate, up to the limit."""
        level = self.level(at, window)
        if level is None or self.limit is None:
            return None
        return min(float(self.limit), level + max(0.0, seconds) * self.limit / window)


@dataclass(frozen=True)
class ProviderRoom:
    """What a success's rate-limit headers say about the provider's own buckets (see settle).

    ``hold``: seconds until another call like the one just made fits them (0: it fits now).
    ``requests`` / ``tokens``: the room they will have when the hold ends (None: not said), each
    with the units it may be off by (the reset's rounding).
    """

    hold: float = 0.0
    requests: float | None = None
    tokens: float | None = None
    requests_tolerance: float = 1.0
    tokens_tolerance: float = 1.0


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
    #: A per-day request limit (Gemini's ``...PerDay...`` quota)
    day_requests: LimitState | None = None

    @property
    def empty(self) -> bool:
        return not (
            self.requests.known
            or self.tokens.known
            or self.retry_after is not None
            or self.day_requests is not None
        )

    def room_for(
        self, prompt_tokens: int, completion_tokens: int, now: float | None = None
    ) -> ProviderRoom:
        """The provider's own buckets, as this answer reported them, for another call like the
        one just made (1 request, its tokens): how long until it fits (``hold``, from ``now``),
        and how much room they will have then.

        The router's reservations keep a key within its configured limits; this catches the
        provider's buckets holding less than the router thinks (the key also used outside this
        router, or configured above its real limits), so the next call waits for room instead
        of earning a 429, and no more calls go at once than the provider has room for.
        """
        at = self.observed_at
        total = prompt_tokens + completion_tokens
        wait = max(self.requests.wait_for(1, at), self.tokens.wait_for(total, at))
        if self.input_tokens is not None:
            wait = max(wait, self.input_tokens.wait_for(prompt_tokens, at))
        if self.output_tokens is not None:
            wait = max(wait, self.output_tokens.wait_for(completion_tokens, at))
        elapsed = (time.time() if now is None else now) - at
        hold = max(0.0, wait - elapsed)
        return ProviderRoom(
            hold,
            self.requests.level_after(at, elapsed + hold),
            self.tokens.level_after(at, elapsed + hold),
            self.requests.tolerance(),
            self.tokens.tolerance(),
        )

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
        if self.day_requests is not None:
            out["day_requests"] = self.day_requests.as_dict()
        return out


def as_int(value: str | None) -> int | None:
    """A whole number from a header or body field (None: absent or not a number)."""
    if value is None:
        return None
    try:
        return int(float(value))
    except (ValueError, OverflowError):  # "abc", "inf"
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
        text = h.get(f"x-ratelimit-reset-{scope}")
        reset = parse_duration(text)
        return LimitState(
            as_int(h.get(f"x-ratelimit-limit-{scope}")),
            as_int(h.get(f"x-ratelimit-remaining-{scope}")),
            at + reset if reset is not None else None,
            text_precision(text),
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
        text = h.get(prefix + "reset")
        return LimitState(
            as_int(h.get(prefix + "limit")),
            as_int(h.get(prefix + "remaining")),
            parse_timestamp(text),
            text_precision(text),
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


def parse_rate_limits(
    provider: str, headers: Mapping[str, str], body: Any = None, now: float | None = None
) -> RateLimitSnapshot:
    """The snapshot of one answer of ``provider`` (openai, azure, anthropic or gemini)."""
    if provider == "anthropic":
        return parse_anthropic_headers(headers, now)
    if provider == "gemini":
        from router.providers.gemini_quota import parse_gemini_error  # it builds on this module

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
                per_day=snapshot.per_day,
                day_requests=snapshot.day_requests,
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
