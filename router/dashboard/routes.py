"""The dashboard's routes under ``/ui``: login and logout, the pages, their JSON, static files.

    GET  /ui                      -> /ui/overview (or /ui/login)
    GET  /ui/login, POST /ui/login (form field ``token``), POST /ui/logout (CSRF)
    GET  /ui/overview|keys|models|spend|requests, /ui/requests/{request_id}
    GET  /ui/api/overview|keys|models|spend|requests, /ui/api/requests/{request_id}
    POST /ui/api/keys/{key_id}/cooldown|clear-cooldown|disable|enable   (router/dashboard/actions.py)
    GET  /ui/static/app.js, app.css

Without a master key no route is added: every ``/ui`` path is a 404, as the admin API is off.
Every ``/ui`` answer carries a Content-Security-Policy that allows only the dashboard's own
script and style (no inline script), and is neither cached nor framed.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from kernel import jsonio
from kernel.log import get_logger
from router.dashboard import actions, data, html, session, spend, views_pool, views_usage
from router.dashboard.session import Session, api, page
from router.gateway.openai_api import require_ready
from router.gateway.state import GATEWAY

log = get_logger("router.dashboard")
STATIC = Path(__file__).with_name("static")
CACHE = web.AppKey("dashboard_cache", dict[str, Any])
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


def _json(value: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=jsonio.dumps(value), content_type="application/json")


def _html(text: str, status: int = 200) -> web.Response:
    return web.Response(status=status, text=text, content_type="text/html", charset="utf-8")


async def _page(
    request: web.Request, sess: Session, name: str, title: str, body: str
) -> web.Response:
    now = await request.app[GATEWAY].store.server_time()
    updated = datetime.fromtimestamp(now, UTC).strftime("%H:%M:%S UTC")
    return _html(html.layout(name, title, body, sess.csrf, sess.role, updated))


# -- login and logout ------------------------------------------------------------------------------
async def root(request: web.Request) -> web.StreamResponse:
    found = await session.current(request)
    return session.redirect("/ui/overview" if found else "/ui/login")


async def login_form(request: web.Request) -> web.StreamResponse:
    if await session.current(request) is not None:
        return session.redirect("/ui/overview")
    return _html(html.login())


async def login(request: web.Request) -> web.StreamResponse:
    session.check_origin(request)
    gateway = request.app[GATEWAY]
    form = await request.post()
    token = form.get("token")
    role = session.role_of(token, gateway.settings) if isinstance(token, str) else None
    if role is None:
        log.warning("dashboard login refused", remote=request.remote)
        return _html(html.login("Wrong master key or dashboard token."), status=401)
    created = await session.create(gateway, role, request.app[session.KNOWN])
    log.info("dashboard login", role=role, remote=request.remote)
    response = session.redirect("/ui/overview")
    session.set_cookie(response, request, created)
    return response


async def logout(request: web.Request) -> web.StreamResponse:
    session.check_origin(request)
    found = await session.current(request)
    if found is not None:
        form = await request.post()
        given = request.headers.get(session.CSRF_HEADER) or form.get(session.CSRF_FIELD)
        session.check_csrf(found, given if isinstance(given, str) else None)
        await session.end(request.app[GATEWAY], found, request.app[session.KNOWN])
    response = session.redirect("/ui/login")
    session.clear_cookie(response)
    return response


# -- pages -----------------------------------------------------------------------------------------
@page
async def overview_page(request: web.Request, sess: Session) -> web.StreamResponse:
    gateway = request.app[GATEWAY]
    require_ready(gateway)
    view = await data.overview(gateway, request.app[CACHE])
    return await _page(request, sess, "overview", "Overview", views_pool.overview(view))


@page
async def keys_page(request: web.Request, sess: Session) -> web.StreamResponse:
    gateway = request.app[GATEWAY]
    require_ready(gateway)
    body = views_pool.keys(await data.keys(gateway), sess.can_act)
    return await _page(request, sess, "keys", "Keys", body)


@page
async def models_page(request: web.Request, sess: Session) -> web.StreamResponse:
    gateway = request.app[GATEWAY]
    require_ready(gateway)
    body = views_pool.models(await data.models(gateway))
    return await _page(request, sess, "models", "Models", body)


@page
async def spend_page(request: web.Request, sess: Session) -> web.StreamResponse:
    body = views_usage.spend(await spend.spend(request.app[GATEWAY], request.query))
    return await _page(request, sess, "spend", "Spend", body)


@page
async def requests_page(request: web.Request, sess: Session) -> web.StreamResponse:
    view = await spend.requests(request.app[GATEWAY], request.query)
    body = views_usage.requests(view, request.query)
    return await _page(request, sess, "requests", "Requests", body)


@page
async def request_page(request: web.Request, sess: Session) -> web.StreamResponse:
    record = await spend.request_detail(request.app[GATEWAY], request.match_info["request_id"])
    body = views_usage.request_detail(record)
    return await _page(request, sess, "requests", "Request", body)


# -- JSON for the live refresh ---------------------------------------------------------------------
Fetch = Callable[[web.Request], Awaitable[dict[str, Any]]]


def _api(
    fetch: Fetch, ready: bool = True
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    @api
    async def handler(request: web.Request, sess: Session) -> web.StreamResponse:
        if ready:
            require_ready(request.app[GATEWAY])
        started = time.perf_counter()
        answer = await fetch(request)
        answer["read_ms"] = round((time.perf_counter() - started) * 1000, 1)
        return _json(answer)

    return handler


async def _overview(request: web.Request) -> dict[str, Any]:
    return await data.overview(request.app[GATEWAY], request.app[CACHE])


async def _keys(request: web.Request) -> dict[str, Any]:
    return await data.keys(request.app[GATEWAY])


async def _models(request: web.Request) -> dict[str, Any]:
    return await data.models(request.app[GATEWAY])


async def _spend(request: web.Request) -> dict[str, Any]:
    return await spend.spend(request.app[GATEWAY], request.query)


async def _requests(request: web.Request) -> dict[str, Any]:
    return await spend.requests(request.app[GATEWAY], request.query)


async def _request(request: web.Request) -> dict[str, Any]:
    gateway = request.app[GATEWAY]
    return await spend.request_detail(gateway, request.match_info["request_id"])


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    if request.path == "/ui" or request.path.startswith("/ui/"):
        response.headers.update(SECURITY_HEADERS)
        if not request.path.startswith("/ui/static/"):
            response.headers["Cache-Control"] = "no-store"


def add_routes(app: web.Application) -> None:
    """Add the dashboard to the gateway's ``app`` when a master key is set."""
    if not session.enabled(app[GATEWAY].settings):
        return
    app[CACHE] = {}
    app[session.KNOWN] = session.new_known()
    app.on_response_prepare.append(_security_headers)
    r = app.router
    r.add_get("/ui", root)
    r.add_get("/ui/", root)
    r.add_get("/ui/login", login_form)
    r.add_post("/ui/login", login)
    r.add_post("/ui/logout", logout)
    for name, handler in (
        ("overview", overview_page),
        ("keys", keys_page),
        ("models", models_page),
        ("spend", spend_page),
        ("requests", requests_page),
    ):
        r.add_get(f"/ui/{name}", handler)
    r.add_get("/ui/requests/{request_id}", request_page)
    r.add_get("/ui/api/overview", _api(_overview))
    r.add_get("/ui/api/keys", _api(_keys))
    r.add_get("/ui/api/models", _api(_models))
    r.add_get("/ui/api/spend", _api(_spend, ready=False))
    r.add_get("/ui/api/requests", _api(_requests, ready=False))
    r.add_get("/ui/api/requests/{request_id}", _api(_request, ready=False))
    actions.add_routes(app)
    r.add_static("/ui/static", STATIC, append_version=False)
