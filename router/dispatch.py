"""One request's attempts: over the model chain, over each model's keys, until one answers.

    chain = routing.resolve(model)            aliases, wildcards, fallbacks
    for model in chain:
        estimate = prompt tokens + completion tokens
        rotate over the model's keys:
            reserve (KeyManager.select_key)  -> no room: next model at once
            call the provider
              429 / 401         -> record, next key at once (no sleep)
              5xx / timeout     -> record, back off with jitter, next key
              refused           -> release the reservation, next key
              context length    -> the next larger-context model
              400               -> final: the request itself is wrong
            success              -> settle with the provider's usage, done
    nothing had room             -> wait for the earliest room (bounded), else rate_limited

Attempts are bounded by ``MAX_ATTEMPTS`` and total time by ``RETRY_BUDGET_SECONDS``. For a stream
the call counts as answered once its first event arrived: after that a failure ends the stream
(it is never silently restarted on another key).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from keys.manager import KeyManager, KeySelection
from keys.models import provider_of_model
from router.answers import AttemptRecord, CallSummary
from router.errors import (
    AllKeysExhaustedError,
    BadRequestError,
    ContextLengthExceededError,
    ProviderError,
    RateLimitedError,
    RequestTooLargeError,
    RouterError,
    SecretStoreError,
)
from router.log import get_logger
from router.providers import (
    ChatRequest,
    ChatResult,
    ProviderAdapter,
    RateLimitSnapshot,
    StreamEvent,
    Usage,
    get_adapter,
)
from router.providers.catalog import context_window
from router.routing import RoutingTable
from router.settings import Settings
from router.tokens import count_message_tokens

log = get_logger("router.dispatch")

BACKOFF_BASE = 0.1
BACKOFF_CAP = 2.0
#: A success stores the provider's rate-limit headers (for status) at most this often per key:
#: they change on every call, and encoding and storing them each time cost more than the rest of
#: the settle. Failures always store them.
PROVIDER_LIMITS_EVERY_SECONDS = 1.0

Messages = list[dict[str, Any]]


@dataclass
class CallPlan:
    """What the caller asked for; ``messages_for(model)`` gives the messages to send to a model
    (a conversation's history is budgeted per model's context window)."""

    requested_model: str | None
    messages_for: Callable[[str], Awaitable[Messages]]
    max_tokens: int | None = None
    expected_completion: int | None = None
    temperature: float | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, str] | None = None
    request_id: str = ""
    timeout: float | None = None


@dataclass
class Dispatched:
    """The end of the attempts: a result, a live stream, or the final error."""

    summary: CallSummary
    messages: Messages = field(default_factory=list)
    selection: KeySelection | None = None
    result: ChatResult | None = None
    first: StreamEvent | None = None
    rest: AsyncIterator[StreamEvent] | None = None
    estimate: int = 0
    error: RouterError | None = None


class _NextModel(Exception):
    """Internal: leave this model, go on with the chain."""


class Dispatcher:
    def __init__(
        self,
        manager: KeyManager,
        session: aiohttp.ClientSession,
        routing: RoutingTable,
        settings: Settings,
    ) -> None:
        self.manager = manager
        self.session = session
        self.routing = routing
        self.settings = settings
        self._adapters: dict[str, ProviderAdapter] = {}
        self._limits_stored: dict[str, float] = {}

    def adapter(self, provider: str) -> ProviderAdapter:
        adapter = self._adapters.get(provider)
        if adapter is None:
            adapter = get_adapter(
                provider,
                self.session,
                timeout=self.settings.REQUEST_TIMEOUT_SECONDS,
                connect_timeout=self.settings.CONNECT_TIMEOUT_SECONDS,
            )
            self._adapters[provider] = adapter
        return adapter

    def served(self, model: str) -> bool:
        return bool(self.manager.engine.serving(model))

    def chain(self, requested: str) -> list[str]:
        return self.routing.resolve(requested, self.served)

    async def run(self, plan: CallPlan, *, stream: bool = False) -> Dispatched:
        requested = (
            plan.requested_model
            or self.routing.config.default_model
            or self.manager.default_model()
        )
        summary = CallSummary(requested_model=requested, request_id=plan.request_id)
        started = time.monotonic()
        deadline = started + self.settings.RETRY_BUDGET_SECONDS
        wait_left = self.settings.RESERVE_WAIT_SECONDS
        try:
            while True:
                outcome, earliest = await self._pass(plan, requested, summary, deadline, stream)
                if outcome.error is None or earliest is None:
                    return outcome
                pause = earliest - time.time()
                if pause > wait_left or time.monotonic() + pause > deadline:
                    return outcome
                wait_left -= max(0.0, pause)
                summary.waited += max(0.0, pause)
                await asyncio.sleep(max(0.0, pause) + random.uniform(0, 0.005))
        finally:
            summary.latency_ms = (time.monotonic() - started) * 1000

    async def _pass(
        self, plan: CallPlan, requested: str, summary: CallSummary, deadline: float, stream: bool
    ) -> tuple[Dispatched, float | None]:
        """Try every model of the chain once. Answers the outcome and, when the only trouble was
        missing room, the earliest unix time some model expects room."""
        models = self.chain(requested)
        last: RouterError | None = None
        room_at: list[float] = []
        only_capacity = True
        backoffs = 0
        i = 0
        while i < len(models):
            model = models[i]
            i += 1
            messages = await plan.messages_for(model)
            prompt_tokens = count_message_tokens(messages, model)
            window = context_window(model)
            if window and prompt_tokens > window:
                last = ContextLengthExceededError(
                    f"prompt of {prompt_tokens} tokens exceeds {model}'s context window of {window}"
                )
                only_capacity = False
                self._add_context_fallbacks(models, i, model, prompt_tokens)
                continue
            completion = self._completion_tokens(plan, model)
            estimate = prompt_tokens + completion
            exclude: list[str] = []
            while True:
                if (
                    len(summary.attempts) >= self.settings.MAX_ATTEMPTS
                    or time.monotonic() > deadline
                ):
                    return Dispatched(summary, messages, error=last or _budget_error()), None
                try:
                    selection = await self.manager.select_key(
                        model,
                        estimate,
                        exclude=exclude,
                        tags=plan.tags,
                        margin=self.settings.RESERVE_MARGIN_SECONDS,
                    )
                except RequestTooLargeError as exc:
                    last, only_capacity = exc, False
                    self._add_context_fallbacks(models, i, model, prompt_tokens)
                    break
                except AllKeysExhaustedError as exc:
                    summary.no_room += 1
                    if exc.retry_at is not None:
                        room_at.append(exc.retry_at)
                    else:
                        only_capacity = False
                    last = exc
                    break
                try:
                    done = await self._attempt(
                        plan, selection, messages, completion, summary, stream
                    )
                except _NextModel as step:
                    last, only_capacity = step.args[0], False
                    self._add_context_fallbacks(models, i, model, prompt_tokens)
                    break
                if isinstance(done, Dispatched):
                    done.estimate = estimate
                    return done, None
                error, rotate_now = done
                last, only_capacity = error, False
                if isinstance(error, BadRequestError):
                    return Dispatched(summary, messages, error=error), None
                exclude.append(selection.key_id)
                if not rotate_now:
                    backoffs += 1
                    pause = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (backoffs - 1)) * random.uniform(
                        0.5, 1.0
                    )
                    await asyncio.sleep(min(pause, max(0.0, deadline - time.monotonic())))
        outcome = Dispatched(summary, error=_final_error(last, requested, room_at))
        return outcome, (min(room_at) if room_at and only_capacity else None)

    async def _attempt(
        self,
        plan: CallPlan,
        selection: KeySelection,
        messages: Messages,
        completion: int,
        summary: CallSummary,
        stream: bool,
    ) -> Dispatched | tuple[RouterError, bool]:
        """One call on one key. Answers the success (a Dispatched), or (error, rotate at once)."""
        key = selection.key
        record = AttemptRecord(selection.model, key.key_id, key.provider, "success")
        summary.attempts.append(record)
        try:
            secret = await self.manager.get_secret(selection)
        except SecretStoreError as exc:
            await self.manager.release(selection)
            await self.manager.engine.disable(key.key_id, reason="secret")
            record.outcome, record.error_type = "secret", exc.error_type
            log.warning("key without a usable secret disabled", key=key.key_id, cause=exc.cause)
            return exc, True
        request = ChatRequest(
            model=selection.model,
            messages=messages,
            max_tokens=plan.max_tokens
            if plan.max_tokens is not None
            else (completion if key.provider == "anthropic" else None),
            temperature=plan.temperature,
            stream=stream,
            extras=dict(plan.extras),
            timeout=plan.timeout,
        )
        adapter = self.adapter(key.provider)
        started = time.monotonic()
        try:
            if stream:
                events = adapter.stream(key, secret, request)
                first = await events.__anext__()
            else:
                result = await adapter.chat(key, secret, request)
        except ProviderError as exc:
            record.latency_ms = (time.monotonic() - started) * 1000
            kind = await self.manager.record_failure(
                selection, exc, provider_limits=limits_json(exc.rate_limits)
            )
            record.outcome, record.error_type = kind, exc.error_type
            if isinstance(exc, ContextLengthExceededError):
                raise _NextModel(exc) from exc
            rotate_now = kind in ("rate_limited", "auth", "release")
            if isinstance(exc, RateLimitedError):
                log.info("rotating after 429", key=selection.masked_key, model=selection.model)
            return exc, rotate_now
        except StopAsyncIteration:
            await self.manager.record_failure(
                selection, ProviderError("stream ended before any event")
            )
            record.outcome = "transient"
            return ProviderError(
                "the provider closed the stream without an answer", provider=key.provider
            ), False
        except BaseException:
            # cancelled (client went away) or a bug: the call may have reached the provider
            await self.manager.record_failure(selection, asyncio.CancelledError())
            raise
        record.latency_ms = (time.monotonic() - started) * 1000
        summary.model, summary.provider = selection.model, key.provider
        summary.key_id, summary.key = key.key_id, self.manager.masked(key.key_id)
        if stream:
            return Dispatched(summary, messages, selection, first=first, rest=events)
        usage = result.usage
        actual = usage.prompt_tokens + usage.completion_tokens or None
        await self.settle_success(selection, actual, usage, result.rate_limits)
        return Dispatched(summary, messages, selection, result=result)

    async def settle_success(
        self,
        selection: KeySelection,
        actual_tokens: int | None,
        usage: Usage,
        snapshot: RateLimitSnapshot | None,
    ) -> None:
        """Settle a call that worked (a whole answer or a finished stream), with what the
        provider's rate-limit headers said of its buckets."""
        await self.manager.record_success(
            selection,
            actual_tokens,
            provider_limits=self._success_limits(selection.key.key_id, snapshot),
            **provider_room(snapshot, usage),
        )

    def _success_limits(self, key_id: str, snapshot: Any) -> str:
        """The provider's headers as JSON, or "" when this key's were stored less than
        PROVIDER_LIMITS_EVERY_SECONDS ago."""
        now = time.monotonic()
        if now - self._limits_stored.get(key_id, -1e9) < PROVIDER_LIMITS_EVERY_SECONDS:
            return ""
        limits = limits_json(snapshot)
        if limits:
            self._limits_stored[key_id] = now
        return limits

    def _completion_tokens(self, plan: CallPlan, model: str) -> int:
        if plan.max_tokens is not None:
            return plan.max_tokens
        return plan.expected_completion or self.settings.EXPECTED_COMPLETION_TOKENS

    def _add_context_fallbacks(self, models: list[str], at: int, model: str, tokens: int) -> None:
        """Put the larger-window models for ``model`` next in the chain."""
        provider = provider_of_model(model) or next(
            (k.provider for k, _, _ in self.manager.engine.serving(model)), ""
        )
        served = [
            (b.model, k.provider)
            for k in self.manager.keys.values()
            for b in k.bindings
            if not b.is_pattern
        ]
        for offset, name in enumerate(
            self.routing.context_fallbacks(model, tokens, served, provider)
        ):
            if name not in models:
                models.insert(at + offset, name)


