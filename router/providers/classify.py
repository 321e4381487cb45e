"""Each provider's failure answers mapped onto the router's error classes.

429 ........................ RateLimitedError (retry_after from headers or body; scope minute/day)
401, 403 ................... ProviderAuthError (and Gemini's 400 API_KEY_INVALID)
400 context too long ....... ContextLengthExceededError
400 content policy ......... ContentFilteredError
other 4xx .................. BadRequestError
408 ........................ ProviderTimeoutError
529 ........................ OverloadedError
5xx ........................ ServerError
"""

from __future__ import annotations

import re
import time
from typing import Any

from kernel.errors import (
    BadRequestError,
    ContentFilteredError,
    ContextLengthExceededError,
    OverloadedError,
    ProviderAuthError,
    ProviderError,
    ProviderTimeoutError,
    RateLimitedError,
    ServerError,
)
from router.providers.gemini_quota import gemini_quota_details
from router.providers.ratelimits import RateLimitSnapshot, parse_duration
from router.providers.transport import CallContext

_TRY_AGAIN = re.compile(r"(?:try again|retry) in ([0-9][0-9hmsuµn.]*)", re.IGNORECASE)
_RETRY_SECONDS = re.compile(r"retry after (\d+(?:\.\d+)?) seconds?", re.IGNORECASE)
_PER_DAY = re.compile(r"per day|\(RPD\)|\(TPD\)|daily", re.IGNORECASE)
_CONTEXT = re.compile(
    r"maximum context length|context_length_exceeded|prompt is too long|exceed context limit"
    r"|context window"
    r"|input token count .* exceeds the maximum|too many tokens",
    re.IGNORECASE,
)


def _error_obj(body: Any) -> dict[str, Any]:
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {}


def _text(raw: bytes, limit: int = 300) -> str:
    return raw[:limit].decode("utf-8", "replace").strip()


def _retry_from_message(message: str) -> float | None:
    found = _TRY_AGAIN.search(message)
    if found:
        value = parse_duration(found.group(1).rstrip("."))
        if value is not None:
            return value
    seconds = _RETRY_SECONDS.search(message)
    return float(seconds.group(1)) if seconds else None


def _reset_wait(snapshot: RateLimitSnapshot | None, scope: str | None) -> float | None:
    """Seconds until the exhausted limit resets, from the reset headers."""
    if snapshot is None:
        return None
    now = time.time()
    states = {"requests": snapshot.requests, "tokens": snapshot.tokens}
    candidates = (
        [states[scope]] if scope in states else [s for s in states.values() if s.remaining == 0]
    )
    waits = [s.reset_at - now for s in candidates if s.reset_at is not None]
    return max(0.0, max(waits)) if waits else None


def build(
    cls: type[ProviderError],
    ctx: CallContext,
    status: int | None,
    label: str,
    message: str,
    snapshot: RateLimitSnapshot | None,
    **extra: Any,
) -> ProviderError:
    text = ctx.clean(f"{ctx.provider} {status or ''} {label}: {message}".replace("  ", " "))
    retry = extra.pop("retry_after", None)
    if retry is None and snapshot is not None:
        retry = snapshot.retry_after
    return cls(
        text,
        provider=ctx.provider,
        key=ctx.masked_key,
        status=status,
        retry_after=retry,
        rate_limits=snapshot,
        **extra,
    )


def _generic(
    status: int, ctx: CallContext, label: str, message: str, snapshot: RateLimitSnapshot | None
) -> ProviderError:
    if status in (401, 403):
        return build(ProviderAuthError, ctx, status, label, message, snapshot)
    if status == 408:
        return build(ProviderTimeoutError, ctx, status, label, message, snapshot)
    if status == 529:
        return build(OverloadedError, ctx, status, label, message, snapshot)
    if status >= 500:
        return build(ServerError, ctx, status, label, message, snapshot)
    if _CONTEXT.search(message):
        return build(ContextLengthExceededError, ctx, status, label, message, snapshot)
    return build(BadRequestError, ctx, status, label, message, snapshot)


