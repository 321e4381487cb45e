"""``GET /v1/models`` (and ``/v1/models/{model}``) for Anthropic's SDKs: a request with an
``anthropic-version`` or ``x-api-key`` header is answered in Anthropic's shape
(``{"data": [{"type": "model", "id", "display_name", "created_at"}], "has_more", "first_id",
"last_id"}``, paged by ``limit`` (1-1000, default 20), ``after_id`` and ``before_id``), its errors
too; any other request (OpenAI's SDKs send a bearer token only) gets OpenAI's list
(router/gateway/openai_api.py). The models are the same: the virtual key's allowed ones the pool
serves (router/gateway/models.py).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from kernel import jsonio
from router.gateway import openai_api
from router.gateway.anthropic_api import anthropic_errors
from router.gateway.anthropic_request import anthropic_version
from router.gateway.auth import Caller, authenticate
from router.gateway.errors import bad_request, not_found
from router.gateway.state import GATEWAY, Gateway

#: ``created_at`` of every model: the router does not know release dates (OpenAI's ``created`` 0).
CREATED_AT = "1970-01-01T00:00:00Z"
DEFAULT_LIMIT = 20
MAX_LIMIT = 1000


def is_anthropic(request: web.Request) -> bool:
    return "anthropic-version" in request.headers or "x-api-key" in request.headers


def model_object(model: str) -> dict[str, Any]:
    return {"type": "model", "id": model, "display_name": model, "created_at": CREATED_AT}


def _limit(value: str | None) -> int:
    if value is None:
        return DEFAULT_LIMIT
    try:
        limit = int(value)
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_LIMIT:
        raise bad_request(f"expected an integer from 1 to {MAX_LIMIT}", "limit")
    return limit


def page(models: list[str], query: Any) -> dict[str, Any]:
    """One page of ``models`` (sorted) after ``after_id`` / before ``before_id``."""
    limit = _limit(query.get("limit"))
    after, before = query.get("after_id"), query.get("before_id")
    if before is not None:
        kept = [m for m in models if m < before]
        chosen, more = kept[-limit:], len(kept) > limit
    else:
        kept = [m for m in models if after is None or m > after]
        chosen, more = kept[:limit], len(kept) > limit
    return {
        "data": [model_object(m) for m in chosen],
        "has_more": more,
        "first_id": chosen[0] if chosen else None,
        "last_id": chosen[-1] if chosen else None,
    }


async def _admitted(request: web.Request) -> tuple[Gateway, Caller]:
    """The gateway and the caller of an Anthropic models request: version, readiness, key."""
    gateway = request.app[GATEWAY]
    anthropic_version(request.headers.get("anthropic-version"))
    openai_api.require_ready(gateway)
    caller = await authenticate(request, gateway.vkeys, gateway.settings, api_key_header=True)
    return gateway, caller


async def list_models(request: web.Request) -> web.StreamResponse:
    if not is_anthropic(request):
        return await openai_api.list_models(request)
    return await _list_anthropic(request)


@anthropic_errors
async def _list_anthropic(request: web.Request) -> web.StreamResponse:
    gateway, caller = await _admitted(request)
    allowed = caller.vkey.allows if caller.vkey is not None else None
    models = [model for model, _ in gateway.catalog.listing(allowed)]
    body = page(models, request.query)
    return web.Response(body=jsonio.dumps(body), content_type="application/json")


async def get_model(request: web.Request) -> web.StreamResponse:
    if not is_anthropic(request):
        return await openai_api.get_model(request)
    return await _get_anthropic(request)


@anthropic_errors
async def _get_anthropic(request: web.Request) -> web.StreamResponse:
    gateway, caller = await _admitted(request)
    model = request.match_info["model"]
    allowed = caller.vkey is None or caller.vkey.allows(model)
    listed = dict(gateway.catalog.listing()).get(model) is not None
    if not allowed or not (listed or gateway.catalog.known(model)):
        raise not_found(f"model: {model}", code="model_not_found", param="model")
    return web.Response(body=jsonio.dumps(model_object(model)), content_type="application/json")
