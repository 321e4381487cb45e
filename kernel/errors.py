"""The one exception hierarchy of the product.

    RouterError                         base of everything raised on purpose
    ├── ConfigError                     bad keys.json / environment; names file, entry and field
    │   └── KeyNotFoundError            no key with that id in the pool
    ├── StoreError                      the Redis (or embedded) store failed or is unreachable
    ├── SecretStoreError                a secret backend failed; names backend, key id and cause
    ├── CapacityError                   no key can take the request now
    │   ├── AllKeysExhaustedError       every key is busy or unhealthy; says why and until when
    │   │                               (``rate_limited``; ``no_keys_available`` when no key
    │   │                               recovers by itself; ``upstream``: the failure that
    │   │                               opened every key's circuit)
    │   └── RequestTooLargeError        the estimate is larger than any key's burst: never fits
    ├── ModelNotAvailableError          no configured key serves the model; names those served
    ├── BudgetExceededError             a USD budget (global, user, team, virtual key) would be
    │                                   passed; says which, how much, and when it resets
    ├── AdmissionRefusedError           the gateway's request limits (user, global, virtual
    │                                   key) refused the call its reservation carried
    ├── ConversationError               conversation history problems
    │   ├── ConversationTooLargeError   a conversation hit its size cap (trimming disabled)
    │   └── ConversationNotSavedError   an answer was produced but the turn could not be stored
    ├── ClientRequestError              a caller's request is malformed (gateway: 400)
    ├── GatewayError                    an error answer of the gateway: HTTP status, OpenAI's
    │                                   type/code/param, Retry-After (router/gateway/errors.py
    │                                   maps the other errors to it by class)
    └── ProviderError                   a provider refused or failed a call
        ├── RateLimitedError            429; carries retry_after and whether per-minute or per-day
        ├── ProviderAuthError           401/403; the key is disabled until replaced
        ├── BadRequestError             400 that is the request's fault (no rotation)
        │   ├── ContextLengthExceededError
        │   └── ContentFilteredError
        ├── OverloadedError             Anthropic 529 and similar
        ├── ServerError                 5xx
        ├── ProviderTimeoutError        no answer in time
        ├── ProviderConnectionError     connection refused / reset (``reached_provider`` says if sent)
        └── MalformedResponseError      an answer that could not be parsed

Third-party exceptions (redis, aiohttp, hvac, boto3, azure) are translated at the boundary that
calls them, with ``raise ... from exc``. No message ever contains a secret: callers pass masked
identifiers only, and the logging pipeline masks anything that still looks like a key.

Size: the one hierarchy stays one module, read as one tree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from kernel.masking import redact


class RouterError(Exception):
    """Base of every error this product raises on purpose."""

    error_type: str = "router_error"
    #: Other ``error_type`` values an instance may answer (decided by its state).
    other_error_types: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"error": str(self), "error_type": self.error_type}


class ConfigError(RouterError):
    """Invalid configuration. The message names the place: source (file or variable), entry, field."""

    error_type = "config_error"

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        entry: str | int | None = None,
        field: str | None = None,
    ) -> None:
        self.source = source
        self.entry = entry
        self.field = field
        self.reason = message
        super().__init__(self._compose(message))

    def _compose(self, message: str) -> str:
        where = []
        if self.source:
            where.append(str(self.source))
        if self.entry is not None:
            where.append(
                f"entry {self.entry!r}" if isinstance(self.entry, str) else f"entry #{self.entry}"
            )
        if self.field:
            where.append(f"field {self.field!r}")
        return f"{', '.join(where)}: {message}" if where else message


class KeyNotFoundError(ConfigError):
    """An operation named a key id the pool does not have."""

    error_type = "key_not_found"

    def __init__(self, key_id: str) -> None:
        self.key_id = key_id
        super().__init__(f"unknown key id {key_id!r}", field="key_id")


class StoreError(RouterError):
    """The Redis store (or the embedded store) failed or cannot be reached."""

    error_type = "store_unavailable"


class SecretStoreError(RouterError):
    """A secret could not be read. Names the backend, the key id and the cause, never the secret.

    ``cause`` is one of: ``not_found``, ``denied``, ``unreachable``, ``malformed``, ``config``.
    """

    error_type = "secret_store_error"

    def __init__(self, backend: str, key_id: str | None, cause: str, detail: str = "") -> None:
        self.backend = backend
        self.key_id = key_id
        self.cause = cause
        self.detail = detail
        target = f" for key {key_id!r}" if key_id else ""
        tail = f": {detail}" if detail else ""
        super().__init__(f"Cannot retrieve secret{target} from {backend} ({cause}){tail}")


class CapacityError(RouterError):
    """No key can take this request now."""

    error_type = "rate_limited"


@dataclass(frozen=True)
class KeyUnavailability:
    """Why one key cannot serve now, and until when (unix time; None: until an operator acts)."""

    key_id: str
    reason: str
    until: float | None = None


class AllKeysExhaustedError(CapacityError):
    """Every candidate key is out of capacity or unhealthy.

    ``retry_at`` is the earliest unix time at which a key is expected to have room (None when no key
    will recover by itself, for example all are disabled for auth failures), ``now`` the store's
    time it was computed at: ``retry_after`` is their difference, whatever the host's clock.
    Its ``error_type`` is ``rate_limited`` only with a retry time, else ``no_keys_available``.
    ``upstream``: when every key is out because its circuit opened on provider failures, the
    latest such failure (its class says what happened upstream), with ``retry_after`` set to
    the time until the next probe.
    """

    other_error_types = ("no_keys_available",)

    def __init__(
        self,
        model: str,
        *,
        retry_at: float | None,
        now: float,
        reason: str = "",
        keys: list[KeyUnavailability] | None = None,
        upstream: ProviderError | None = None,
    ) -> None:
        self.model = model
        self.retry_at = retry_at
        self.now = now
        self.reason = reason
        self.keys = list(keys or [])
        self.upstream = upstream
        self.error_type = "rate_limited" if retry_at is not None else "no_keys_available"
        when = (
            f"retry in {self.retry_after:.2f}s"
            if retry_at is not None
            else "no key recovers by itself"
        )
        why = f" ({reason})" if reason else ""
        super().__init__(f"No keys with available capacity for model {model!r}{why}; {when}")

    @property
    def retry_after(self) -> float | None:
        if self.retry_at is None:
            return None
        return max(0.0, self.retry_at - self.now)

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out["retry_after"] = self.retry_after
        out["keys"] = [k.__dict__ for k in self.keys]
        return out


class RequestTooLargeError(CapacityError):
    """The request needs more tokens than any key's burst allows: waiting would never help."""

    error_type = "request_too_large"

    def __init__(self, model: str, tokens: int, max_tokens: int) -> None:
        self.model = model
        self.tokens = tokens
        self.max_tokens = max_tokens
        super().__init__(
            f"Request needs {tokens} tokens but the largest burst of any key for model {model!r} "
            f"is {max_tokens}; it can never fit"
        )


