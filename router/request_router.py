"""RequestRouter: the part agents call (document 004's API).

    router = get_request_router()
    answer = await router.send_one_shot("Hello!", model_preference="gemini-2.5-flash")
    answer = await router.send_chat("debug_42", "What's the root cause?", expected_completion_tokens=1024)
    async for event in router.stream_chat("debug_42", "Go on"):   # {"type": "delta", ...} then "done"
        ...

Every answer is an ``Answer``, a typed dict (router/answers.py), and a stream yields
``StreamEvent`` s; failures do not raise unless ``raise_on_error=True``
(then the RouterError, e.g. AllKeysExhaustedError, is raised). A conversation's turn is stored
after a successful call, and ``conversation_saved`` says whether that worked.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

from conversation.store import ConversationStore
from kernel.errors import ClientRequestError, ProviderError, RouterError, StoreError
from kernel.log import get_logger
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
from router.dispatch import CallPlan, Dispatched, Dispatcher, Messages
from router.providers.catalog import completion_tokens_problem, context_window
from router.routing import RoutingTable
from router.streaming import OnDone, relay

log = get_logger("router")


class RequestRouter:
    """Token estimation, reservation, provider calls, rotation and fallbacks, conversations."""

    def __init__(
        self,
        key_manager: KeyManager | None = None,
        conversation_store: ConversationStore | None = None,
        *,
        settings: Settings | None = None,
        session: aiohttp.ClientSession | None = None,
        routing: RoutingTable | None = None,
    ) -> None:
        self.settings = settings or (key_manager.settings if key_manager else Settings.from_env())
        self.key_manager = key_manager or KeyManager(settings=self.settings)
        self.conversations = conversation_store or ConversationStore(
            self.key_manager.store, settings=self.settings
        )
        self._session = session
        self._owns_session = session is None
        self._routing = routing
        self._dispatcher: Dispatcher | None = None

    # -- life cycle ------------------------------------------------------------------------------
    async def start(self) -> None:
        if self._dispatcher is not None:
            return
        await self.key_manager.start()
        # the tokenizer tables load in a thread now, not on the first request (~1 s of CPU)
        await asyncio.to_thread(preload_encodings, self._served_models())
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300)
            self._session = aiohttp.ClientSession(connector=connector)
        routing = self._routing or self._load_routing()
        self._dispatcher = Dispatcher(self.key_manager, self._session, routing, self.settings)

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
        messages = _with_system([{"role": "user", "content": prompt}], system_prompt)
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

        async def fixed(_: str) -> Messages:
            return messages

        plan = self._plan(fixed, model, expected_completion_tokens, temperature, options)
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
            plan, raise_on_error, self._store_turn(conv_id, prompt, system_prompt)
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
        user = {"role": "user", "content": prompt}
        cache: dict[str, Messages] = {}
        completion = (
            options.get("max_tokens") or expected or self.settings.EXPECTED_COMPLETION_TOKENS
        )

        async def history(model_name: str) -> Messages:
            if model_name not in cache:
                window = context_window(model_name)
                budget = max(0, window - completion) if window else None
                found = await self.conversations.get_history(
                    conv_id,
                    model=model_name,
                    max_tokens=budget,
                    pending=[user],
                    system_prompt=system_prompt,
                )
                cache[model_name] = found.messages
            return cache[model_name]

        return self._plan(history, model, expected, temperature, options)

    def _store_turn(self, conv_id: str, prompt: str, system_prompt: str | None) -> OnDone:
        async def store(answer: Answer, done: Dispatched) -> Answer:
            saved = await self.conversations.append_exchange(
                conv_id,
                prompt,
                answer["content"] or "",
                model=answer["model"],
                provider=answer["provider"],
                key=answer["key"],
                key_id=answer["key_id"],
                system_prompt=system_prompt,
                turn_id=answer["request_id"],
            )
            if not saved.saved:
                log.error("conversation turn not saved", conversation=conv_id, error=saved.error)
            return {**answer, **saved.response_fields()}

        return store

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
        async for event in self._stream(plan, self._store_turn(conv_id, prompt, system_prompt)):
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
        messages = _with_system([{"role": "user", "content": prompt}], system_prompt)
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
        async def fixed(_: str) -> Messages:
            return messages

        plan = self._plan(fixed, model, expected_completion_tokens, temperature, options)
        async for event in self._stream(plan, None):
            yield event

    async def _stream(self, plan: CallPlan, on_done: OnDone | None) -> AsyncIterator[StreamEvent]:
        refused = _plan_error(plan)
        if refused is not None:
            yield done_event(failure_answer(refused, _summary(plan)))
            return
        try:
            dispatcher = await self._ready()
            done = await dispatcher.run(plan, stream=True)
        except StoreError as exc:
            yield done_event(failure_answer(exc, _summary(plan)))
            return
        self._mark_degraded(done)
        if done.error is not None or done.selection is None or done.rest is None:
            yield done_event(failure_answer(done.error or ProviderError("no answer"), done.summary))
            return
        async with contextlib.aclosing(
            relay(self.key_manager, dispatcher, done, on_done)
        ) as events:
            async for event in events:
                yield event

    # -- shared ----------------------------------------------------------------------------------
    def _plan(
        self,
        messages_for: Callable[[str], Awaitable[Messages]],
        model: str | None,
        expected: int | None,
        temperature: float | None,
        options: dict[str, Any],
    ) -> CallPlan:
        options = dict(options)
        return CallPlan(
            requested_model=model,
            messages_for=messages_for,
            max_tokens=options.pop("max_tokens", None),
            expected_completion=expected,
            temperature=temperature,
            tags=options.pop("tags", None),
            request_id=options.pop("request_id", None) or os.urandom(16).hex(),
            timeout=options.pop("timeout", None),
            extras=options,
        )

    async def _answer(
        self, plan: CallPlan, raise_on_error: bool, on_done: OnDone | None = None
    ) -> Answer:
        refused = _plan_error(plan)
        if refused is not None:
            if raise_on_error:
                raise refused
            return failure_answer(refused, _summary(plan))
        try:
            dispatcher = await self._ready()
            done = await dispatcher.run(plan)
        except StoreError as exc:  # closed failure mode (STORE_FAILURE_MODE), at first use too
            if raise_on_error:
                raise
            return failure_answer(exc, _summary(plan))
        self._mark_degraded(done)
        if done.error is not None or done.result is None:
            error = done.error or ProviderError("no answer")
            if raise_on_error:
                raise error
            return failure_answer(error, done.summary)
        answer = success_answer(done.result, done.summary)
        if on_done is not None:
            answer = await on_done(answer, done)
        return answer

    def _mark_degraded(self, done: Dispatched) -> None:
        """``degraded``: the call was reserved on degraded mode's local store (kernel/failover.py);
        an answer with no reservation says whether the store is degraded now."""
        selection = done.selection
        store = self.key_manager.store
        done.summary.degraded = (
            selection.reservation.degraded if selection is not None else store.degraded
        )

    # -- health ----------------------------------------------------------------------------------
    async def health_check(self) -> dict[str, Any]:
        """Document 004: ``healthy``, ``key_manager``, ``conversation_store`` (and the secret store).

        ``status``: ``ok``, ``degraded`` (the shared store is unreachable and this process serves
        on local limits: still healthy) or ``unhealthy``.
        """
        with contextlib.suppress(StoreError):  # closed failure mode: reported below
            await self._ready()
        keys = await self.key_manager.health_check()
        conversations = await self.conversations.health_check()
        healthy = bool(keys["healthy"]) and bool(conversations.get("healthy", False))
        degraded = self.key_manager.store.degraded
        return {
            "healthy": healthy,
            "status": "unhealthy" if not healthy else "degraded" if degraded else "ok",
            "degraded": degraded,
            "key_manager": keys,
            "conversation_store": conversations,
            "secret_store": keys.get("secret_store"),
        }


def _summary(plan: CallPlan) -> CallSummary:
    return CallSummary(plan.requested_model or "", request_id=plan.request_id)


def _plan_error(plan: CallPlan) -> ClientRequestError | None:
    """A request no provider may be asked: completion tokens past the model's output limit (or,
    for a model not in the catalog, a sane ceiling), or not a positive integer."""
    for param, value in (
        ("max_tokens", plan.max_tokens),
        ("expected_completion_tokens", plan.expected_completion),
    ):
        problem = None if value is None else completion_tokens_problem(value, plan.requested_model)
        if problem is not None:
            return ClientRequestError(f"Invalid value for '{param}': {problem}", param)
    return None


def _with_system(messages: Messages, system_prompt: str | None) -> Messages:
    return ([{"role": "system", "content": system_prompt}] if system_prompt else []) + messages


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
