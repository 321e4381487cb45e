"""The values of an answer's ``error_type``: one list, shared by the answers, metrics and gateway.

Each error class of kernel/errors.py names its ``error_type``; a failure that is not a
``RouterError`` answers ``internal_error``. ``ErrorType`` is that closed set, so mypy rejects a
misspelt type wherever answers are read (``answer["error_type"] == "rate_limted"`` fails the
check) and tests/router/test_answer_type.py checks that every error class's type is listed.
"""

from __future__ import annotations

from typing import Final, Literal, TypeGuard, get_args

from kernel.errors import RouterError

ErrorType = Literal[
    # no room: the pool's limits (always with ``retry_after``), or no key recovers by itself
    "rate_limited",
    "no_keys_available",
    "request_too_large",
    "model_not_available",
    # a USD budget (global, user, team, virtual key) would be passed (with ``retry_after``)
    "budget_exceeded",
    # the caller's request, refused before any provider was asked
    "invalid_request_error",
    # a provider's failure (the last one, after rotations and fallbacks)
    "provider_error",
    "auth",
    "bad_request",
    "context_length_exceeded",
    "content_filtered",
    "overloaded",
    "server_error",
    "timeout",
    "connection_error",
    "malformed_response",
    # the product's own parts
    "store_unavailable",
    "secret_store_error",
    "config_error",
    "key_not_found",
    "conversation_error",
    "conversation_too_large",
    "conversation_not_saved",
    "gateway_error",
    "router_error",
    # anything else (a bug): the answer still comes back, with this type
    "internal_error",
]

#: Every ``ErrorType``, for checks at run time.
ERROR_TYPES: Final[frozenset[str]] = frozenset(get_args(ErrorType))

#: What a failure that is not a ``RouterError`` (a bug) answers.
INTERNAL_ERROR: Final = "internal_error"


def is_error_type(value: object) -> TypeGuard[ErrorType]:
    return value in ERROR_TYPES


def error_type_of(error: BaseException) -> ErrorType:
    """The ``error_type`` an answer reports for ``error`` (``internal_error`` if not ours)."""
    value = error.error_type if isinstance(error, RouterError) else INTERNAL_ERROR
    return value if is_error_type(value) else INTERNAL_ERROR