def provider_room(snapshot: RateLimitSnapshot | None, usage: Usage) -> dict[str, Any]:
    """``record_success`` arguments from what the provider's headers said of its own buckets."""
    if snapshot is None:
        return {}
    room = snapshot.room_for(usage.prompt_tokens, usage.completion_tokens)
    return {
        "hold": room.hold,
        "provider_room": (room.requests, room.tokens),
        "provider_tolerance": (room.requests_tolerance, room.tokens_tolerance),
    }


def limits_json(snapshot: Any) -> str:
    """The provider's rate-limit snapshot as compact JSON for status ("" when it said nothing)."""
    if snapshot is None or getattr(snapshot, "empty", True):
        return ""
    return json.dumps(snapshot.as_dict(), separators=(",", ":"))


def _budget_error() -> RouterError:
    return ProviderError("retry budget exhausted (attempts or time)")


def _final_error(last: RouterError | None, requested: str, room_at: list[float]) -> RouterError:
    if room_at and isinstance(last, AllKeysExhaustedError):
        earliest = min(room_at)
        return AllKeysExhaustedError(
            requested, retry_at=earliest, now=time.time(), reason=last.reason, keys=last.keys
        )
    return last or AllKeysExhaustedError(
        requested, retry_at=None, now=time.time(), reason="no key serves this model"
    )
