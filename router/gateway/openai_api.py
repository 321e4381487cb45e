"""The OpenAI-compatible routes: ``POST /v1/chat/completions`` and ``GET /v1/models``.

A chat request goes: virtual key -> body checks -> allowed and known model -> the gateway's limits
(user, global, the key's RPM/TPM: router/gateway/limits.py) -> ``RequestRouter.complete`` or
``stream_complete`` (the same code path as the Python API) -> OpenAI's answer shape. Where the
store allows it the limits go with the call (``admission``) and its first reservation charges
them in the same script run; else they are charged in a round trip of their own before it. A
pool with no room answers 429 with ``Retry-After``; nothing is retried here (the router already
rotated keys, fell back and waited as configured).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any, Protocol, cast

from aiohttp import web

from kernel import jsonio
from kernel.errors import AdmissionRefusedError, GatewayError
from kernel.log import get_logger
from kernel.tokens import count_message_tokens_async
from kernel.usage_record import Attribution
from keys.admission import Admission
from router.answers import Answer, DoneEvent, StreamEvent
from router.gateway.auth import Caller, authenticate
from router.gateway.chat_request import ChatParams, parse_chat_request
from router.gateway.errors import (
    bad_request,
    forbidden,
    from_answer,
    limited,
    not_found,
    unauthorized,
    unavailable,
)
from router.gateway.fallback_headers import served_headers, stream_headers
from router.gateway.limits import LimitDecision, limit_decision, refused
from router.gateway.responses import ChunkWriter, completion_body
from router.gateway.state import GATEWAY, Gateway

log = get_logger("router.gateway")
REQUEST_ID = web.RequestKey("request_id", str)
#: The request's limits when the router charges them with its first reservation (``_admit``).
ADMISSION = web.RequestKey("admission", Admission)


def require_ready(gateway: Gateway) -> None:
    if gateway.draining:
        raise unavailable("The gateway is shutting down; retry on another instance.", "draining")
    if not gateway.ready:
        reason = gateway.startup_error or "keys and store are still loading"
        raise unavailable(f"The gateway is not ready: {reason}", "not_ready")


async def read_json(request: web.Request) -> Any:
    """The request's JSON body, or a 400 (413 when larger than GATEWAY_MAX_BODY_BYTES)."""
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        raise GatewayError(
            413, f"Request body too large ({exc.text})", code="request_too_large"
        ) from exc
    if not raw:
        raise bad_request("The request body is empty: expected a JSON object.", param="body")
    try:
        return jsonio.loads(raw)
    except jsonio.TooDeepError as exc:
        raise bad_request(f"The request body is {exc}.", param="body") from None
    except ValueError:
        raise bad_request("The request body is not valid JSON.", param="body") from None


def limit_error(decision: LimitDecision, model: str, param: str = "max_tokens") -> GatewayError:
    """The refusal of the gateway's limits, naming the limit and the model the caller asked for."""
    if decision.revoked:
        return unauthorized("Incorrect API key provided: the virtual key was revoked.")
    what = {
        "user": "the per-user request limit (USER_RPM_DEFAULT)",
        "global": "the gateway's global request limit (GLOBAL_RPM_MAX)",
        "key_rpm": "this virtual key's requests-per-minute budget",
        "key_tpm": "this virtual key's tokens-per-minute budget",
    }.get(decision.limit, decision.limit)
    if decision.retry_after is None:
        return bad_request(
            f"The request for model '{model}' needs more tokens than {what} allows at all.",
            param=param,
            code="request_too_large",
        )
    return limited(
        f"Rate limit reached for model '{model}': {what}; retry in {decision.retry_after:.2f}s.",
        decision.retry_after,
        code=f"{decision.limit}_limit_exceeded",
    )


async def _estimate(params: ChatParams, gateway: Gateway) -> int:
    completion = params.max_tokens or gateway.settings.EXPECTED_COMPLETION_TOKENS
    return await count_message_tokens_async(params.messages, params.model) + completion


async def _admit(
    request: web.Request,
    gateway: Gateway,
    parse: Callable[[Any], ChatParams] = parse_chat_request,
    *,
    api_key_header: bool = False,
    fold: bool = True,
) -> tuple[Caller, ChatParams, int]:
    """Authenticate, check the body (``parse``: the route's parser, to the chat request the router
    takes) and the model, and the limits: (caller, params, tokens). ``api_key_header``: the
    virtual key may come as ``x-api-key`` too (Anthropic's routes). ``fold``: the request goes to
    the router, which charges the limits with its first reservation where the store allows it
    (the admission is kept on the request for :func:`_options`); else they are charged here."""
    caller = await admit_caller(request, gateway, api_key_header=api_key_header)
    params = parse(await read_json(request))
    estimate = lambda: _estimate(params, gateway)  # noqa: E731
    if not (fold and gateway.limits.foldable):
        return caller, params, await admit_model(gateway, caller, params.model, estimate)
    tokens = await check_model(gateway, caller, params.model, estimate)
    vkey, user = caller.vkey, caller.named_user
    request[ADMISSION] = gateway.limits.admission(user_id=user, vkey=vkey, tokens=tokens)
    return caller, params, tokens


