"""The provider simulator's HTTP server: one aiohttp app for OpenAI, Azure, Anthropic, Gemini.

Routes
  POST /v1/chat/completions                             OpenAI (Bearer key)
  POST /v1/embeddings                                   OpenAI embeddings (wire_embeddings.py)
  POST /openai/deployments/{deployment}/embeddings      Azure OpenAI embeddings
  POST /openai/deployments/{deployment}/chat/completions
                                                        Azure OpenAI (api-key, ?api-version=)
  GET  /v1/models                                       model list (Anthropic's with x-api-key)
  POST /v1/messages                                     Anthropic (x-api-key, anthropic-version)
  POST /v1beta/models/{model}:generateContent           Gemini (x-goog-api-key or ?key=)
  POST /v1beta/models/{model}:streamGenerateContent     Gemini stream (?alt=sse)
  POST /v1beta/models/{model}:embedContent | :batchEmbedContents   Gemini embeddings
  /_sim/...                                             administration (router.simulator.admin)
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from kernel.tokens import get_encoding
from router.simulator.admin import add_admin_routes
from router.simulator.config import FaultConfig, SimKey, SimulatorConfig
from router.simulator.engine import Engine
from router.simulator.outcomes import Admitted, Call, Denied, Fault, RequestRecord
from router.simulator.wire import Answer, StreamPlan, Wire, WireError
from router.simulator.wire_anthropic import AnthropicWire
from router.simulator.wire_azure import AzureWire
from router.simulator.wire_embeddings import (
    AzureEmbeddingsWire,
    GeminiEmbeddingsWire,
    OpenAIEmbeddingsWire,
    gemini_wire_name,
)
from router.simulator.wire_gemini import GeminiWire
from router.simulator.wire_openai import OpenAIWire

ENGINE_KEY: web.AppKey[Engine] = web.AppKey("engine", Engine)
_JSON = "application/json"


def _respond(answer: Answer) -> web.Response:
    body = answer.body if isinstance(answer.body, bytes) else json.dumps(answer.body).encode()
    return web.Response(status=answer.status, body=body, headers=answer.headers, content_type=_JSON)


def _drop_connection(request: web.Request) -> web.Response:
    """Close the socket without answering (a connection reset as the client sees it)."""
    transport = request.transport
    if transport is not None:
        transport.abort()
    raise asyncio.CancelledError


class Handlers:
    """Request handlers bound to one engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        wires = (OpenAIWire(), AzureWire(), AnthropicWire(), GeminiWire())
        embeddings = (OpenAIEmbeddingsWire(), AzureEmbeddingsWire(), GeminiEmbeddingsWire())
        self.wires: dict[str, Wire] = {w.name: w for w in (*wires, *embeddings)}

    def for_provider(self, name: str) -> Callable[[web.Request], Any]:
        wire = self.wires[name]

        async def handler(request: web.Request) -> web.StreamResponse:
            return await self.handle(request, wire)

        return handler

    async def gemini(self, request: web.Request) -> web.StreamResponse:
        """Gemini's ``models/{target}``: generateContent, or an embeddings action."""
        return await self.handle(
            request, self.wires[gemini_wire_name(request.match_info["target"])]
        )

    async def handle(self, request: web.Request, wire: Wire) -> web.StreamResponse:
        try:
            body = json.loads(await request.read() or b"null")
        except ValueError:
            return _respond(
                wire.invalid_request(WireError("We could not parse the JSON body of your request."))
            )
        try:
            call = wire.parse(body, request)
        except WireError as error:
            return _respond(wire.invalid_request(error))
        secret = wire.secret(request)
        outcome = self.engine.evaluate(call, secret)
        delay = self.engine.latency(secret)
        if delay:
            await asyncio.sleep(delay)
        if isinstance(outcome, Fault) and outcome.kind == "reset":
            return _drop_connection(request)
        if not isinstance(outcome, Admitted):
            return _respond(wire.answer(call, outcome))
        delivered = [0]
        try:
            return await self._serve_admitted(request, wire, call, outcome, delivered)
        finally:
            self.engine.complete(outcome, delivered[0])

    async def _serve_admitted(
        self, request: web.Request, wire: Wire, call: Call, admitted: Admitted, delivered: list[int]
    ) -> web.StreamResponse:
        """Send an admitted call's answer; ``delivered[0]``: completion tokens sent so far."""
        if admitted.fault == "timeout":
            await asyncio.sleep(admitted.faults.hang_seconds)
        reply = admitted.reply
        streams = call.stream and not (admitted.filtered and isinstance(wire, OpenAIWire))
        if admitted.fault == "malformed" and not streams:
            delivered[0] = reply.completion_tokens
            return web.Response(status=200, body=wire.malformed(), content_type=_JSON)
        if not streams:
            delivered[0] = 0 if admitted.filtered else reply.completion_tokens
            return _respond(wire.answer(call, admitted))
        return await self._stream(request, wire, wire.stream(call, admitted), admitted, delivered)

    async def _stream(
        self,
        request: web.Request,
        wire: Wire,
        plan: StreamPlan,
        admitted: Admitted,
        delivered: list[int],
    ) -> web.StreamResponse:
        headers = {**plan.headers, "Cache-Control": "no-cache"}
        response = web.StreamResponse(status=200, headers=headers)
        response.content_type = plan.content_type
        await response.prepare(request)
        content, total = plan.content, admitted.reply.completion_tokens
        fault, gap = admitted.fault, admitted.faults.stream_chunk_delay_ms / 1000.0
        if fault is None and not gap:
            await response.write(b"".join([*plan.head, *content, *plan.tail]))
            delivered[0] = total
            await response.write_eof()
            return response
        await response.write(b"".join(plan.head))
        cut_at = len(content) // 2 if fault == "stream_cut" else -1
        for index, frame in enumerate(content):
            if index == cut_at:
                return _abort(request, response)
            if fault == "malformed" and index == len(content) // 2:
                await response.write(b"data: " + wire.malformed() + b"\n\n")
            await response.write(frame)
            delivered[0] = total * (index + 1) // len(content)
            if gap:
                await asyncio.sleep(gap)
        delivered[0] = total
        if cut_at >= 0:  # nothing to cut inside: cut before the closing events
            return _abort(request, response)
        await response.write(b"".join(plan.tail))
        await response.write_eof()
        return response

    async def models(self, request: web.Request) -> web.Response:
        names = sorted(
            self.engine.config.models
            or ["gpt-4o", "gpt-4o-mini", "claude-3-5-haiku-latest", "gemini-2.0-flash"]
        )
        if request.headers.get("x-api-key"):
            data = [
                {"type": "model", "id": n, "display_name": n, "created_at": "2024-01-01T00:00:00Z"}
                for n in names
            ]
            return web.json_response(
                {"data": data, "has_more": False, "first_id": names[0], "last_id": names[-1]}
            )
        wire = self.wires["openai"]
        secret = wire.secret(request)
        if not secret or (secret not in self.engine.keys and not self.engine.config.open_access):
            return _respond(
                wire.answer(
                    Call("openai", "", []),
                    Denied("missing" if not secret else "invalid", secret or ""),
                )
            )
        created = int(time.time())
        models: list[dict[str, Any]] = [
            {"id": n, "object": "model", "created": created, "owned_by": "simulator"} for n in names
        ]
        return web.json_response({"object": "list", "data": models})


