"""Who is calling: a virtual key for the OpenAI routes, the master key for the admin routes.

Both come as ``Authorization: Bearer <key>`` (OpenAI's SDKs send the ``api_key`` so). The master key
(``ROUTER_MASTER_KEY``) is compared in constant time and opens only the admin routes (the read-only
``DASHBOARD_TOKEN`` opens their GET routes: document 001's read role); a virtual key
opens only the OpenAI routes; ``METRICS_TOKEN``, when set, only ``GET /metrics``. With
``GATEWAY_ALLOW_ANONYMOUS=true`` (local development) a request with no key at all is served as the
user ``anonymous``, still under the per-user and global limits.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from aiohttp import web
from pydantic import SecretStr

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

    @property
    def named_user(self) -> str | None:
        """The user the per-user limit (USER_RPM_DEFAULT) counts: the virtual key's ``user_id``,
        or the anonymous development user; None when the request names no user (it counts
        against its virtual key's own limits)."""
        return self.vkey.user_id if self.vkey is not None else self.user_id


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


#: The admin API's roles (document 001's per-deployment roles): the master key is ``admin``
#: (everything), ``DASHBOARD_TOKEN`` is ``read`` (GET routes: stats, status, usage; no change).
ADMIN_ROLE, READ_ROLE = "admin", "read"
READ_METHODS = frozenset({"GET", "HEAD"})


def _same(given: str, secret: SecretStr | None) -> bool:
    value = secret.get_secret_value() if secret is not None else ""
    return bool(value) and hmac.compare_digest(given.encode(), value.encode())


def require_master(request: web.Request, settings: Settings) -> str:
    """The caller's admin role, or a refusal: the master key opens every admin route (``admin``);
    the read-only token (``DASHBOARD_TOKEN``) opens the GET routes (``read``) and gets a 403
    naming its role on the others; anything else a 401."""
    master = settings.ROUTER_MASTER_KEY
    if master is None or not master.get_secret_value():
        raise forbidden(
            "The admin API is disabled: set ROUTER_MASTER_KEY to enable it.", code="admin_disabled"
        )
    token = bearer(request)
    if token is not None and _same(token, master):
        return ADMIN_ROLE
    if token is not None and _same(token, settings.DASHBOARD_TOKEN):
        if request.method in READ_METHODS:
            return READ_ROLE
        raise forbidden(
            f"The read-only role (DASHBOARD_TOKEN) may read stats, status and usage but not "
            f"change anything: {request.method} {request.path} needs the admin role "
            "(ROUTER_MASTER_KEY).",
            code="read_only",
        )
    raise GatewayError(
        401,
        "Admin routes need the master key (ROUTER_MASTER_KEY) as 'Authorization: Bearer <key>' "
        "(GET routes: the read-only DASHBOARD_TOKEN too).",
        type="authentication_error",
        code="invalid_master_key",
    )
