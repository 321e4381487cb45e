"""RequestRouter: the part agents call (document 004's API).

    router = get_request_router()
    answer = await router.send_one_shot("Hello!", model_preference="gemini-2.5-flash")
    answer = await router.send_chat("debug_42", "What's the root cause?", expected_completion_tokens=1024)
    async for event in router.stream_chat("debug_42", "Go on"):   # {"type": "delta", ...} then "done"
        ...

Every answer is an ``Answer``, a typed dict (router/answers.py), and a stream yields
``StreamEvent`` s; failures do not raise unless ``raise_on_error=True`` (then the RouterError is
raised). A conversation's turn is stored after a successful call (``conversation_saved``).

Its parts in router/: plans.py (call plans, checks), dispatch.py (keys, calls, rotation, fallbacks),
turns.py, streaming.py, answers.py, usage_log.py; mixins: embedding.py, lease_api.py, settling.py.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp

from conversation.store import ConversationStore
from kernel.errors import ProviderError, RouterError, StoreError
from kernel.settings import Settings
from kernel.tokens import preload_encodings
from keys.manager import KeyManager
from router.answers import (
    Answer,
    CallSummary,
    StreamEvent,
    done_event,
    failure_answer,
    success_answer,
)
from router.dispatch import CallPlan, Dispatcher, Messages
from router.embedding import EmbedAPI
from router.health import router_health
from router.lease_api import LeaseAPI
from router.plans import fixed, make_plan, plan_error, summary_of, with_system
from router.providers import AiohttpTransport, Transport
from router.routing import RoutingTable
from router.settling import SettleAPI
from router.streaming import OnDone, relay
from router.telemetry import UsageSpans
from router.turns import history_for, store_turn
from router.usage_log import UsageLog


class RequestRouter(LeaseAPI, EmbedAPI, SettleAPI):
    """Token estimation, reservation, provider calls, rotation and fallbacks, conversations."""

    def __init__(
        self,
        key_manager: KeyManager | None = None,
        conversation_store: ConversationStore | None = None,
        *,
        settings: Settings | None = None,
        session: aiohttp.ClientSession | None = None,
        routing: RoutingTable | None = None,
        transport: Transport | None = None,
    ) -> None:
        """``transport`` sends the provider calls (default: aiohttp over ``session``, or over a
        session of the router's own); a test passes :class:`router.testing.ScriptedTransport`."""
        self.settings = settings or (key_manager.settings if key_manager else Settings.from_env())
        self.key_manager = key_manager or KeyManager(settings=self.settings)
        self.conversations = conversation_store or ConversationStore(
            self.key_manager.store, settings=self.settings
        )
        self._session = session
        self._owns_session = session is None
        self._routing = routing
        self._transport = transport
        self._dispatcher: Dispatcher | None = None
        #: Usage records and costs of this router's calls (router/usage_log.py).
        self.usage = UsageLog(
            self.key_manager.store,
            self.settings,
            lambda: self.key_manager.config.prices,
            spans=UsageSpans.from_settings(self.settings),
            offsets=self.key_manager.engine.day_offsets,
        )

    # -- life cycle ------------------------------------------------------------------------------
    async def start(self) -> None:
        if self._dispatcher is not None:
            return
        await self.key_manager.start()
        # the tokenizer tables load in a thread now, not on the first request (~1 s of CPU)
        await asyncio.to_thread(preload_encodings, self._served_models())
        transport = self._transport
        if transport is None:
            if self._session is None:
                connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300)
                self._session = aiohttp.ClientSession(connector=connector)
            transport = AiohttpTransport(self._session)
        routing = self._routing or self._load_routing()
        self._dispatcher = Dispatcher(
            self.key_manager, transport, routing, self.settings, self.usage
        )

    def _served_models(self) -> set[str]:
        keys = self.key_manager.keys.values()
        served = {b.model for key in keys for b in key.bindings if not b.is_pattern}
        return served or {"gpt-4o"}

    def _load_routing(self) -> RoutingTable:
        if self.settings.ROUTING_CONFIG_PATH:
            return RoutingTable.from_file(self.settings.ROUTING_CONFIG_PATH)
        source = str(self.key_manager.config.path or "keys.json")
        return RoutingTable.from_section(self.key_manager.config.routing, source=source)

    async def close(self) -> None:
        await self.flush()
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None
        await self.key_manager.close()
        self._dispatcher = None

    async def __aenter__(self) -> RequestRouter:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _ready(self) -> Dispatcher:
        if self._dispatcher is None:
            await self.start()
        assert self._dispatcher is not None
        return self._dispatcher

    @property
    def routing(self) -> RoutingTable:
        return self._dispatcher.routing if self._dispatcher else self._load_routing()

    # -- one-shot and raw messages ---------------------------------------------------------------
    async def send_one_shot(
        self,
        prompt: str,
        model_preference: str | None = None,
        expected_completion_tokens: int | None = None,
        system_prompt: str | None = None,
        temperature: float | None = None,
        *,
        raise_on_error: bool = False,
        **options: Any,
    ) -> Answer:
        """One prompt, no history. ``options``: max_tokens, tags, request_id, timeout, and
        provider extras (tools, tool_choice, response_format, top_p, stop ...)."""
        messages = with_system([{"role": "user", "content": prompt}], system_prompt)
        return await self.complete(
            messages,
            model_preference,
            expected_completion_tokens=expected_completion_tokens,
            temperature=temperature,
            raise_on_error=raise_on_error,
            **options,
        )

    async def complete(
        self,
        messages: Messages,
        model: str | None = None,
        *,
        expected_completion_tokens: int | None = None,
        temperature: float | None = None,
        raise_on_error: bool = False,
        **options: Any,
    ) -> Answer:
        """A call with the caller's own messages (the gateway's path)."""

        plan = make_plan(fixed(messages), model, expected_completion_tokens, temperature, options)
        return await self._answer(plan, raise_on_error)

    # -- conversations ---------------------------------------------------------------------------
    async def send_chat(
        self,
        conv_id: str,
        prompt: str,
        model_preference: str | None = None,
        expected_completion_tokens: int | None = None,
        system_prompt: str | None = None,
        temperature: float | None = None,
        *,
        raise_on_error: bool = False,
        **options: Any,
    ) -> Answer:
        """A turn of conversation ``conv_id``: its history (within the model's context window),
        then ``prompt``; the turn is stored when the call succeeds."""
        plan = self._chat_plan(
            conv_id,
            prompt,
            model_preference,
            expected_completion_tokens,
            system_prompt,
            temperature,
            options,
        )
        answer = await self._answer(
            plan, raise_on_error, store_turn(self.conversations, conv_id, prompt, system_prompt)
        )
        answer["conversation_id"] = conv_id
        return answer

    def _chat_plan(
        self,
        conv_id: str,
        prompt: str,
        model: str | None,
        expected: int | None,
        system_prompt: str | None,
        temperature: float | None,
        options: dict[str, Any],
    ) -> CallPlan:
        completion = (
            options.get("max_tokens") or expected or self.settings.EXPECTED_COMPLETION_TOKENS
        )
        history = history_for(self.conversations, conv_id, prompt, system_prompt, completion)
        plan = make_plan(history, model, expected, temperature, options)
        plan.attribution = replace(plan.attribution, conversation_id=conv_id)
        return plan

    async def truncate_conversation(
        self, conv_id: str, keep_last_n: int | None = None, *, max_tokens: int | None = None
    ) -> Any:
        return await self.conversations.truncate_conversation(
            conv_id, keep_last_n, max_tokens=max_tokens
        )

    # -- streaming -------------------------------------------------------------------------------
    async def stream_chat(
        self,
        conv_id: str,
        prompt: str,
        model_preference: str | None = None,
        expected_completion_tokens: int | None = None,
        system_prompt: str | None = None,
        temperature: float | None = None,
        **options: Any,
    ) -> AsyncIterator[StreamEvent]:
        """Like send_chat, as events: ``{"type": "delta", "content": ...}`` ..., then
        ``{"type": "done", **answer}``. The turn is stored when the stream completes."""
        plan = self._chat_plan(
            conv_id,
            prompt,
            model_preference,
            expected_completion_tokens,
            system_prompt,
            temperature,
            options,
        )
        async for event in self._stream(
            plan, store_turn(self.conversations, conv_id, prompt, system_prompt)
        ):
            if event["type"] == "done":
                event["conversation_id"] = conv_id
            yield event

    async def stream_one_shot(
        self,
        prompt: str,
        model_preference: str | None = None,
        expected_completion_tokens: int | None = None,
        system_prompt: str | None = None,
        temperature: float | None = None,
        **options: Any,
    ) -> AsyncIterator[StreamEvent]:
        messages = with_system([{"role": "user", "content": prompt}], system_prompt)
        async for event in self.stream_complete(
            messages,
            model_preference,
            expected_completion_tokens=expected_completion_tokens,
            temperature=temperature,
            **options,
        ):
            yield event

    async def stream_complete(
        self,
        messages: Messages,
        model: str | None = None,
        *,
        expected_completion_tokens: int | None = None,
        temperature: float | None = None,
        **options: Any,
    ) -> AsyncIterator[StreamEvent]:
        plan = make_plan(fixed(messages), model, expected_completion_tokens, temperature, options)
        async for event in self._stream(plan, None):
            yield event

    async def _stream(self, plan: CallPlan, on_done: OnDone | None) -> AsyncIterator[StreamEvent]:
        refused = plan_error(plan)
        if refused is not None:
            yield done_event(self._failed(refused, summary_of(plan, stream=True)))
            return
        summary = summary_of(plan, stream=True)
        try:
            dispatcher = await self._ready()
            summary = dispatcher.summary_for(plan, stream=True)
            done = await dispatcher.run(plan, stream=True, summary=summary)
        except StoreError as exc:
            yield done_event(self._failed(exc, summary))
            return
        except asyncio.CancelledError:
            self.usage.abandoned(summary)
            raise
        if done.error is not None or done.selection is None or done.rest is None:
            yield done_event(self._failed(done.error or ProviderError("no answer"), done.summary))
            return
        finished = False
        try:
            async with contextlib.aclosing(
                relay(self.key_manager, dispatcher, done, on_done)
            ) as events:
                async for event in events:
                    if event["type"] == "done":
                        self.usage.finish(event, done.summary)
                        finished = True
                    yield event
        finally:
            if not finished:  # the consumer stopped reading (or was cancelled) first
                self.usage.abandoned(done.summary)

    # -- shared ----------------------------------------------------------------------------------
    async def _answer(
        self, plan: CallPlan, raise_on_error: bool, on_done: OnDone | None = None
    ) -> Answer:
        refused = plan_error(plan)
        if refused is not None:
            return self._failed(refused, summary_of(plan), raise_on_error)
        summary = summary_of(plan)
        try:
            dispatcher = await self._ready()
            summary = dispatcher.summary_for(plan)
            done = await dispatcher.run(plan, summary=summary)
        except StoreError as exc:  # closed failure mode (STORE_FAILURE_MODE), at first use too
            return self._failed(exc, summary, raise_on_error)
        except asyncio.CancelledError:  # the caller went away: still one record
            self.usage.abandoned(summary)
            raise
        if done.error is not None or done.result is None:
            return self._failed(
                done.error or ProviderError("no answer"), done.summary, raise_on_error
            )
        answer = success_answer(done.result, done.summary)
        if on_done is not None:
            answer = await on_done(answer, done)
        self.usage.finish(answer, done.summary)
        return answer

    def _failed(self, error: BaseException, summary: CallSummary, raise_it: bool = False) -> Answer:
        answer = failure_answer(error, summary)
        self.usage.finish(answer, summary)
        if raise_it:
            raise error
        return answer

    # -- health ----------------------------------------------------------------------------------
    async def health_check(self) -> dict[str, Any]:
        """Document 004: ``healthy``, ``key_manager``, ``conversation_store`` (and the secret store).

        ``status``: ``ok``, ``degraded`` (the shared store is unreachable and this process serves
        on local limits: still healthy) or ``unhealthy``.
        """
        with contextlib.suppress(StoreError):  # closed failure mode: reported below
            await self._ready()
        return await router_health(self.key_manager, self.conversations)


_router: RequestRouter | None = None


def get_request_router(
    key_manager: KeyManager | None = None,
    *,
    key_store_path: str | Path | None = None,
    **kwargs: Any,
) -> RequestRouter:
    """The process's RequestRouter (document 004's ``get_request_router``), created on first call."""
    global _router
    if _router is None:
        if key_manager is None and key_store_path is not None:
            key_manager = KeyManager(key_store_path=key_store_path)
        _router = RequestRouter(key_manager, **kwargs)
    return _router


def reset_request_router() -> None:
    global _router
    _router = None


__all__ = ["RequestRouter", "RouterError", "get_request_router", "reset_request_router"]
