"""Errors as OpenAI's clients expect them: the status code, and ``{"error": {...}}`` in its shape.

    {"error": {"message": "...", "type": "rate_limit_error", "param": null, "code": "rate_limit_exceeded"}}

The official SDKs turn the status into their exception classes (400 BadRequestError, 401
AuthenticationError, 403 PermissionDeniedError, 404 NotFoundError, 429 RateLimitError, 5xx
InternalServerError ...) and read ``Retry-After`` / ``retry-after-ms`` on a 429. An error answer
is a :class:`~router.errors.GatewayError`. A router answer that failed maps by the class of its
error (``error_class`` of its ``error_type``, then up that class's bases in ``BY_CLASS``): no
room in the pool is a 429 with the time the pool expects room; a provider's failure is a 502 (503
when overloaded, 504 when it timed out), with ``Retry-After`` when the router knows when a key is
expected back (every key's circuit open: the next probe); a pool whose keys are all disabled is a
503 ``no_keys_available``; a model no key serves is OpenAI's 404 ``model_not_found``; a request
the provider called malformed is a 400 with the provider's (redacted) reason.
"""

from __future__ import annotations

from typing import NamedTuple

from aiohttp import web

from kernel import jsonio
from kernel.errors import (
    AllKeysExhaustedError,
    BadRequestError,
    BudgetExceededError,
    CapacityError,
    ClientRequestError,
    ContentFilteredError,
    ContextLengthExceededError,
    GatewayError,
    MalformedResponseError,
    ModelNotAvailableError,
    OverloadedError,
    ProviderAuthError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeoutError,
    RateLimitedError,
    RequestTooLargeError,
    RouterError,
    SecretStoreError,
    ServerError,
    StoreError,
    error_class,
)
from router.answers import Answer


def respond(error: GatewayError, headers: dict[str, str] | None = None) -> web.Response:
    """The HTTP response of an error answer (``headers`` added to its own)."""
    return web.Response(
        status=error.status,
        body=jsonio.dumps(error.body()),
        content_type="application/json",
        headers={**error.headers(), **(headers or {})},
    )


def bad_request(message: str, param: str | None = None, code: str | None = None) -> GatewayError:
    return GatewayError(400, message, param=param, code=code)


def unauthorized(message: str) -> GatewayError:
    return GatewayError(401, message, type="authentication_error", code="invalid_api_key")


def forbidden(
    message: str, code: str = "permission_denied", param: str | None = None
) -> GatewayError:
    return GatewayError(403, message, type="permission_error", code=code, param=param)


def not_found(message: str, code: str = "not_found", param: str | None = None) -> GatewayError:
    return GatewayError(404, message, code=code, param=param)


def limited(
    message: str, retry_after: float | None, code: str = "rate_limit_exceeded"
) -> GatewayError:
    return GatewayError(429, message, type="rate_limit_error", code=code, retry_after=retry_after)


def unavailable(
    message: str, code: str = "service_unavailable", retry_after: float | None = None
) -> GatewayError:
    return GatewayError(503, message, type="server_error", code=code, retry_after=retry_after)


#: Retry-After of a 503 ``store_unavailable`` (Redis unreachable: closed failure mode, or a
#: virtual key that cannot be verified while degraded).
STORE_RETRY_SECONDS = 1.0


class Wire(NamedTuple):
    """How an error class answers over HTTP: status, OpenAI's type and code, the parameter it
    names, and a fixed Retry-After (else a 5xx carries the answer's ``retry_after``)."""

    status: int
    type: str
    code: str
    param: str | None = None
    retry_after: float | None = None


_INVALID = "invalid_request_error"
_UPSTREAM = "upstream_error"

#: Error class -> its HTTP answer; a class not listed answers as its nearest listed base.
BY_CLASS: dict[type[BaseException], Wire] = {
    RouterError: Wire(500, "server_error", "internal_error"),
    BadRequestError: Wire(400, _INVALID, "invalid_request"),
    ContextLengthExceededError: Wire(400, _INVALID, "context_length_exceeded"),
    ContentFilteredError: Wire(400, _INVALID, "content_filter"),
    RequestTooLargeError: Wire(400, _INVALID, "request_too_large"),
    ClientRequestError: Wire(400, _INVALID, "invalid_request"),
    ModelNotAvailableError: Wire(404, _INVALID, "model_not_found", param="model"),
    CapacityError: Wire(429, "rate_limit_error", "rate_limit_exceeded"),
    BudgetExceededError: Wire(429, "insufficient_quota", "budget_exceeded"),
    RateLimitedError: Wire(429, "rate_limit_error", "rate_limit_exceeded"),
    ProviderError: Wire(502, _UPSTREAM, "upstream_error"),
    ProviderAuthError: Wire(502, _UPSTREAM, "upstream_auth_failed"),
    ServerError: Wire(502, _UPSTREAM, "upstream_server_error"),
    ProviderConnectionError: Wire(502, _UPSTREAM, "upstream_connection_error"),
    MalformedResponseError: Wire(502, _UPSTREAM, "upstream_malformed_response"),
    SecretStoreError: Wire(502, _UPSTREAM, "secret_store_error"),
    OverloadedError: Wire(503, "server_error", "upstream_overloaded"),
    StoreError: Wire(503, "server_error", "store_unavailable", retry_after=STORE_RETRY_SECONDS),
    ProviderTimeoutError: Wire(504, _UPSTREAM, "upstream_timeout"),
}


def wire_of(cls: type[BaseException]) -> Wire:
    """The HTTP answer of an error class: its own row, else its nearest base's."""
    for base in cls.__mro__:
        wire = BY_CLASS.get(base)
        if wire is not None:
            return wire
    return BY_CLASS[RouterError]


def from_answer(answer: Answer) -> GatewayError:
    """The error answer for a router answer whose ``success`` is False."""
    error_type = str(answer.get("error_type") or "internal_error")
    message = str(answer.get("error") or "the request failed")
    wire = wire_of(error_class(error_type))
    given = answer.get("retry_after")
    retry_after = float(given) if isinstance(given, int | float) else None
    if wire.code == "budget_exceeded":  # spent until the period resets: Retry-After says when
        return GatewayError(429, message, wire.type, wire.code, None, retry_after)
    if wire.status == 429:
        if retry_after is None:  # no key recovers by itself (all disabled): not the client's turn
            return unavailable(message, code=AllKeysExhaustedError.other_error_types[0])
        return limited(message, retry_after)
    if wire.retry_after is not None:
        retry_after = wire.retry_after
    elif wire.status < 500:
        retry_after = None
    return GatewayError(wire.status, message, wire.type, wire.code, wire.param, retry_after)