class ModelNotAvailableError(RouterError):
    """No configured key serves the requested model (gateway: 404 ``model_not_found``)."""

    error_type = "model_not_available"
    #: Served models named in the message at most.
    LISTED = 20

    def __init__(self, model: str, served: list[str]) -> None:
        self.model = model
        self.served = sorted(served)
        shown = ", ".join(self.served[: self.LISTED]) or "none"
        more = (
            f" and {len(self.served) - self.LISTED} more" if len(self.served) > self.LISTED else ""
        )
        super().__init__(
            f"no configured key serves model {model!r}; the pool serves: {shown}{more}"
        )


class BudgetExceededError(RouterError):
    """A budget refused the call before any key was reserved (lua/reserve.lua): its ``period``
    already holds ``used_usd`` (spent + calls in flight) of ``limit_usd`` and this call's
    worst-case cost would pass it; or no price is known for ``model`` (``used_usd`` None) and a
    budget applies. ``field`` is the budget's stored field (``user:<encoded id>``), ``scope``
    and ``name`` say whose; ``reset_at`` is when its next period begins (the store's clock,
    ``now`` the store's time of the refusal)."""

    error_type = "budget_exceeded"

    def __init__(
        self,
        field: str,
        *,
        scope: str,
        name: str,
        limit_usd: float,
        used_usd: float | None,
        reset_at: float,
        now: float,
        period: str = "",
        model: str = "",
    ) -> None:
        self.field, self.scope, self.name = field, scope, name
        self.limit_usd, self.used_usd = limit_usd, used_usd
        self.reset_at, self.now, self.period, self.model = reset_at, now, period, model
        budget = f"{scope}:{name}" if name else scope
        if used_usd is None:
            super().__init__(f"no price is known for {model}, and budget {budget} applies")
            return
        super().__init__(
            f"budget {budget} exceeded: ${used_usd:.2f} of ${limit_usd:.2f} used this "
            f"{period or 'period'}; resets in {_span(self.retry_after)}"
        )

    @property
    def retry_after(self) -> float:
        """Seconds until the budget's next period."""
        return max(0.0, self.reset_at - self.now)

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out.update(
            retry_after=self.retry_after,
            budget={"scope": self.scope, "name": self.name, "period": self.period},
            limit_usd=self.limit_usd,
            used_usd=self.used_usd,
            reset_at=self.reset_at,
        )
        return out