async def admit_caller(
    request: web.Request, gateway: Gateway, *, api_key_header: bool = False
) -> Caller:
    """A ready gateway and an authenticated caller (the first step of every API route);
    ``api_key_header``: the key may come as ``x-api-key`` too."""
    require_ready(gateway)
    return await authenticate(
        request, gateway.vkeys, gateway.settings, api_key_header=api_key_header
    )


async def admit_model(
    gateway: Gateway,
    caller: Caller,
    model: str,
    estimate: Callable[[], Awaitable[int]],
    param: str = "max_tokens",
) -> int:
    """The model allowed to the caller's virtual key and served; the gateway's limits charged
    (``estimate()``: the request's tokens, counted only for a key with a TPM budget; ``param``
    is named when they are more than the key's TPM allows at all). Answers the tokens charged."""
    tokens = await check_model(gateway, caller, model, estimate)
    vkey = caller.vkey
    decision = await gateway.limits.acquire(user_id=caller.named_user, vkey=vkey, tokens=tokens)
    if not decision.allowed:
        raise refuse(gateway, decision, model, param)
    return tokens


def refuse(
    gateway: Gateway, decision: LimitDecision, model: str, param: str = "max_tokens"
) -> GatewayError:
    """The limits' refusal counted (``limited``) and answered (:func:`limit_error`)."""
    gateway.metrics.limited.labels(decision.limit).inc()
    return limit_error(decision, model, param)


async def check_model(
    gateway: Gateway, caller: Caller, model: str, estimate: Callable[[], Awaitable[int]]
) -> int:
    """The model allowed to the caller's virtual key and served: the tokens to charge on the
    key's TPM (``estimate()``, counted only for a key with a TPM budget; else 0)."""
    vkey = caller.vkey
    if vkey is not None and not vkey.allows(model):
        raise forbidden(
            f"This virtual key may not use the model '{model}'.",
            code="model_not_allowed",
            param="model",
        )
    if not gateway.catalog.known(model):
        raise not_found(
            f"The model '{model}' does not exist or no key of the pool serves it.",
            code="model_not_found",
            param="model",
        )
    return await estimate() if vkey is not None and vkey.tpm else 0


def _options(params: ChatParams, caller: Caller, request: web.Request) -> dict[str, Any]:
    options: dict[str, Any] = dict(params.extras)
    options.update(max_tokens=params.max_tokens, request_id=request[REQUEST_ID])
    if caller.vkey is not None and caller.vkey.tags:
        options["tags"] = dict(caller.vkey.tags)
    options["attribution"] = attribution_of(caller)
    admission = request.get(ADMISSION)
    if admission is not None:
        options["admission"] = admission
    return options


async def _complete(
    request: web.Request, gateway: Gateway, params: ChatParams, options: dict[str, Any]
) -> Answer:
    """``RequestRouter.complete``; the limits' refusal (charged with the reservation) as the
    429 the gateway answered before the router was asked (:func:`refuse`)."""
    try:
        answer = await gateway.router.complete(
            params.messages, params.model, temperature=params.temperature, **options
        )
    except AdmissionRefusedError as exc:
        raise refuse(gateway, refused(exc), params.model) from None
    if not answer["success"]:
        await _charge_unreserved(request, gateway, params.model)
    return answer


async def _charge_unreserved(request: web.Request, gateway: Gateway, model: str) -> None:
    """The router failed the call before any reservation (a bad request, no key serves the
    model, ...): its limits are charged now as they were before the router was asked (the
    limits' refusal comes first, as before)."""
    admission = request.get(ADMISSION)
    if admission is not None and admission.pending:
        reply = await admission.charge_apart(gateway.limits.store)
        if not reply.allowed:
            raise refuse(gateway, limit_decision(reply), model)


def attribution_of(caller: Caller) -> Attribution:
    """Whom a gateway call is for: the virtual key, its user and team (usage records, budgets)."""
    vkey = caller.vkey
    return Attribution(
        user=caller.user_id,
        team=vkey.team if vkey is not None else None,
        vkey=vkey.id if vkey is not None else None,
        source="gateway",
    )


async def _settle(gateway: Gateway, caller: Caller, answer: Answer, estimate: int) -> None:
    """Count the answer; move the key's TPM charge from the estimate to what was used (off the
    answer's path: RequestLimits.adjust_later)."""
    gateway.metrics.router.record(answer, gateway.model_label)
    if caller.vkey is not None and caller.vkey.tpm:
        used = answer["tokens"]["total"]
        gateway.limits.adjust_later(user_id=caller.user_id, vkey=caller.vkey, delta=used - estimate)


def _headers(answer: Answer) -> dict[str, str]:
    headers = served_headers(answer["provider"], answer["attempts"], answer["degraded"])
    if answer["fallback_reason"] is not None:  # another model served than the one asked for
        headers["x-router-fallback"] = f"{answer['requested_model']} -> {answer['model']}"
        headers["x-router-fallback-reason"] = answer["fallback_reason"]
    if answer["cost"] is not None:
        headers["x-router-cost-usd"] = f"{answer['cost']:.9f}".rstrip("0").rstrip(".") or "0"
    return headers