def openai_error(
    status: int, body: Any, raw: bytes, snapshot: RateLimitSnapshot | None, ctx: CallContext
) -> ProviderError:
    """OpenAI's and Azure's ``{"error": {message, type, param, code}}`` answers."""
    error = _error_obj(body)
    message = str(error.get("message") or _text(raw) or "no error message")
    code = str(error.get("code") or "")
    kind = str(error.get("type") or "")
    label = code or kind or "error"
    if status == 429:
        retry = snapshot.retry_after if snapshot else None
        if retry is None:
            retry = _retry_from_message(message)
        if retry is None:
            retry = _reset_wait(snapshot, kind if kind in ("requests", "tokens") else None)
        day = code == "insufficient_quota" or bool(_PER_DAY.search(message))
        return build(
            RateLimitedError,
            ctx,
            status,
            label,
            message,
            snapshot,
            retry_after=retry,
            scope="day" if day else "minute",
        )
    if status == 400 or status == 404:
        raw_inner = error.get("innererror")
        inner: dict[str, Any] = raw_inner if isinstance(raw_inner, dict) else {}
        if (
            code in ("content_filter", "invalid_prompt", "content_policy_violation")
            or inner.get("code") == "ResponsibleAIPolicyViolation"
        ):
            return build(ContentFilteredError, ctx, status, label, message, snapshot)
        if code == "context_length_exceeded":
            return build(ContextLengthExceededError, ctx, status, label, message, snapshot)
    return _generic(status, ctx, label, message, snapshot)


def anthropic_error(
    status: int, body: Any, raw: bytes, snapshot: RateLimitSnapshot | None, ctx: CallContext
) -> ProviderError:
    """Anthropic's ``{"type": "error", "error": {type, message}}`` answers and stream errors."""
    error = _error_obj(body)
    message = str(error.get("message") or _text(raw) or "no error message")
    kind = str(error.get("type") or "error")
    if status == 429 or kind == "rate_limit_error":
        retry = snapshot.retry_after if snapshot else None
        if retry is None:
            retry = _reset_wait(snapshot, None)
        day = bool(_PER_DAY.search(message))
        return build(
            RateLimitedError,
            ctx,
            status,
            kind,
            message,
            snapshot,
            retry_after=retry,
            scope="day" if day else "minute",
        )
    if kind == "overloaded_error":
        return build(OverloadedError, ctx, status, kind, message, snapshot)
    if kind in ("authentication_error", "permission_error"):
        return build(ProviderAuthError, ctx, status, kind, message, snapshot)
    if kind == "api_error" and status < 500:
        return build(ServerError, ctx, status, kind, message, snapshot)
    return _generic(status, ctx, kind, message, snapshot)


def gemini_error(
    status: int, body: Any, raw: bytes, snapshot: RateLimitSnapshot | None, ctx: CallContext
) -> ProviderError:
    """Google RPC statuses: ``{"error": {code, message, status, details}}``."""
    error = _error_obj(body)
    message = str(error.get("message") or _text(raw) or "no error message")
    label = str(error.get("status") or "error")
    raw_details = error.get("details")
    details: list[Any] = raw_details if isinstance(raw_details, list) else []
    reasons = {str(d.get("reason")) for d in details if isinstance(d, dict) and d.get("reason")}
    if status == 429 or label == "RESOURCE_EXHAUSTED":
        delay, per_day, _ = gemini_quota_details(body)
        if delay is None:
            delay = snapshot.retry_after if snapshot else None
        if delay is None:
            delay = _retry_from_message(message)
        day = per_day or bool(re.search(r"PerDay", message))
        return build(
            RateLimitedError,
            ctx,
            status,
            label,
            message,
            snapshot,
            retry_after=delay,
            scope="day" if day else "minute",
        )
    if (
        "API_KEY_INVALID" in reasons
        or "api key not valid" in message.lower()
        or label in ("UNAUTHENTICATED", "PERMISSION_DENIED")
    ):
        return build(ProviderAuthError, ctx, status, label, message, snapshot)
    if status == 503:
        return build(ServerError, ctx, status, label, message, snapshot)
    return _generic(status, ctx, label, message, snapshot)
