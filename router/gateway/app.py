"""The aiohttp application: routes, one middleware, start and stop with the router.

    app = build_app(Gateway(router))          # or build_app() for a router from the environment
    web.run_app(app)                          # ``python -m router serve`` does more (workers, drain)

The middleware gives every request its id (``X-Request-ID`` when the client sent a usable one;
it is echoed and becomes the router's request id), counts requests in flight (the drain on shutdown
waits for them), turns every error into OpenAI's error shape and records the HTTP metrics.
"""

from __future__ import annotations

import os
import re
import time

from aiohttp import web
from aiohttp.typedefs import Handler

from kernel import jsonio
from kernel.errors import ClientRequestError, GatewayError, StoreError
from kernel.log import get_logger
from router import dashboard
from router.gateway import (
    admin,
    admin_usage,
    anthropic_api,
    anthropic_models,
    embeddings_api,
    openai_api,
    ops,
    responses_api,
    routes,
)
from router.gateway.anthropic_response import error_response as anthropic_error
from router.gateway.errors import STORE_RETRY_SECONDS, bad_request, respond, unavailable
from router.gateway.metrics_view import metrics_handler
from router.gateway.openai_api import REQUEST_ID
from router.gateway.openapi import build_openapi
from router.gateway.state import GATEWAY, Gateway

log = get_logger("router.gateway")
REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
#: The ``method`` label of the HTTP metrics: a client may send other methods (aiohttp's C
#: parser takes ~35, WebDAV's among them; its pure-Python parser any token), answered 404 or 405
#: and counted as ``other`` (bounded labels).
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def _request_id(request: web.Request) -> str:
    given = request.headers.get("X-Request-ID", "")
    return given if REQUEST_ID_PATTERN.match(given) else os.urandom(16).hex()


def _http_error(exc: web.HTTPException) -> GatewayError:
    codes = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}
    message = {405: "Method not allowed on this route."}.get(exc.status, exc.reason)
    kind = "invalid_request_error" if exc.status < 500 else "server_error"
    return GatewayError(exc.status, message, type=kind, code=codes.get(exc.status))


@web.middleware
async def gateway_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    gateway = request.app[GATEWAY]
    rid = _request_id(request)
    request[REQUEST_ID] = rid
    started = time.perf_counter()
    gateway.inflight += 1
    gateway.metrics.inflight.inc()
    try:
        response = await handler(request)
    except GatewayError as exc:
        response = respond(exc)
    except ClientRequestError as exc:
        response = respond(bad_request(str(exc), exc.param))
    except StoreError as exc:
        log.error("store unavailable", request_id=rid, error=str(exc))
        response = respond(
            unavailable(str(exc), "store_unavailable", retry_after=STORE_RETRY_SECONDS)
        )
    except web.HTTPException as exc:
        allow = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        if exc.status == 404:
            response = routes.unknown_route(request, allow)
        elif routes.error_shape(request.path) == "anthropic":  # 405 on /v1/messages ...
            response = anthropic_error(_http_error(exc), rid)
            response.headers.update(allow or {})
        else:
            response = respond(_http_error(exc), allow)
    except Exception:
        log.exception("unhandled error", request_id=rid, path=request.path)
        response = respond(
            GatewayError(500, "Internal error.", type="server_error", code="internal_error")
        )
    finally:
        gateway.inflight -= 1
        gateway.metrics.inflight.dec()
    if not response.prepared:
        response.headers["x-request-id"] = rid
    route = request.match_info.route.resource
    name = route.canonical if route is not None else "unmatched"
    metrics = gateway.metrics
    method = request.method if request.method in HTTP_METHODS else "other"
    metrics.http_of(name, method, str(response.status)).inc()
    metrics.http_latency_of(name).observe(time.perf_counter() - started)
    return response


async def openapi_handler(request: web.Request) -> web.Response:
    return web.Response(body=request.app[OPENAPI], content_type="application/json")


OPENAPI = web.AppKey("openapi", bytes)


def build_app(gateway: Gateway | None = None, *, openai: bool = True) -> web.Application:
    """The gateway's application; it starts the router on startup and closes it on cleanup.
    ``openai=False``: the dashboard, the admin API and the operations routes only (``python -m
    router dashboard``)."""
    gateway = gateway or Gateway()
    app = web.Application(
        middlewares=[gateway_middleware], client_max_size=gateway.settings.GATEWAY_MAX_BODY_BYTES
    )
    app[GATEWAY] = gateway
    ops.add_caches(app, gateway.settings.READINESS_CACHE_SECONDS)
    app[OPENAPI] = jsonio.dumps(build_openapi(ops.version()))
    r = app.router
    if openai:
        r.add_post("/v1/chat/completions", openai_api.chat_completions)
        r.add_post("/v1/embeddings", embeddings_api.embeddings)
        r.add_get("/v1/models", anthropic_models.list_models)
        r.add_get("/v1/models/{model}", anthropic_models.get_model)
        r.add_post("/v1/responses", responses_api.create_response)
        r.add_post("/v1/messages", anthropic_api.messages)
        r.add_post("/v1/messages/count_tokens", anthropic_api.count_message_tokens)
    r.add_get("/health", ops.health)
    r.add_get("/health/ready", ops.ready)
    r.add_get("/status", ops.status)
    r.add_get("/metrics", metrics_handler)
    r.add_get("/openapi.json", openapi_handler)
    admin.add_routes(app)
    admin_usage.add_routes(app)
    dashboard.add_routes(app)
    routes.add_bare_aliases(app)  # last: /chat/completions ... for clients without /v1

    async def start(_: web.Application) -> None:
        await gateway.start()

    async def stop(_: web.Application) -> None:
        await gateway.close()

    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    return app
