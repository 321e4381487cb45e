"""One request's attempts: over the model chain, over each model's keys, until one answers.

    chain = routing.resolve(model)            aliases, wildcards, fallbacks
    for model in chain:
        estimate = prompt tokens + completion tokens
        rotate over the model's keys:
            reserve (KeyManager.select_key)  -> no room: next model at once
            call the provider
              429 / 401         -> record, next key at once (no sleep)
              5xx / timeout     -> record, back off with jitter, next key
              unreachable       -> give the reservation back, cool the key briefly, next key
              context length    -> the next larger-context model
              400               -> final: the request itself is wrong
            success              -> settle with the provider's usage, done
            every key out because its provider failed (open circuits) -> that failure, at once
    nothing had room             -> wait for the earliest room (bounded), else rate_limited

The answer of a request that did not succeed is its last failure (class and message, with the
time until a key is expected back as ``retry_after``); ``rate_limited`` only when limits alone
left no room; ``model_not_available`` when no configured key serves the model. Times from the
store are used as durations (seconds from the store's ``now``) and waited on the monotonic clock,
so a host clock off by minutes changes nothing.

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

from kernel.errors import (
    AllKeysExhaustedError,
    BadRequestError,
    ContextLengthExceededError,
    ModelNotAvailableError,
    ProviderError,
    RateLimitedError,
    RequestTooLargeError,
    RouterError,
    SecretStoreError,
)
from kernel.log import get_logger
from kernel.providers import provider_of_model
from kernel.settings import Settings
from kernel.tokens import count_message_tokens_async
from keys.manager import KeyManager, KeySelection
from keys.room import NoRoom, RoomWait
from router.answers import AttemptRecord, CallSummary
from router.providers import (
    ChatRequest,
    ChatResult,
    ProviderAdapter,
    RateLimitSnapshot,
    StreamEvent,
    Transport,
    Usage,
    get_adapter,
)
from router.providers.catalog import context_window
from router.routing import RoutingTable

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


@dataclass
class _PassState:
    """What one pass over the chain found, for its final answer."""

    #: The last failure of a call (or the upstream failure that opened every key of a model).
    failure: RouterError | None = None
    #: The last other reason a model could not serve (no room, too large, context length).
    last: RouterError | None = None
    #: Monotonic times some key is expected back.
    room_at: list[float] = field(default_factory=list)
    only_capacity: bool = True
    unserved: list[str] = field(default_factory=list)

    def no_room(self, exc: AllKeysExhaustedError) -> None:
        self.last = exc
        if exc.retry_after is not None:
            self.room_at.append(time.monotonic() + exc.retry_after)
        if exc.upstream is not None:
            self.failure = self.failure or exc.upstream
            self.only_capacity = False
        elif exc.retry_after is None:
            self.only_capacity = False

    def other(self, exc: RouterError) -> None:
        self.last, self.only_capacity = exc, False

    def failed(self, exc: RouterError) -> None:
        self.failure, self.only_capacity = exc, False


class Dispatcher:
    def __init__(
        self,
        manager: KeyManager,
        transport: Transport,
        routing: RoutingTable,
        settings: Settings,
    ) -> None:
        self.manager = manager
        self.transport = transport
        self.routing = routing
        self.settings = settings
        self._adapters: dict[str, ProviderAdapter] = {}
        self._limits_stored: dict[str, float] = {}

    def adapter(self, provider: str) -> ProviderAdapter:
        adapter = self._adapters.get(provider)
        if adapter is None:
            adapter = get_adapter(
                provider,
                self.transport,
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
        room = RoomWait(self.settings.RESERVE_WAIT_SECONDS, deadline, jitter=0.005)

        async def attempt() -> Dispatched | NoRoom[Dispatched]:
            outcome, earliest = await self._pass(plan, requested, summary, deadline, stream)
            if outcome.error is None or earliest is None:
                return outcome
            return NoRoom(outcome, earliest - time.monotonic())

        try:
            got = await room.until_room(attempt)
            return got.answer if isinstance(got, NoRoom) else got
        finally:
            summary.waited += room.waited
            summary.latency_ms = (time.monotonic() - started) * 1000

    async def _pass(
        self, plan: CallPlan, requested: str, summary: CallSummary, deadline: float, stream: bool
    ) -> tuple[Dispatched, float | None]:
        """Try every model of the chain once. Answers the outcome and, when the only trouble was
        missing room, the earliest monotonic time some model expects room."""
        models = self.chain(requested)
        found = _PassState()
        backoffs = 0
        i = 0
        while i < len(models):
            model = models[i]
            i += 1
            if not self.served(model):
                found.unserved.append(model)
                continue
            messages = await plan.messages_for(model)
            prompt_tokens = await count_message_tokens_async(messages, model)
            window = context_window(model)
            if window and prompt_tokens > window:
                found.other(
                    ContextLengthExceededError(
                        f"prompt of {prompt_tokens} tokens exceeds {model}'s context window "
                        f"of {window}"
                    )
                )
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
                    error = found.failure or found.last or _budget_error()
                    return Dispatched(summary, messages, error=error), None
                try:
                    selection = await self.manager.select_key(
                        model,
                        estimate,
                        exclude=exclude,
                        tags=plan.tags,
                        margin=self.settings.RESERVE_MARGIN_SECONDS,
                    )
                except RequestTooLargeError as exc:
                    found.other(exc)
                    self._add_context_fallbacks(models, i, model, prompt_tokens)
                    break
                except AllKeysExhaustedError as exc:
                    summary.no_room += 1
                    found.no_room(exc)
                    break
                try:
                    done = await self._attempt(
                        plan, selection, messages, completion, summary, stream
                    )
                except _NextModel as step:
                    found.other(step.args[0])
                    self._add_context_fallbacks(models, i, model, prompt_tokens)
                    break
                if isinstance(done, Dispatched):
                    done.estimate = estimate
                    return done, None
                error, rotate_now = done
                found.failed(error)
                if isinstance(error, BadRequestError):
                    return Dispatched(summary, messages, error=error), None
                exclude.append(selection.key_id)
                if not rotate_now:
                    backoffs += 1
                    pause = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (backoffs - 1)) * random.uniform(
                        0.5, 1.0
                    )
                    await asyncio.sleep(min(pause, max(0.0, deadline - time.monotonic())))
        outcome = Dispatched(summary, error=self._final_error(found, requested))
        earliest = min(found.room_at) if found.room_at and found.only_capacity else None
        return outcome, earliest

    def _final_error(self, found: _PassState, requested: str) -> RouterError:
        """The answer of a pass that found nothing: the last failure, else no room (or another
        reason), else the model is not served."""
        room = max(0.0, min(found.room_at) - time.monotonic()) if found.room_at else None
        if found.failure is not None:
            if isinstance(found.failure, ProviderError) and found.failure.retry_after is None:
                found.failure.retry_after = room
            if isinstance(found.failure, RateLimitedError) and found.failure.retry_after is None:
                # rate_limited always says when: the cooldown the 429 started
                found.failure.retry_after = self.settings.RATE_LIMIT_COOLDOWN_SECONDS
            return found.failure
        if isinstance(found.last, AllKeysExhaustedError):
            ex = found.last
            return AllKeysExhaustedError(
                requested,
                retry_at=None if room is None else ex.now + room,
                now=ex.now,
                reason=ex.reason,
                keys=ex.keys,
            )
        if found.last is not None:
            return found.last
        return ModelNotAvailableError(requested, self.served_models())

    def served_models(self) -> list[str]:
        """Model names the active keys serve (a pattern with its provider: ``* (openai)``),
        and the configured aliases."""
        names = {
            f"{b.model} ({k.provider})" if b.is_pattern else b.model
            for k in self.manager.keys.values()
            if k.active
            for b in k.bindings
        }
        return sorted(names | set(self.routing.advertised()))

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
            rotate_now = kind in ("rate_limited", "auth", "unreachable")
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
            # cancelled (client went away) or a bug: the call may have reached the provider, and
            # says nothing of the key (a probe's slot is freed for the next caller)
            await asyncio.shield(self.manager.record_failure(selection, asyncio.CancelledError()))
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
