"""The adapter interface and the flow every provider shares.

An adapter sends one chat call with one key and returns a :class:`ChatResult`, or yields
:class:`TextDelta` events and one final :class:`StreamEnd`. Each subclass supplies the provider's
URL, auth headers, request body, answer parser, stream parser and error classification; this base
does the HTTP, the timing, the rate-limit snapshot and the translation of every failure into one
:mod:`kernel.errors` class.
"""

from __future__ import annotations

import dataclasses
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Mapping
from typing import Any, ClassVar

import aiohttp

from kernel import jsonio
from kernel.errors import (
    ContentFilteredError,
    MalformedResponseError,
    ProviderConnectionError,
    ProviderError,
)
from keys.models import APIKey
from router.providers.lazy_limits import LazySnapshot
from router.providers.ratelimits import RateLimitSnapshot, parse_rate_limits
from router.providers.transport import (
    AiohttpTransport,
    CallContext,
    HttpRequest,
    HttpResponse,
    Transport,
    read_body,
    translate,
)
from router.providers.types import ChatRequest, ChatResult, StreamEvent, TextDelta

DEFAULT_TIMEOUT = 120.0
DEFAULT_CONNECT_TIMEOUT = 10.0
_PARSE_ERRORS = (KeyError, TypeError, IndexError, ValueError, AttributeError)


