"""The Anthropic-compatible routes: ``POST /v1/messages`` and ``POST /v1/messages/count_tokens``.

The same path as chat completions (router/gateway/openai_api.py): a virtual key (``x-api-key`` or
``Authorization: Bearer``) -> the body, checked and translated to the router's OpenAI-shaped chat
request (anthropic_request.py) -> allowed and known model -> the gateway's limits ->
``RequestRouter.complete`` / ``stream_complete`` -> the answer as Anthropic's ``message`` or its
stream's events (anthropic_response.py). A Claude model goes to Anthropic keys natively; an alias
or a fallback to another provider is translated both ways by the router's adapters. Every error
answers in Anthropic's shape (``{"type": "error", "error": {...}}``), ``retry-after`` on a 429.
``count_tokens`` counts locally (the router's tokenizer): no provider call, no usage record.
"""

from __future__ import annotations

from functools import wraps

from aiohttp import web
from aiohttp.typedefs import Handler

from kernel import jsonio
from kernel.errors import ClientRequestError, GatewayError, StoreError
from kernel.log import get_logger
from kernel.tokens import count_message_tokens_async, count_tokens
from router.gateway.anthropic_request import (
    anthropic_version,
    parse_count_request,
    parse_messages_request,
)
from router.gateway.anthropic_response import (
    MessageStreamWriter,
    error_response,
    message_body,
)
from router.gateway.errors import STORE_RETRY_SECONDS, bad_request, from_answer, unavailable
from router.gateway.openai_api import (
    REQUEST_ID,
    _admit,
    _complete,
    _headers,
    _options,
    _settle,
    _stream,
)
from router.gateway.state import GATEWAY

log = get_logger("router.gateway")


def anthropic_errors(handler: Handler) -> Handler:
    """Answer the handler's errors in Anthropic's shape (the middleware would use OpenAI's)."""

    @wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        rid = request[REQUEST_ID]
        try:
            return await handler(request)
        except GatewayError as exc:
            return error_response(exc, rid)
        except ClientRequestError as exc:
            return error_response(bad_request(str(exc), exc.param), rid)
        except StoreError as exc:
            log.error("store unavailable", request_id=rid, error=str(exc))
            error = unavailable(str(exc), "store_unavailable", retry_after=STORE_RETRY_SECONDS)
            return error_response(error, rid)
        except web.HTTPException:
            raise
        except Exception:
            log.exception("unhandled error", request_id=rid, path=request.path)
            return error_response(GatewayError(500, "Internal error.", "api_error"), rid)

    return wrapped


@anthropic_errors
async def messages(request: web.Request) -> web.StreamResponse:
    gateway = request.app[GATEWAY]
    anthropic_version(request.headers.get("anthropic-version"))
    caller, params, estimate = await _admit(
        request, gateway, parse_messages_request, api_key_header=True
    )
    rid = request[REQUEST_ID]
    options = _options(params, caller, request)
    if params.stream:
        prompt = await count_message_tokens_async(params.messages, params.model)

        def writer(response: web.StreamResponse) -> MessageStreamWriter:
            return MessageStreamWriter(response, rid, params.model, prompt)

        return await _stream(request, gateway, caller, params, options, estimate, writer)
    answer = await _complete(request, gateway, params, options)
    await _settle(gateway, caller, answer, estimate)
    if not answer["success"]:
        raise from_answer(answer)
    return web.Response(
        body=jsonio.dumps(message_body(answer, rid)),
        content_type="application/json",
        headers={**_headers(answer), "request-id": rid},
    )


@anthropic_errors
async def count_message_tokens(request: web.Request) -> web.Response:
    """``{"input_tokens": n}``: the system, the messages and the tools, counted here. Admitted
    like a call (key, model, the request limits); a token charge on the key is given back."""
    gateway = request.app[GATEWAY]
    anthropic_version(request.headers.get("anthropic-version"))
    caller, params, estimate = await _admit(
        request, gateway, parse_count_request, api_key_header=True, fold=False
    )
    if estimate and caller.vkey is not None:
        gateway.limits.adjust_later(user_id=caller.user_id, vkey=caller.vkey, delta=-estimate)
    tokens = await count_message_tokens_async(params.messages, params.model)
    tools = params.extras.get("tools")
    if tools:
        tokens += count_tokens(jsonio.dumps(tools).decode(), params.model)
    return web.Response(
        body=jsonio.dumps({"input_tokens": tokens}),
        content_type="application/json",
        headers={"request-id": request[REQUEST_ID]},
    )
