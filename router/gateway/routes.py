"""What the gateway answers for a route it does not serve, and the bare-root aliases of its API.

A client that asks for a route the gateway does not have gets a 404 in its own API's error shape
(Anthropic's for ``/v1/messages...``, OpenAI's for everything else) naming the route and listing
the API routes the gateway serves. Clients given the bare host as their base URL (no ``/v1``)
call ``/chat/completions``, ``/responses``, ``/models`` ...: :func:`add_bare_aliases` serves
those with the handlers of their ``/v1`` forms.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from kernel import jsonio
from kernel.errors import GatewayError

#: First path segments (after ``/v1``) that are also served at the root, without ``/v1``.
BARE_ROOTS = ("chat", "responses", "embeddings", "models", "messages")
API_PREFIX = "/v1/"


def bare_form(path: str) -> str | None:
    """``/v1/chat/completions`` -> ``/chat/completions``; None for a path with no bare alias."""
    if not path.startswith(API_PREFIX):
        return None
    rest = path[len(API_PREFIX) - 1 :]
    return rest if rest.split("/")[1] in BARE_ROOTS else None


def add_bare_aliases(app: web.Application) -> None:
    """Serves each aliased ``/v1`` route at the root too (call after every route is added)."""
    for route in list(app.router.routes()):
        resource = route.resource
        if route.method == "HEAD" or resource is None:
            continue
        bare = bare_form(resource.canonical)
        if bare is not None:
            app.router.add_route(route.method, bare, route.handler)


def error_shape(path: str) -> str:
    """``anthropic`` for the Messages API's paths (with or without ``/v1``), else ``openai``."""
    bare = path[len(API_PREFIX) - 1 :] if path.startswith(API_PREFIX) else path
    return "anthropic" if bare == "/messages" or bare.startswith("/messages/") else "openai"


def error_body(shape: str, error: GatewayError) -> dict[str, Any]:
    """An error's body in the shape ``error_shape`` chose."""
    if shape != "anthropic":
        return error.body()
    kind = {404: "not_found_error", 405: "invalid_request_error"}.get(error.status, "api_error")
    return {"type": "error", "error": {"type": kind, "message": error.body()["error"]["message"]}}


def api_routes(app: web.Application) -> list[str]:
    """``METHOD /path`` of each API route (under ``/v1``), sorted by path."""
    found = {
        (route.resource.canonical, route.method)
        for route in app.router.routes()
        if route.resource is not None
        and route.method != "HEAD"
        and route.resource.canonical.startswith(API_PREFIX)
    }
    return [f"{method} {path}" for path, method in sorted(found)]


def unknown_route(request: web.Request, headers: dict[str, str] | None = None) -> web.Response:
    """The 404 of a route the gateway does not serve, in the caller's API's error shape."""
    served = ", ".join(api_routes(request.app))
    message = (
        f"Unknown route: {request.method} {request.path}. The gateway serves {served} "
        "(also without the /v1 prefix), and the operations routes listed in /openapi.json."
    )
    error = GatewayError(404, message, code="not_found")
    return web.Response(
        status=404,
        body=jsonio.dumps(error_body(error_shape(request.path), error)),
        content_type="application/json",
        headers=headers,
    )
