"""Who is calling: a virtual key for the OpenAI routes, the master key for the admin routes.

Both come as ``Authorization: Bearer <key>`` (OpenAI's SDKs send the ``api_key`` so). The master key
(``ROUTER_MASTER_KEY``) is compared in constant time and opens only the admin routes; a virtual key
opens only the OpenAI routes; ``METRICS_TOKEN``, when set, only ``GET /metrics``. With
``GATEWAY_ALLOW_ANONYMOUS=true`` (local development) a request with no key at all is served as the
user ``anonymous``, still under the per-user and global limits.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from aiohttp import web

from kernel.errors import GatewayError
from kernel.settings import Settings
from router.gateway.errors import forbidden, unauthorized
from router.gateway.vkeys import VirtualKey, VirtualKeyStore

ANONYMOUS = "anonymous"


@dataclass(frozen=True)
class Caller:
    """An authenticated client: its virtual key (None when anonymous) and whom limits count."""

    vkey: VirtualKey | None
    user_id: str


def bearer(request: web.Request) -> str | None:
    """The bearer token of the request, or None when there is none."""
    header = request.headers.get("Authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


async def authenticate(
    request: web.Request,
    vkeys: VirtualKeyStore,
    settings: Settings,
    *,
    api_key_header: bool = False,
) -> Caller:
    """The caller of an OpenAI route, or a 401. ``api_key_header``: also take the key from
    ``x-api-key`` (Anthropic's SDKs send it so), when there is no bearer token."""
    token = bearer(request)
    if token is None and api_key_header:
        token = request.headers.get("x-api-key", "").strip() or None
    if token is None:
        if settings.GATEWAY_ALLOW_ANONYMOUS:
            return Caller(None, ANONYMOUS)
        where = "'x-api-key: <key>' or " if api_key_header else ""
        raise unauthorized(
            f"You didn't provide an API key. Send a virtual key as {where}"
            "'Authorization: Bearer <key>'."
        )
    key = await vkeys.verify(token)
    if key is None:
        raise unauthorized(
            "Incorrect API key provided: the virtual key is unknown, revoked or expired."
        )
    return Caller(key, key.user)


def require_metrics_token(request: web.Request, settings: Settings) -> None:
    """With ``METRICS_TOKEN`` set, let a scrape through only with it (compared in constant time)."""
    token = settings.METRICS_TOKEN
    if token is None or not token.get_secret_value():
        return
    given = bearer(request)
    if given is None or not hmac.compare_digest(given.encode(), token.get_secret_value().encode()):
        raise GatewayError(
            401,
            "GET /metrics needs the metrics token (METRICS_TOKEN) as 'Authorization: Bearer <token>'.",
            type="authentication_error",
            code="invalid_metrics_token",
        )


def require_master(request: web.Request, settings: Settings) -> None:
    """Let the request through only with the master key; anything else is refused."""
    master = settings.ROUTER_MASTER_KEY
    if master is None or not master.get_secret_value():
        raise forbidden(
            "The admin API is disabled: set ROUTER_MASTER_KEY to enable it.", code="admin_disabled"
        )
    token = bearer(request)
    if token is None or not hmac.compare_digest(token.encode(), master.get_secret_value().encode()):
        raise GatewayError(
            401,
            "Admin routes need the master key (ROUTER_MASTER_KEY) as 'Authorization: Bearer <key>'.",
            type="authentication_error",
            code="invalid_master_key",
        )
