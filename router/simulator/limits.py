"""Rate limits as the providers enforce them: token buckets, an optional strict window, a daily cap.

One :class:`QuotaState` per quota group and model. Requests and tokens are token buckets whose
capacity is the per-minute limit and which refill continuously at ``limit / 60`` per second (the
model Anthropic documents, and how OpenAI enforces per-minute limits at sub-minute granularity).
``strict`` adds a sliding window: no 60-second window may hold more admissions than the limit.
Requests per day count per calendar day in the provider's time zone.

Token accounting follows the providers: admission charges the prompt plus ``max_tokens`` (when
given); :meth:`QuotaState.settle` then charges the actual total, refunding the unused part of
``max_tokens`` when ``refund_unused`` is on, or only adding any excess when it is off. Separate
input and output token limits (``itpm``/``otpm``, Anthropic's) are buckets of their own: the
prompt is charged to the input one, ``max_tokens`` to the output one, each corrected at settle.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

INF = math.inf


class TokenBucket:
    """Capacity ``limit``, refilled continuously over ``window`` seconds; the level may go negative
    (debt) when a completion turns out larger than what was charged at admission."""

    __slots__ = ("capacity", "level", "rate", "stamp")

    def __init__(self, limit: int, now: float, window: float) -> None:
        self.capacity = float(limit)
        self.rate = limit / window
        self.level = float(limit)
        self.stamp = now

    def refill(self, now: float) -> None:
        if now > self.stamp:
            self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
            self.stamp = now

    def wait_for(self, amount: float) -> float:
        """Seconds until ``amount`` is available (infinite when it exceeds the capacity)."""
        if amount > self.capacity:
            return INF
        return max(0.0, (amount - self.level) / self.rate)

    def full_in(self) -> float:
        return max(0.0, (self.capacity - self.level) / self.rate)


class SlidingWindow:
    """Admissions of the last ``window`` seconds: entries ``[time, tokens, alive]``."""

    __slots__ = ("count", "entries", "tokens", "window")

    def __init__(self, window: float) -> None:
        self.window = window
        self.entries: deque[list[float]] = deque()
        self.count = 0
        self.tokens = 0.0

    def prune(self, now: float) -> None:
        horizon = now - self.window
        entries = self.entries
        while entries and entries[0][0] <= horizon:
            entry = entries.popleft()
            entry[2] = 0.0
            self.count -= 1
            self.tokens -= entry[1]

    def add(self, now: float, tokens: float) -> list[float]:
        entry = [now, tokens, 1.0]
        self.entries.append(entry)
        self.count += 1
        self.tokens += tokens
        return entry

    def adjust(self, entry: list[float], tokens: float) -> None:
        if entry[2]:
            self.tokens += tokens - entry[1]
        entry[1] = tokens

    def wait_for_requests(self, limit: int, now: float) -> float:
        """Seconds until one more admission fits under ``limit``."""
        excess = self.count + 1 - limit
        if excess <= 0:
            return 0.0
        return self.entries[excess - 1][0] + self.window - now

    def wait_for_tokens(self, limit: int, cost: float, now: float) -> float:
        """Seconds until ``cost`` more tokens fit under ``limit`` (infinite if they never can)."""
        needed = self.tokens + cost - limit
        if needed <= 0:
            return 0.0
        if cost > limit:
            return INF
        for entry in self.entries:
            needed -= entry[1]
            if needed <= 0:
                return max(0.0, entry[0] + self.window - now)
        return INF


@dataclass(frozen=True)
class Limits:
    rpm: int | None = None
    tpm: int | None = None
    rpd: int | None = None
    itpm: int | None = None
    otpm: int | None = None

    @property
    def empty(self) -> bool:
        return not (self.rpm or self.tpm or self.rpd or self.itpm or self.otpm)


@dataclass(frozen=True)
class Rejection:
    """Why an admission failed. ``scope``: ``requests``, ``tokens``, ``input_tokens``,
    ``output_tokens`` or ``requests_per_day``."""

    scope: str
    retry_after: float
    limit: int
    used: float
    requested: float
    too_large: bool = False

    @property
    def per_day(self) -> bool:
        return self.scope == "requests_per_day"


@dataclass
class Ticket:
    """An admitted request: what it was charged, so :meth:`QuotaState.settle` can correct it."""

    state: QuotaState | None
    charged: float
    entry: list[float] | None = None
    settled: bool = False
    #: the part of ``charged`` that is output (``max_tokens``)
    charged_output: float = 0.0


@dataclass(frozen=True)
class LimitView:
    """Limit, remaining and seconds to full refill of requests and tokens (for response headers)."""

    requests_limit: int | None
    requests_remaining: int | None
    requests_reset: float
    tokens_limit: int | None
    tokens_remaining: int | None
    tokens_reset: float
    input_limit: int | None = None
    input_remaining: int | None = None
    input_reset: float = 0.0
    output_limit: int | None = None
    output_remaining: int | None = None
    output_reset: float = 0.0


class QuotaState:
    """The limits of one quota group and model, and their current state."""

    def __init__(self, limits: Limits, *, now: float, window: float, strict: bool, tz: str) -> None:
        self.limits = limits
        self.window = window
        self.requests = TokenBucket(limits.rpm, now, window) if limits.rpm else None
        self.tokens = TokenBucket(limits.tpm, now, window) if limits.tpm else None
        self.input = TokenBucket(limits.itpm, now, window) if limits.itpm else None
        self.output = TokenBucket(limits.otpm, now, window) if limits.otpm else None
        self.strict = SlidingWindow(window) if strict and (limits.rpm or limits.tpm) else None
        self.tz = ZoneInfo(tz)
        self.day = ""
        self.day_count = 0

    def _refill(self, now: float) -> None:
        if self.requests is not None:
            self.requests.refill(now)
        for bucket in (self.tokens, self.input, self.output):
            if bucket is not None:
                bucket.refill(now)
        if self.strict is not None:
            self.strict.prune(now)

    def _check_day(self, wall: float) -> Rejection | None:
        if self.limits.rpd is None:
            return None
        local = datetime.fromtimestamp(wall, self.tz)
        today = local.date().isoformat()
        if today != self.day:
            self.day, self.day_count = today, 0
        if self.day_count < self.limits.rpd:
            return None
        midnight = datetime.combine(local.date() + timedelta(days=1), datetime.min.time(), self.tz)
        return Rejection(
            "requests_per_day", midnight.timestamp() - wall, self.limits.rpd, self.day_count, 1
        )

    def _check_minute(self, now: float, cost: float) -> Rejection | None:
        limits, strict = self.limits, self.strict
        if self.requests is not None and limits.rpm is not None:
            wait = self.requests.wait_for(1)
            if strict is not None:
                wait = max(wait, strict.wait_for_requests(limits.rpm, now))
            if wait > 0:
                used = limits.rpm - self.requests.level
                return Rejection("requests", wait, limits.rpm, used, 1)
        if self.tokens is not None and limits.tpm is not None:
            wait = self.tokens.wait_for(cost)
            if strict is not None:
                wait = max(wait, strict.wait_for_tokens(limits.tpm, cost, now))
            if wait > 0:
                used = limits.tpm - self.tokens.level
                if wait == INF:
                    return Rejection("tokens", self.window, limits.tpm, used, cost, too_large=True)
                return Rejection("tokens", wait, limits.tpm, used, cost)
        return None

    def _check_io(self, prompt: float, output: float) -> Rejection | None:
        for scope, bucket, cost in (
            ("input_tokens", self.input, prompt),
            ("output_tokens", self.output, output),
        ):
            if bucket is None or cost <= 0:
                continue
            wait = bucket.wait_for(cost)
            if wait > 0:
                limit, used = int(bucket.capacity), bucket.capacity - bucket.level
                if wait == INF:
                    return Rejection(scope, self.window, limit, used, cost, too_large=True)
                return Rejection(scope, wait, limit, used, cost)
        return None

    def admit(
        self, now: float, wall: float, cost: float, output: float = 0.0
    ) -> Ticket | Rejection:
        """Charge one request of ``cost`` tokens (``output`` of them its ``max_tokens``), or say
        which limit refuses it and for how long."""
        self._refill(now)
        refused = (
            self._check_day(wall)
            or self._check_minute(now, cost)
            or self._check_io(cost - output, output)
        )
        if refused is not None:
            return refused
        if self.requests is not None:
            self.requests.level -= 1
        if self.tokens is not None:
            self.tokens.level -= cost
        if self.input is not None:
            self.input.level -= cost - output
        if self.output is not None:
            self.output.level -= output
        self.day_count += 1
        entry = self.strict.add(now, cost) if self.strict is not None else None
        return Ticket(self, cost, entry, charged_output=output)

    def settle(
        self, ticket: Ticket, final: float, now: float, final_output: float | None = None
    ) -> None:
        """Replace the admission charge by ``final`` tokens, ``final_output`` of them output
        (None: the output charged at admission; the caller applies the policy)."""
        delta = final - ticket.charged
        if self.tokens is not None and delta:
            self.tokens.refill(now)
            self.tokens.level = min(self.tokens.capacity, self.tokens.level - delta)
        out = ticket.charged_output if final_output is None else final_output
        out_delta = out - ticket.charged_output
        for bucket, change in ((self.input, delta - out_delta), (self.output, out_delta)):
            if bucket is not None and change:
                bucket.refill(now)
                bucket.level = min(bucket.capacity, bucket.level - change)
        if self.strict is not None and ticket.entry is not None:
            self.strict.adjust(ticket.entry, final)

    def view(self, now: float) -> LimitView:
        self._refill(now)
        req, tok, inp, out = self.requests, self.tokens, self.input, self.output
        return LimitView(
            requests_limit=self.limits.rpm,
            requests_remaining=max(0, math.floor(req.level)) if req else None,
            requests_reset=req.full_in() if req else 0.0,
            tokens_limit=self.limits.tpm,
            tokens_remaining=max(0, math.floor(tok.level)) if tok else None,
            tokens_reset=tok.full_in() if tok else 0.0,
            input_limit=self.limits.itpm,
            input_remaining=max(0, math.floor(inp.level)) if inp else None,
            input_reset=inp.full_in() if inp else 0.0,
            output_limit=self.limits.otpm,
            output_remaining=max(0, math.floor(out.level)) if out else None,
            output_reset=out.full_in() if out else 0.0,
        )