class AdmissionRefusedError(RouterError):
    """The gateway's request limits, folded into the call's first reservation (keys/admission.py),
    refused it: nothing was reserved. ``limit`` names the limit (``user``, ``global``,
    ``key_rpm``, ``key_tpm``; ``revoked``: the virtual key was revoked), ``retry_after`` the
    seconds until every limit has room (None: the request can never fit)."""

    error_type = "rate_limited"

    def __init__(self, limit: str, retry_after: float | None, *, revoked: bool = False) -> None:
        self.limit, self.retry_after, self.revoked = limit, retry_after, revoked
        super().__init__(f"the gateway's {limit} limit refused the request")


def _span(seconds: float) -> str:
    """A duration the way people say it: 3h12m, 12d4h, 45s."""
    left = max(0, math.ceil(seconds))
    days, left = divmod(left, 86400)
    hours, left = divmod(left, 3600)
    minutes, secs = divmod(left, 60)
    if days:
        return f"{days}d{hours}h"
    if hours:
        return f"{hours}h{minutes}m"
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"


class ConversationError(RouterError):
    """Conversation history problem."""

    error_type = "conversation_error"


class ConversationTooLargeError(ConversationError):
    """The conversation reached its message or byte cap and automatic trimming is off."""

    error_type = "conversation_too_large"


class ConversationNotSavedError(ConversationError):
    """A turn's answer was produced but could not be stored."""

    error_type = "conversation_not_saved"


class ClientRequestError(RouterError):
    """The caller's request is malformed; ``param`` names the offending parameter."""

    error_type = "invalid_request_error"

    def __init__(self, message: str, param: str | None = None) -> None:
        self.param = param
        super().__init__(message)


class GatewayError(RouterError):
    """An error answer of the gateway: the status, OpenAI's ``type``/``code``/``param``, the
    message, and when to retry (``Retry-After`` / ``retry-after-ms``)."""

    error_type = "gateway_error"

    def __init__(
        self,
        status: int,
        message: str,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.retry_after = retry_after
        super().__init__(message)

    def body(self) -> dict[str, Any]:
        """OpenAI's error body; the message redacted."""
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


class ProviderError(RouterError):
    """A provider refused or failed a call."""

    error_type = "provider_error"

    def __init__(
        self,
        message: str,
        *,
        provider: str = "",
        key: str = "",
        status: int | None = None,
        retry_after: float | None = None,
        rate_limits: Any = None,
    ) -> None:
        self.provider = provider
        self.key = key
        self.status = status
        self.retry_after = retry_after
        #: The provider's rate-limit headers of this answer, parsed (router.providers), if any.
        self.rate_limits = rate_limits
        super().__init__(message)

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out.update(provider=self.provider, status=self.status, retry_after=self.retry_after)
        return out


class RateLimitedError(ProviderError):
    """429. ``scope`` is ``minute`` or ``day`` (a per-day quota cools the key until the reset)."""

    error_type = "rate_limited"

    def __init__(self, message: str, *, scope: str = "minute", **kw: Any) -> None:
        self.scope = scope
        super().__init__(message, **kw)


class ProviderAuthError(ProviderError):
    error_type = "auth"


class BadRequestError(ProviderError):
    error_type = "bad_request"


class ContextLengthExceededError(BadRequestError):
    error_type = "context_length_exceeded"


class ContentFilteredError(BadRequestError):
    error_type = "content_filtered"


class OverloadedError(ProviderError):
    error_type = "overloaded"


class ServerError(ProviderError):
    error_type = "server_error"


class ProviderTimeoutError(ProviderError):
    error_type = "timeout"


class ProviderConnectionError(ProviderError):
    """Connection failed. ``reached_provider`` False means the request never left: release it."""

    error_type = "connection_error"

    def __init__(self, message: str, *, reached_provider: bool = False, **kw: Any) -> None:
        self.reached_provider = reached_provider
        super().__init__(message, **kw)


class MalformedResponseError(ProviderError):
    error_type = "malformed_response"


def provider_error_class(name: str) -> type[ProviderError]:
    """The ProviderError subclass called ``name`` (as stored in a key's health), else ProviderError."""
    pending: list[type[ProviderError]] = [ProviderError]
    while pending:
        cls = pending.pop()
        if cls.__name__ == name:
            return cls
        pending.extend(cls.__subclasses__())
    return ProviderError


def error_class(error_type: str) -> type[RouterError]:
    """The class whose errors answer ``error_type`` (an answer's ``error_type``), the most
    general when several do (``rate_limited``: CapacityError); RouterError when none does."""
    pending: list[type[RouterError]] = [RouterError]
    while pending:  # breadth first: a base before its subclasses
        cls = pending.pop(0)
        if error_type == cls.error_type or error_type in cls.other_error_types:
            return cls
        pending.extend(cls.__subclasses__())
    return RouterError
