"""The official SDKs' exceptions mapped onto the router's error classes (for leases).

    openai / anthropic APIStatusError (429, 401, 403, 5xx, 529 ...)  -> the provider's answer
        classified exactly like the router's own calls (router/providers/classify.py): status,
        body and rate-limit headers (``retry-after`` ...), so RateLimitedError has retry_after
    openai / anthropic APITimeoutError ........ ProviderTimeoutError
    openai / anthropic APIConnectionError ..... ProviderConnectionError (``reached_provider``
                                                False when the connection was never made)
    google.genai.errors.APIError (ClientError, ServerError) -> classified like the above
    httpx (httpx2) / aiohttp timeouts and connection errors (google-genai raises them unwrapped) -> the same
    anything else ............................. None: not a provider's failure

The SDK modules are never imported here: an exception of an SDK means that SDK is loaded, so
each check looks it up in ``sys.modules`` (none of the SDKs is a dependency of the router).
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import aiohttp

from kernel.errors import (
    ProviderConnectionError,
    ProviderError,
    ProviderTimeoutError,
)
from router.providers.classify import anthropic_error, gemini_error, openai_error
from router.providers.ratelimits import parse_rate_limits
from router.providers.transport import CallContext, translate

__all__ = ["provider_error_of"]

_CLASSIFY = {
    "openai": openai_error,
    "azure": openai_error,
    "anthropic": anthropic_error,
    "gemini": gemini_error,
}


def provider_error_of(exc: BaseException, provider: str, secret: str) -> ProviderError | None:
    """The router's error for ``exc`` raised by an SDK call of ``provider`` made with
    ``secret`` (masked in every message), or None when ``exc`` is no provider failure."""
    if isinstance(exc, ProviderError):
        return exc
    ctx = CallContext(provider, secret)
    status = _status_error(exc, ctx)
    if status is not None:
        return status
    return _transport_error(exc, ctx)


def _status_error(exc: BaseException, ctx: CallContext) -> ProviderError | None:
    """An answer of the provider with an error status (openai, anthropic, google-genai)."""
    for sdk in ("openai", "anthropic"):
        module = sys.modules.get(sdk)
        if module is not None and isinstance(exc, module.APIStatusError):
            return _classify(ctx, exc.status_code, exc.response, getattr(exc, "body", None))
    errors = sys.modules.get("google.genai.errors")
    if errors is not None and isinstance(exc, errors.APIError):
        return _classify(ctx, int(exc.code or 0), exc.response, exc.details)
    return None


def _classify(ctx: CallContext, status: int, response: Any, fallback: Any) -> ProviderError:
    headers = getattr(response, "headers", None) or {}
    raw, body = _body(response, fallback)
    snapshot = parse_rate_limits(ctx.provider, headers, body)
    return _CLASSIFY.get(ctx.provider, openai_error)(status, body, raw, snapshot, ctx)


def _body(response: Any, fallback: Any) -> tuple[bytes, Any]:
    """The answer's raw body and JSON (the SDK's parsed body when the response is not read)."""
    raw = b""
    try:
        raw = bytes(response.content) if response is not None else b""
    except Exception:  # a stream's response not read (httpx.ResponseNotRead), or no content
        raw = b""
    if raw:
        try:
            return raw, json.loads(raw)
        except ValueError:
            return raw, None
    if fallback is None:
        return raw, None
    return json.dumps(fallback, default=str).encode(), fallback


def _transport_error(exc: BaseException, ctx: CallContext) -> ProviderError | None:
    """No answer: a timeout, or a connection not made or lost."""
    cause = exc.__cause__ or exc.__context__
    for sdk in ("openai", "anthropic"):
        module = sys.modules.get(sdk)
        if module is None:
            continue
        if isinstance(exc, module.APITimeoutError):
            return _timeout(ctx, exc)
        if isinstance(exc, module.APIConnectionError):
            return _connection(ctx, exc, reached=not _never_connected(cause))
    for httpx in _httpx():
        if isinstance(exc, httpx.TransportError):
            if isinstance(exc, httpx.TimeoutException) and not _never_connected(exc):
                return _timeout(ctx, exc)
            return _connection(ctx, exc, reached=not _never_connected(exc))
    if isinstance(exc, (aiohttp.ClientError, asyncio.TimeoutError)):
        return translate(exc, ctx)
    return None


def _never_connected(exc: BaseException | None) -> bool:
    """The request never left: the connection could not be made."""
    for httpx in _httpx():
        if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)):
            return True
    return isinstance(exc, (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError))


def _httpx() -> list[Any]:
    """The httpx modules loaded (the SDKs use ``httpx`` or its fork ``httpx2``)."""
    return [m for m in (sys.modules.get("httpx"), sys.modules.get("httpx2")) if m is not None]


def _timeout(ctx: CallContext, exc: BaseException) -> ProviderError:
    detail = ctx.clean(f"{type(exc).__name__}: {exc}")
    return ProviderTimeoutError(
        f"{ctx.provider}: no answer in time ({detail})", provider=ctx.provider, key=ctx.masked_key
    )


def _connection(ctx: CallContext, exc: BaseException, *, reached: bool) -> ProviderError:
    detail = ctx.clean(f"{type(exc).__name__}: {exc}")
    what = "connection lost after the request was sent" if reached else "cannot connect"
    return ProviderConnectionError(
        f"{ctx.provider}: {what} ({detail})",
        reached_provider=reached,
        provider=ctx.provider,
        key=ctx.masked_key,
    )
