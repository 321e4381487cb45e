"""One call on one key, and its outcome: the secret fetched, the provider called, the attempt
recorded, the key's reservation settled (success) or its failure recorded (router/dispatch.py
decides what comes next from the answer). Settles go through the key manager's settle queue
(keys/settle_queue.py): a success's is sent after the answer returns, a failure's is waited for.

    secret unusable   -> the key is disabled, rotate at once
    provider error    -> recorded; 429 / 401 / unreachable rotate at once, others back off
    context length    -> NextModel: the next larger-context model
    stream with no event -> a transient failure
    cancelled         -> the reservation is given back as "may have reached the provider"
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

from kernel.errors import (
    ContextLengthExceededError,
    ProviderError,
    RateLimitedError,
    RouterError,
    SecretStoreError,
)
from kernel.log import get_logger
from kernel.settings import Settings
from kernel.usage_record import UsageRecord
from keys.manager import KeyManager, KeySelection
from lua.usage_records import nanos_to_usd
from router.answers import AttemptRecord, CallSummary
from router.dispatch_types import CallPlan, Dispatched, Messages
from router.provider_limits import figures, limits_json, plenty_of_room, provider_room
from router.providers import (
    ChatRequest,
    ProviderAdapter,
    RateLimitSnapshot,
    Transport,
    Usage,
    get_adapter,
)
from router.usage_log import UsageLog, last_user_text

log = get_logger("router.dispatch")

#: A success stores the provider's rate-limit headers (for status) at most this often per key:
#: they change on every call, and encoding and storing them each time cost more than the rest of
#: the settle. Failures always store them.
PROVIDER_LIMITS_EVERY_SECONDS = 1.0


class NextModel(Exception):
    """Leave this model, go on with the chain (its one argument: the error that says why)."""


class Failed(NamedTuple):
    """A call that did not answer: its error, and whether to rotate to the next key at once."""

    error: RouterError
    rotate_now: bool


class KeyCaller:
    """Calls a provider on one reserved key and settles what happened."""

    def __init__(
        self,
        manager: KeyManager,
        transport: Transport,
        settings: Settings,
        usage: UsageLog | None = None,
    ) -> None:
        self.manager = manager
        self.transport = transport
        self.settings = settings
        self.usage = usage
        self._adapters: dict[str, ProviderAdapter] = {}
        self._limits_stored: dict[str, float] = {}
        #: Keys with a success settled by this process (their first one is waited for).
        self._answered: set[str] = set()

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

    async def attempt(
        self,
        plan: CallPlan,
        selection: KeySelection,
        messages: Messages,
        completion: int,
        summary: CallSummary,
        stream: bool,
    ) -> Dispatched | Failed:
        """One call on one key. Answers the success (a Dispatched), or the failure; raises
        NextModel when the prompt is too long for the model."""
        key = selection.key
        record = AttemptRecord(selection.model, key.key_id, key.provider, "success")
        summary.attempts.append(record)
        secret = await self._secret(selection, record)
        if isinstance(secret, Failed):
            return secret
        request = chat_request(plan, selection, messages, completion, stream)
        adapter = self.adapter(key.provider)
        started = record.started = time.monotonic()
        try:
            if stream:
                events = adapter.stream(key, secret, request)
                first = await events.__anext__()
            else:
                result = await adapter.chat(key, secret, request)
        except ProviderError as exc:
            record.latency_ms = (time.monotonic() - started) * 1000
            return await self._failed(selection, record, exc)
        except StopAsyncIteration:
            return await self._no_event(selection, record)
        except BaseException:
            # cancelled (client went away) or a bug: the call may have reached the provider, and
            # says nothing of the key (a probe's slot is freed for the next caller)
            await asyncio.shield(self._settle_cancelled(selection))
            raise
        record.latency_ms = (time.monotonic() - started) * 1000
        summary.model, summary.provider = selection.model, key.provider
        summary.key_id, summary.key = key.key_id, self.manager.masked(key.key_id)
        if stream:
            return Dispatched(summary, messages, selection, first=first, rest=events)
        usage = result.usage
        actual = usage.prompt_tokens + usage.completion_tokens or None
        done = Dispatched(summary, messages, selection, result=result)
        await self.settle_success(done, actual, usage, result.rate_limits)
        return done

    async def _secret(self, selection: KeySelection, record: AttemptRecord) -> str | Failed:
        """The key's secret; a key whose secret cannot be read is released and disabled."""
        key = selection.key
        try:
            return await self.manager.get_secret(selection)
        except SecretStoreError as exc:
            await self.manager.release(selection)
            await self.manager.engine.disable(key.key_id, reason="secret")
            record.outcome, record.error_type = "secret", exc.error_type
            log.warning("key without a usable secret disabled", key=key.key_id, cause=exc.cause)
            return Failed(exc, True)

    async def _settle_cancelled(self, selection: KeySelection) -> None:
        """Queued (the settle queue owns it from here): nothing waits for it."""
        await self.manager.settles.submit(
            selection.key.key_id,
            lambda: self.manager.record_failure(
                selection, asyncio.CancelledError(), cost_nanos=None
            ),
        )

    async def _failed(
        self, selection: KeySelection, record: AttemptRecord, exc: ProviderError
    ) -> Failed:
        # in order behind the key's earlier settles, and waited for: what comes next (rotation,
        # another caller's pick) must see the key's new health
        limits, said = limits_json(exc.rate_limits), figures(exc.rate_limits)
        kind = await self.manager.settles.run(
            selection.key.key_id,
            lambda: self.manager.record_failure(selection, exc, provider_limits=limits, said=said),
        )
        record.outcome, record.error_type = kind, exc.error_type
        if isinstance(exc, ContextLengthExceededError):
            raise NextModel(exc) from exc
        rotate_now = kind in ("rate_limited", "auth", "unreachable")
        if isinstance(exc, RateLimitedError):
            log.info("rotating after 429", key=selection.masked_key, model=selection.model)
        return Failed(exc, rotate_now)

    async def _no_event(self, selection: KeySelection, record: AttemptRecord) -> Failed:
        """A stream that ended before its first event."""
        await self.manager.settles.run(
            selection.key.key_id,
            lambda: self.manager.record_failure(
                selection, ProviderError("stream ended before any event")
            ),
        )
        record.outcome = "transient"
        error = ProviderError(
            "the provider closed the stream without an answer", provider=selection.key.provider
        )
        return Failed(error, False)

    async def settle_success(
        self,
        done: Dispatched,
        actual_tokens: int | None,
        usage: Usage,
        snapshot: RateLimitSnapshot | None,
        *,
        content: str | None = None,
        usage_reported: bool = True,
    ) -> None:
        """Settle a call that worked (a whole answer or a finished stream), with what the
        provider's rate-limit headers said of its buckets, its real cost for its budgets and,
        in the same script run, its usage record (router/usage_log.py)."""
        selection, summary = done.selection, done.summary
        assert selection is not None
        cost, record = self._success_record(done, usage, content, usage_reported)
        # the settle writes the record; if it cannot, it goes the background way (settle())
        summary.recorded = record is not None
        split = (usage.prompt_tokens, usage.completion_tokens) if usage_reported else (None, None)
        key_id, now = selection.key.key_id, time.time()
        # headers that surely leave room are read by the settle (send_success: what is waited for)
        plenty = key_id in self._answered and plenty_of_room(snapshot, usage)
        room = None if plenty else provider_room(snapshot, usage, now)

        async def settle() -> None:
            # what only the settle needs is made here, off the answer's path (deferred mode)
            args = None if record is None or self.usage is None else self.usage.args(record, cost)
            settled = await self.manager.record_success(
                selection,
                actual_tokens,
                provider_limits=self._success_limits(key_id, snapshot),
                cost_nanos=cost,
                usage=args,
                said=figures(snapshot),
                split=split,
                **(provider_room(snapshot, usage, now) if room is None else room),
            )
            if not settled and record is not None and self.usage is not None:
                self.usage.unsettled(record, summary)

        short = room is not None and _provider_short(room, usage)
        await self.send_success(key_id, settle, short=short)

    async def send_success(
        self, key_id: str, settle: Callable[[], Awaitable[Any]], *, short: bool = False
    ) -> None:
        """Send a success's ``settle`` (a lease's too: router/lease_runner.py). SETTLE_MODE=deferred:
        queued, the answer returns now (keys/settle_queue.py); unless the provider said its
        buckets are (nearly) empty (``short``), or it is the key's first answer here (a key whose
        limits are learned takes one call at a time until then): the next reservation must see
        that, so it is waited for."""
        if key_id not in self._answered or short:
            self._answered.add(key_id)
            await self.manager.settles.run(key_id, settle)
        else:
            await self.manager.settles.submit(key_id, settle)

    def _success_record(
        self, done: Dispatched, usage: Usage, content: str | None, usage_reported: bool
    ) -> tuple[int | None, UsageRecord | None]:
        """The call's cost (nano-dollars, None: unknown) and the usage record its settle
        writes (None: none, e.g. served degraded: it goes the background way)."""
        selection, summary = done.selection, done.summary
        assert selection is not None
        if self.usage is None:
            return None, None
        cost = self.usage.cost_nanos(selection.model, usage)
        summary.cost = None if cost is None else nanos_to_usd(cost)
        summary.degraded = selection.reservation.degraded
        if not self.usage.enabled or selection.reservation.degraded:
            return cost, None
        if content is None and done.result is not None:
            content = done.result.content
        record = self.usage.record(
            summary,
            success=True,
            usage=usage,
            usage_reported=usage_reported,
            prompt=last_user_text(done.messages),
            completion=content,
        )
        summary.usage_record = record
        return cost, record

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


def _provider_short(room: dict[str, Any], usage: Usage) -> bool:
    """The provider's headers say another call like this one must wait, or that at most one more
    fits: its settle is waited for (it caps what the next reservations may send)."""
    if room.get("hold", 0.0) > 0:
        return True
    requests, tokens = room.get("provider_room", (None, None))
    total = usage.prompt_tokens + usage.completion_tokens
    return (requests is not None and requests < 2) or (tokens is not None and tokens < 2 * total)


def chat_request(
    plan: CallPlan, selection: KeySelection, messages: Messages, completion: int, stream: bool
) -> ChatRequest:
    """The provider request for one model (Anthropic requires ``max_tokens``: the completion
    estimate when the caller gave none)."""
    return ChatRequest(
        model=selection.model,
        messages=messages,
        max_tokens=plan.max_tokens
        if plan.max_tokens is not None
        else (completion if selection.key.provider == "anthropic" else None),
        temperature=plan.temperature,
        stream=stream,
        extras=dict(plan.extras),
        timeout=plan.timeout,
    )