def _abort(request: web.Request, response: web.StreamResponse) -> web.StreamResponse:
    """Cut a started stream: the socket closes without the stream's closing events."""
    transport = request.transport
    if transport is not None:
        transport.abort()
    return response


def build_app(engine: Engine) -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[ENGINE_KEY] = engine
    handlers = Handlers(engine)
    app.router.add_post("/v1/chat/completions", handlers.for_provider("openai"))
    app.router.add_post("/v1/embeddings", handlers.for_provider("openai-embeddings"))
    app.router.add_post(
        "/openai/deployments/{deployment}/chat/completions", handlers.for_provider("azure")
    )
    app.router.add_post(
        "/openai/deployments/{deployment}/embeddings", handlers.for_provider("azure-embeddings")
    )
    app.router.add_get("/v1/models", handlers.models)
    app.router.add_post("/v1/messages", handlers.for_provider("anthropic"))
    for version in ("v1beta", "v1"):
        app.router.add_post(f"/{version}/models/{{target}}", handlers.gemini)
    add_admin_routes(app, engine)
    return app


def _warm_tokenizers() -> None:
    for encoding in ("o200k_base", "cl100k_base"):
        get_encoding(encoding)


class ProviderSimulator:
    """The simulator as an async context manager, on ``host`` and a free loopback port by default.

    >>> config = SimulatorConfig(keys=[SimKey(secret="sk-sim-0000000001")])
    >>> async with ProviderSimulator(config) as sim:
    ...     url = sim.base_url_for("openai")   # http://127.0.0.1:PORT/v1
    """

    def __init__(
        self,
        config: SimulatorConfig | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config or SimulatorConfig()
        self.engine = Engine(self.config, clock=clock, wall_clock=wall_clock)
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        """Listen; the tokenizers are loaded first so the first request is not slow."""
        await asyncio.to_thread(_warm_tokenizers)
        runner = web.AppRunner(
            build_app(self.engine), handler_cancellation=True, access_log=None, shutdown_timeout=0.5
        )
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, backlog=1024)
        await site.start()
        self._runner = runner
        server = getattr(site, "_server", None)
        if server is not None and server.sockets:
            self.port = int(server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> ProviderSimulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- addresses -----------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def base_url_for(self, provider: str, deployment: str | None = None) -> str:
        """The base URL a client of ``provider`` is configured with (as APIKey.base_url)."""
        if provider == "openai":
            return self.base_url + "/v1"
        if provider == "azure":
            if not deployment:
                raise ValueError("base_url_for('azure') needs the deployment name")
            return f"{self.base_url}/openai/deployments/{deployment}"
        if provider in ("anthropic", "gemini"):
            return self.base_url
        raise ValueError(f"unknown provider {provider!r}")

    # -- control and inspection ----------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        return self.engine.stats.snapshot()

    def usage(self, key_id: str, model: str) -> dict[str, Any]:
        """The stats of one key and model (zeros when it saw no request)."""
        return self.engine.stats.key(key_id, model).as_dict()

    def add_key(self, key: SimKey | dict[str, Any]) -> SimKey:
        parsed = key if isinstance(key, SimKey) else SimKey.model_validate(key)
        self.engine.add_key(parsed)
        return parsed

    def revoke_key(self, key_id: str) -> None:
        if not self.engine.set_revoked(key_id, True):
            raise KeyError(key_id)

    def restore_key(self, key_id: str) -> None:
        if not self.engine.set_revoked(key_id, False):
            raise KeyError(key_id)

    def set_faults(self, faults: FaultConfig | dict[str, Any], key_id: str | None = None) -> None:
        if not self.engine.set_faults(faults, key_id):
            raise KeyError(key_id)

    def reset_stats(self, *, limits: bool = False) -> None:
        self.engine.reset_stats(limits=limits)

    def requests(self, key_id: str | None = None, model: str | None = None) -> list[RequestRecord]:
        return self.engine.requests(key_id, model)
