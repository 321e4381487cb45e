"""Who may see the dashboard: login, sessions in the store, CSRF tokens, the roles.

Logging in with the master key (``ROUTER_MASTER_KEY``) opens an ``admin`` session (every page and
every action); with ``DASHBOARD_TOKEN`` a ``read`` session (every page, no action). Both are
compared in constant time. A session is a random token in the cookie ``llmr_session``
(``HttpOnly``, ``SameSite=Strict``, ``Path=/ui``, ``Secure`` over TLS, ``Max-Age`` of
``DASHBOARD_SESSION_SECONDS``); the store keeps it under the SHA-256 of the token
(kernel/redis_keys.py's ``ui_session``) with the same TTL, so every gateway worker accepts it and
a logout ends it everywhere. Each session has its own CSRF token: actions must send it in the
``X-CSRF-Token`` header (the logout form in a field), compared in constant time.

While the store is unreachable (degraded mode) a worker keeps accepting the sessions it read
there within the last hour (:data:`KNOWN`); a session it never saw gets the login page, and a
login made then lives in this worker's local store only.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from kernel import jsonio
from kernel.errors import GatewayError
from kernel.lru import LRU
from kernel.settings import Settings
from router.gateway.errors import forbidden
from router.gateway.state import GATEWAY, Gateway

COOKIE = "llmr_session"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf"
ADMIN, READ = "admin", "read"


@dataclass(frozen=True)
class Session:
    token: str
    role: str
    csrf: str

    @property
    def can_act(self) -> bool:
        return self.role == ADMIN


def enabled(settings: Settings) -> bool:
    """The dashboard is on only when the admin API is (a master key is set)."""
    master = settings.ROUTER_MASTER_KEY
    return master is not None and bool(master.get_secret_value())


def _same(given: str, secret: str) -> bool:
    return bool(secret) and hmac.compare_digest(given.encode(), secret.encode())


def role_of(token: str, settings: Settings) -> str | None:
    """The role a login token opens: admin (the master key), read (DASHBOARD_TOKEN) or None."""
    master, read = settings.ROUTER_MASTER_KEY, settings.DASHBOARD_TOKEN
    if master is not None and _same(token, master.get_secret_value()):
        return ADMIN
    if read is not None and _same(token, read.get_secret_value()):
        return READ
    return None


def _name(gateway: Gateway, token: str) -> str:
    digest = hashlib.sha256(token.encode()).hexdigest()
    return str(gateway.store.keys.ui_session(digest))


#: Sessions this worker saw in the store: trusted while the store is unreachable (degraded
#: mode) for DEGRADED_TRUST_SECONDS after they were last read there, so an operator keeps the
#: dashboard during a Redis outage (a session the worker never saw gets the login page).
Known = LRU[str, tuple[Session, float]]
KNOWN = web.AppKey("dashboard_sessions", LRU)
KNOWN_MAX = 1000
DEGRADED_TRUST_SECONDS = 3600.0


def new_known() -> Known:
    return LRU(KNOWN_MAX)


async def create(gateway: Gateway, role: str, known: Known) -> Session:
    session = Session(secrets.token_urlsafe(32), role, secrets.token_urlsafe(32))
    value = jsonio.dumps({"role": role, "csrf": session.csrf}).decode()
    seconds = gateway.settings.DASHBOARD_SESSION_SECONDS
    name = _name(gateway, session.token)
    await gateway.store.call(lambda c: c.set(name, value, ex=seconds))
    known.put(name, (session, time.monotonic()))
    return session


def _decode(token: str, raw: Any) -> Session | None:
    try:
        data = jsonio.loads(raw) if raw else None
    except ValueError:
        data = None
    if not isinstance(data, dict) or data.get("role") not in (ADMIN, READ):
        return None
    return Session(token, str(data["role"]), str(data.get("csrf", "")))


def _trusted(known: Known, name: str) -> Session | None:
    entry = known.get(name)
    if entry is None or time.monotonic() - entry[1] > DEGRADED_TRUST_SECONDS:
        return None
    return entry[0]


async def find(gateway: Gateway, token: str | None, known: Known) -> Session | None:
    """The live session of a cookie's token, or None (unknown, expired or malformed)."""
    if not token or len(token) > 100:
        return None
    name = _name(gateway, token)
    store = gateway.store
    if store.degraded:
        return _trusted(known, name)
    raw = await store.call(lambda c: c.get(name))
    if store.degraded:  # the store failed under this read: the answer came from the local one
        return _trusted(known, name)
    session = _decode(token, raw)
    if session is None:
        known.pop(name)
    else:
        known.put(name, (session, time.monotonic()))
    return session


async def end(gateway: Gateway, session: Session, known: Known) -> None:
    name = _name(gateway, session.token)
    known.pop(name)
    await gateway.store.call(lambda c: c.delete(name))


def set_cookie(response: web.StreamResponse, request: web.Request, session: Session) -> None:
    seconds = request.app[GATEWAY].settings.DASHBOARD_SESSION_SECONDS
    response.set_cookie(
        COOKIE,
        session.token,
        max_age=seconds,
        path="/ui",
        httponly=True,
        secure=request.secure,
        samesite="Strict",
    )


def redirect(location: str) -> web.Response:
    """A 303 to ``location`` (returned, not raised: the gateway's middleware turns raised HTTP
    exceptions into JSON errors)."""
    return web.Response(status=303, headers={"Location": location})


def clear_cookie(response: web.StreamResponse) -> None:
    response.del_cookie(COOKIE, path="/ui")


async def current(request: web.Request) -> Session | None:
    return await find(request.app[GATEWAY], request.cookies.get(COOKIE), request.app[KNOWN])


def check_csrf(session: Session, given: str | None) -> None:
    if not given or not _same(given, session.csrf):
        raise forbidden(
            f"The action needs the page's CSRF token in the {CSRF_HEADER} header.",
            code="csrf_failed",
        )


def check_origin(request: web.Request) -> None:
    """A POST from another site's page is refused (SameSite=Strict already keeps the cookie
    away; this also covers the login form)."""
    origin = request.headers.get("Origin")
    if origin and origin != "null" and urlsplit(origin).netloc != request.host:
        raise forbidden("Cross-site request refused.", code="csrf_failed")


def login_required() -> GatewayError:
    return GatewayError(
        401,
        "Log in to the dashboard first (/ui/login).",
        type="authentication_error",
        code="login_required",
    )


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SessionHandler = Callable[[web.Request, Session], Awaitable[web.StreamResponse]]


def api(handler: SessionHandler) -> Handler:
    """A JSON route: a live session, else 401 ``login_required``."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        session = await current(request)
        if session is None:
            raise login_required()
        return await handler(request, session)

    return wrapped


def action(handler: SessionHandler) -> Handler:
    """An action: a live session, its CSRF token in the header, and the admin role."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        session = await current(request)
        if session is None:
            raise login_required()
        check_origin(request)
        check_csrf(session, request.headers.get(CSRF_HEADER))
        if not session.can_act:
            raise forbidden(
                "This session is read-only (DASHBOARD_TOKEN): log in with the master key to act.",
                code="read_only",
            )
        return await handler(request, session)

    return wrapped


def page(handler: SessionHandler) -> Handler:
    """A page: a live session, else a redirect to the login page."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        session = await current(request)
        if session is None:
            response = redirect("/ui/login")
            if COOKIE in request.cookies:
                clear_cookie(response)
            return response
        return await handler(request, session)

    return wrapped
