"""Errors as OpenAI's clients expect them: the status code, and ``{"error": {...}}`` in its shape.

    {"error": {"message": "...", "type": "rate_limit_error", "param": null, "code": "rate_limit_exceeded"}}

The official SDKs turn the status into their exception classes (400 BadRequestError, 401
AuthenticationError, 403 PermissionDeniedError, 404 NotFoundError, 429 RateLimitError, 5xx
InternalServerError ...) and read ``Retry-After`` / ``retry-after-ms`` on a 429. A router answer
that failed maps by its ``error_type`` (kernel/errors.py): no room in the pool is a 429 with the
time the pool expects room; a provider's failure is a 502 (503 when overloaded, 504 when it timed
out), with ``Retry-After`` when the router knows when a key is expected back (every key's circuit
open: the next probe); a pool whose keys are all disabled is a 503 ``no_keys_available``; a model
no key serves is OpenAI's 404 ``model_not_found``; a request the provider called malformed is a
400 with the provider's (redacted) reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from kernel import jsonio
from kernel.masking import redact
from router.answers import Answer


@dataclass
class ApiError(Exception):
    """An error answer of the gateway: status, OpenAI's ``type``/``code``/``param``, message."""

    status: int
    message: str
    type: str = "invalid_request_error"
    code: str | None = None
    param: str | None = None
    retry_after: float | None = None

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": redact(self.message),
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }

    def headers(self) -> dict[str, str]:
        if self.retry_after is None:
            return {}
        return {
            "Retry-After": str(max(1, math.ceil(self.retry_after))),
            "retry-after-ms": str(max(1, math.ceil(self.retry_after * 1000))),
        }

    def response(self, headers: dict[str, str] | None = None) -> web.Response:
        return web.Response(
            status=self.status,
            body=jsonio.dumps(self.body()),
            content_type="application/json",
            headers={**self.headers(), **(headers or {})},
        )


def bad_request(message: str, param: str | None = None, code: str | None = None) -> ApiError:
    return ApiError(400, message, param=param, code=code)


def unauthorized(message: str) -> ApiError:
    return ApiError(401, message, type="authentication_error", code="invalid_api_key")


def forbidden(message: str, code: str = "permission_denied", param: str | None = None) -> ApiError:
    return ApiError(403, message, type="permission_error", code=code, param=param)


def not_found(message: str, code: str = "not_found", param: str | None = None) -> ApiError:
    return ApiError(404, message, code=code, param=param)


def limited(message: str, retry_after: float | None, code: str = "rate_limit_exceeded") -> ApiError:
    return ApiError(429, message, type="rate_limit_error", code=code, retry_after=retry_after)


def unavailable(
    message: str, code: str = "service_unavailable", retry_after: float | None = None
) -> ApiError:
    return ApiError(503, message, type="server_error", code=code, retry_after=retry_after)


#: Retry-After of a 503 ``store_unavailable`` (Redis unreachable: closed failure mode, or a
#: virtual key that cannot be verified while degraded).
STORE_RETRY_SECONDS = 1.0

#: error_type of a failed answer -> (status, OpenAI type, code).
_BY_ERROR_TYPE: dict[str, tuple[int, str, str]] = {
    "bad_request": (400, "invalid_request_error", "invalid_request"),
    "context_length_exceeded": (400, "invalid_request_error", "context_length_exceeded"),
    "content_filtered": (400, "invalid_request_error", "content_filter"),
    "request_too_large": (400, "invalid_request_error", "request_too_large"),
    "invalid_request_error": (400, "invalid_request_error", "invalid_request"),
    "auth": (502, "upstream_error", "upstream_auth_failed"),
    "server_error": (502, "upstream_error", "upstream_server_error"),
    "connection_error": (502, "upstream_error", "upstream_connection_error"),
    "malformed_response": (502, "upstream_error", "upstream_malformed_response"),
    "provider_error": (502, "upstream_error", "upstream_error"),
    "secret_store_error": (502, "upstream_error", "secret_store_error"),
    "overloaded": (503, "server_error", "upstream_overloaded"),
    "store_unavailable": (503, "server_error", "store_unavailable"),
    "timeout": (504, "upstream_error", "upstream_timeout"),
    "no_keys_available": (503, "server_error", "no_keys_available"),
    "model_not_available": (404, "invalid_request_error", "model_not_found"),
}


def from_answer(answer: Answer) -> ApiError:
    """The error answer for a router answer whose ``success`` is False."""
    error_type = str(answer.get("error_type") or "internal_error")
    message = str(answer.get("error") or "the request failed")
    if error_type == "rate_limited":
        retry_after = answer.get("retry_after")
        if retry_after is None:  # no key recovers by itself (all disabled): not the client's turn
            return unavailable(message, code="no_keys_available")
        return limited(message, float(retry_after))
    status, kind, code = _BY_ERROR_TYPE.get(error_type, (500, "server_error", "internal_error"))
    retry_after = answer.get("retry_after") if status >= 500 else None
    if error_type == "store_unavailable":
        retry_after = STORE_RETRY_SECONDS
    return ApiError(
        status,
        message,
        type=kind,
        code=code,
        param="model" if error_type == "model_not_available" else None,
        retry_after=float(retry_after) if isinstance(retry_after, int | float) else None,
    )
