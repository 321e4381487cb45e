"""How a provider's answer becomes a key's health outcome (see lua/settle.lua).

success        the call worked: a probe closes its circuit, failures fade
neutral        the request's own fault (400, context length, content filter): the key is fine
rate_limited   429: the quota group cools down for what the provider said (or the backoff)
auth           401/403: the key is disabled until an operator reloads or replaces it
transient      5xx, 529, read timeouts, connections lost after sending: counts toward the breaker
unreachable    the call never reached the provider (refused, no route, DNS, TLS, connect timeout):
               everything reserved comes back, and the key cools down briefly with exponential
               backoff (UNREACHABLE_COOLDOWN_SECONDS), counting toward the breaker
cancelled      the caller went away mid-call: neither a success nor a failure of the key; the
               charge stays (the call may have reached the provider), a probe's slot is freed
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Literal

from kernel.errors import (
    BadRequestError,
    ProviderAuthError,
    ProviderConnectionError,
    ProviderError,
    RateLimitedError,
)

#: What a call's ending does to its key's health (the table above; lua/settle.lua's ``outcome``).
OutcomeKind = Literal[
    "success", "neutral", "rate_limited", "auth", "transient", "unreachable", "cancelled"
]


@dataclass(frozen=True)
class CallOutcome:
    """How one call ended, as its settle records it: the kind, and a 429's retry time and scope."""

    kind: OutcomeKind
    retry_after: float | None = None
    scope: str = "minute"
    error_class: str = ""


def outcome_of(error: BaseException | None) -> CallOutcome:
    """The outcome of a call that ended with ``error`` (None: it succeeded)."""
    if error is None:
        return CallOutcome("success")
    name = type(error).__name__
    if isinstance(error, ProviderConnectionError) and not error.reached_provider:
        return CallOutcome("unreachable", error_class=name)
    if isinstance(error, RateLimitedError):
        return CallOutcome("rate_limited", error.retry_after, error.scope, name)
    if isinstance(error, ProviderAuthError):
        return CallOutcome("auth", error_class=name)
    if isinstance(error, BadRequestError):
        return CallOutcome("neutral", error_class=name)
    if isinstance(error, ProviderError):
        return CallOutcome("transient", error_class=name)
    if isinstance(error, asyncio.CancelledError):
        return CallOutcome("cancelled", error_class=name)
    # anything else (a bug, a stream its reader abandoned) says nothing about the key
    return CallOutcome("neutral", error_class=name)