async def chat_completions(request: web.Request) -> web.StreamResponse:
    gateway = request.app[GATEWAY]
    caller, params, estimate = await _admit(request, gateway)
    options = _options(params, caller, request)
    if params.stream:
        rid = request[REQUEST_ID]

        def chunks(response: web.StreamResponse) -> ChunkWriter:
            return ChunkWriter(response, rid, params.model, params.include_usage)

        return await _stream(request, gateway, caller, params, options, estimate, chunks)
    answer = await _complete(request, gateway, params, options)
    await _settle(gateway, caller, answer, estimate)
    if not answer["success"]:
        raise from_answer(answer)
    return web.Response(
        body=jsonio.dumps(completion_body(answer, request[REQUEST_ID])),
        content_type="application/json",
        headers=_headers(answer),
    )


class EventWriter(Protocol):
    """Writes one answer as a stream's events (OpenAI's :class:`ChunkWriter`, Anthropic's ...)."""

    async def start(self) -> None: ...
    async def text(self, content: str) -> None: ...
    async def finish(self, answer: Answer) -> None: ...
    async def fail(self, error: GatewayError) -> None: ...


async def _stream(
    request: web.Request,
    gateway: Gateway,
    caller: Caller,
    params: ChatParams,
    options: dict[str, Any],
    estimate: int,
    make_writer: Callable[[web.StreamResponse], EventWriter],
) -> web.StreamResponse:
    """SSE (events by ``make_writer``). A failure before the first token is an ordinary error
    answer (status and all); one after it is an error event. A client that goes away ends the
    call (the router settles it)."""
    events = cast(
        AsyncGenerator[StreamEvent, None],
        gateway.router.stream_complete(
            params.messages, params.model, temperature=params.temperature, **options
        ),
    )
    done: DoneEvent | None = None
    async with contextlib.aclosing(events):
        event = await _first_event(request, gateway, params.model, events)
        if event["type"] == "done" and not event["success"]:
            await _settle(gateway, caller, event, estimate)
            raise from_answer(event)
        response = _sse_response(request, stream_headers(params.model, event))
        writer = make_writer(response)
        try:
            await response.prepare(request)
            await writer.start()
            while event["type"] == "delta":
                await writer.text(event["content"])
                event = await anext(events)
            done = event
            if done["success"]:
                await writer.finish(done)
            else:
                await writer.fail(from_answer(done))
        except ConnectionError as exc:
            log.info("client left during a stream", request_id=request[REQUEST_ID], error=str(exc))
        except Exception:  # the status is sent already: end the stream with an error event
            if not response.prepared:
                raise
            log.exception("stream failed", request_id=request[REQUEST_ID])
            with contextlib.suppress(ConnectionError):
                await writer.fail(
                    GatewayError(500, "internal error", "server_error", "internal_error")
                )
    if done is not None:
        await _settle(gateway, caller, done, estimate)
    return response


async def _first_event(
    request: web.Request, gateway: Gateway, model: str, events: AsyncGenerator[StreamEvent, None]
) -> StreamEvent:
    """The stream's first event; the limits' refusal and a failure before any reservation as
    in :func:`_complete`."""
    try:
        event = await anext(events)
    except AdmissionRefusedError as exc:
        raise refuse(gateway, refused(exc), model) from None
    if event["type"] == "done" and not event["success"]:
        await _charge_unreserved(request, gateway, model)
    return event


def _sse_response(request: web.Request, headers: dict[str, str]) -> web.StreamResponse:
    """An event stream's response, unbuffered by proxies (not prepared yet); ``headers`` too."""
    return web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
            "x-request-id": request[REQUEST_ID],
            **headers,
        }
    )


async def list_models(request: web.Request) -> web.Response:
    gateway = request.app[GATEWAY]
    require_ready(gateway)
    caller = await authenticate(request, gateway.vkeys, gateway.settings)
    allowed = caller.vkey.allows if caller.vkey is not None else None
    data = [
        {"id": model, "object": "model", "created": 0, "owned_by": owner}
        for model, owner in gateway.catalog.listing(allowed)
    ]
    return web.Response(
        body=jsonio.dumps({"object": "list", "data": data}), content_type="application/json"
    )


async def get_model(request: web.Request) -> web.Response:
    gateway = request.app[GATEWAY]
    require_ready(gateway)
    caller = await authenticate(request, gateway.vkeys, gateway.settings)
    model = request.match_info["model"]
    allowed = caller.vkey is None or caller.vkey.allows(model)
    owner = dict(gateway.catalog.listing()).get(model)
    if owner is None and allowed and gateway.catalog.known(model):
        owner = "llm-router"
    if owner is None or not allowed:
        raise not_found(
            f"The model '{model}' does not exist", code="model_not_found", param="model"
        )
    body = {"id": model, "object": "model", "created": 0, "owned_by": owner}
    return web.Response(body=jsonio.dumps(body), content_type="application/json")
