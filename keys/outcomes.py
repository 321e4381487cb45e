"""How a provider's answer becomes a key's health outcome (see lua/settle.lua).

success        the call worked: a probe closes its circuit, failures fade
neutral        the request's own fault (400, context length, content filter): the key is fine
rate_limited   429: the quota group cools down for what the provider said (or the backoff)
auth           401/403: the key is disabled until an operator reloads or replaces it
transient      5xx, 529, timeouts, connection resets: counts toward the circuit breaker
release        the call never left (connection refused): everything reserved comes back
"""

from __future__ import annotations

from dataclasses import dataclass

from router.errors import (
    BadRequestError,
    ProviderAuthError,
    ProviderConnectionError,
    ProviderError,
    RateLimitedError,
)


@dataclass(frozen=True)
class Outcome:
    kind: str  # success | neutral | rate_limited | auth | transient | release
    retry_after: float | None = None
    scope: str = "minute"
    error_class: str = ""


def outcome_of(error: BaseException | None) -> Outcome:
    """The outcome of a call that ended with ``error`` (None: it succeeded)."""
    if error is None:
        return Outcome("success")
    name = type(error).__name__
    if isinstance(error, ProviderConnectionError) and not error.reached_provider:
        return Outcome("release", error_class=name)
    if isinstance(error, RateLimitedError):
        return Outcome("rate_limited", error.retry_after, error.scope, name)
    if isinstance(error, ProviderAuthError):
        return Outcome("auth", error_class=name)
    if isinstance(error, BadRequestError):
        return Outcome("neutral", error_class=name)
    if isinstance(error, ProviderError):
        return Outcome("transient", error_class=name)
    # anything else (a bug, a cancelled call) says nothing about the key
    return Outcome("neutral", error_class=name)