class ProviderAdapter(ABC):
    """Calls one provider through a transport: the router's shared session (which the router
    owns and closes) or a test's :class:`router.testing.ScriptedTransport`."""

    provider: ClassVar[str]
    default_base_url: ClassVar[str]

    def __init__(
        self,
        transport: Transport | aiohttp.ClientSession,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    ) -> None:
        if isinstance(transport, aiohttp.ClientSession):
            transport = AiohttpTransport(transport)
        self.transport: Transport = transport
        self.timeout = timeout
        self.connect_timeout = connect_timeout

    # -- what each provider supplies -----------------------------------------------------
    @abstractmethod
    def endpoint(self, key: APIKey, request: ChatRequest, *, stream: bool) -> str: ...

    @abstractmethod
    def auth_headers(self, key: APIKey, secret: str) -> dict[str, str]: ...

    @abstractmethod
    def payload(self, request: ChatRequest, *, stream: bool) -> dict[str, Any]: ...

    @abstractmethod
    def parse_result(self, data: Any, request: ChatRequest, ctx: CallContext) -> ChatResult: ...

    @abstractmethod
    def parse_stream(
        self, response: HttpResponse, request: ChatRequest, ctx: CallContext
    ) -> AsyncIterator[StreamEvent]: ...

    @abstractmethod
    def error_for(
        self,
        status: int,
        body: Any,
        raw: bytes,
        snapshot: RateLimitSnapshot | None,
        ctx: CallContext,
    ) -> ProviderError: ...

    def snapshot(self, headers: Mapping[str, str], body: Any = None) -> RateLimitSnapshot:
        """What the answer said of the key's limits: parsed when first read when there is no
        body to read (router/providers/lazy_limits.py), at once from an error's body."""
        if body is None:
            return LazySnapshot(self.provider, headers, time.time())
        return parse_rate_limits(self.provider, headers, body)

    def base_url(self, key: APIKey) -> str:
        return (key.base_url or self.default_base_url).rstrip("/")

    # -- the shared flow -----------------------------------------------------------------
    async def _send(
        self, key: APIKey, secret: str, request: ChatRequest, ctx: CallContext, *, stream: bool
    ) -> HttpResponse:
        url = self.endpoint(key, request, stream=stream)
        headers = {"Content-Type": "application/json", **self.auth_headers(key, secret)}
        if stream:
            headers["Accept"] = "text/event-stream"
        body = self.payload(request, stream=stream)
        try:
            call = HttpRequest(
                url,
                headers,
                jsonio.dumps(body),  # bytes: aiohttp's json= path encodes with the stdlib
                request.timeout or self.timeout,
                self.connect_timeout,
                stream,
            )
            return await self.transport.send(call)
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise translate(exc, ctx) from exc

    async def _raise_for_status(self, response: HttpResponse, ctx: CallContext) -> None:
        if response.status < 400:
            return
        raw, body = await read_body(response, ctx)
        snapshot = self.snapshot(response.headers, body)
        raise self.error_for(response.status, body, raw, snapshot, ctx)

    async def chat(self, key: APIKey, secret: str, request: ChatRequest) -> ChatResult:
        """One non-streaming call; a failure raises a ``ProviderError`` subclass."""
        ctx = CallContext(self.provider, secret)
        started = time.perf_counter()
        response = await self._send(key, secret, request, ctx, stream=False)
        try:
            await self._raise_for_status(response, ctx)
            raw, body = await read_body(response, ctx)
            snapshot = self.snapshot(response.headers)
        finally:
            response.release()
        if body is None:
            raise self.malformed(ctx, response.status, raw, snapshot)
        try:
            result = self.parse_result(body, request, ctx)
        except _PARSE_ERRORS as exc:
            raise self.malformed(ctx, response.status, raw, snapshot) from exc
        if (
            result.finish_reason == "content_filter"
            and not result.content
            and not result.tool_calls
        ):
            raise self.filtered(ctx, snapshot)
        result.rate_limits = snapshot
        result.latency_ms = (time.perf_counter() - started) * 1000.0
        return result

    async def stream(
        self, key: APIKey, secret: str, request: ChatRequest
    ) -> AsyncIterator[StreamEvent]:
        """Text deltas, then one ``StreamEnd``; failures, even mid-stream, raise router errors."""
        ctx = CallContext(self.provider, secret)
        started = time.perf_counter()
        response = await self._send(key, secret, request, ctx, stream=True)
        finished = False
        try:
            await self._raise_for_status(response, ctx)
            snapshot = self.snapshot(response.headers)
            produced = False
            async for event in self.parse_stream(response, request, ctx):
                if isinstance(event, TextDelta):
                    produced = produced or bool(event.text)
                    yield event
                    continue
                if (
                    event.finish_reason == "content_filter"
                    and not produced
                    and not event.tool_calls
                ):
                    raise self.filtered(ctx, snapshot)
                finished = True
                yield dataclasses.replace(
                    event, rate_limits=snapshot, latency_ms=(time.perf_counter() - started) * 1000.0
                )
                return
            raise self.cut(ctx, snapshot)
        finally:
            if finished:
                response.release()
            else:
                response.close()

    # -- errors shared by the subclasses ---------------------------------------------------
    def malformed(
        self,
        ctx: CallContext,
        status: int | None,
        raw: bytes | str,
        snapshot: RateLimitSnapshot | None,
    ) -> MalformedResponseError:
        text = raw[:120].decode("utf-8", "replace") if isinstance(raw, bytes) else raw[:120]
        return MalformedResponseError(
            ctx.clean(f"{ctx.provider}: answer could not be parsed: {text!r}"),
            provider=ctx.provider,
            key=ctx.masked_key,
            status=status,
            rate_limits=snapshot,
        )

    def filtered(
        self, ctx: CallContext, snapshot: RateLimitSnapshot | None, detail: str = ""
    ) -> ContentFilteredError:
        tail = f": {detail}" if detail else ""
        return ContentFilteredError(
            ctx.clean(
                f"{ctx.provider}: the answer was blocked by the provider's content filter{tail}"
            ),
            provider=ctx.provider,
            key=ctx.masked_key,
            status=200,
            rate_limits=snapshot,
        )

    def cut(self, ctx: CallContext, snapshot: RateLimitSnapshot | None) -> ProviderError:
        return ProviderConnectionError(
            f"{ctx.provider}: the stream ended before its final event",
            reached_provider=True,
            provider=ctx.provider,
            key=ctx.masked_key,
            status=200,
            rate_limits=snapshot,
        )
