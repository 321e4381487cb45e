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

Here: the passes over the chain and the rotation over a model's keys. One call on one key and its
outcome: router/attempt.py; what a pass found and its final answer: router/pass_state.py; the
plan and the answer types: router/dispatch_types.py.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field

from kernel.errors import (
    AllKeysExhaustedError,
    BadRequestError,
    BudgetExceededError,
    ContextLengthExceededError,
    RequestTooLargeError,
)
from kernel.providers import provider_of_model
from kernel.settings import Settings
from kernel.tokens import count_message_tokens_async
from keys.manager import KeyManager, KeySelection
from keys.room import NoRoom, RoomWait
from router.answers import CallSummary
from router.attempt import PROVIDER_LIMITS_EVERY_SECONDS, KeyCaller, NextModel
from router.dispatch_types import CallPlan, Dispatched, Messages
from router.pass_state import PassState
from router.provider_limits import limits_json, provider_room
from router.providers import ProviderAdapter, RateLimitSnapshot, Transport, Usage
from router.providers.catalog import context_window
from router.routing import RoutingTable
from router.usage_budgets import budget_alerts, budget_fields
from router.usage_log import UsageLog

__all__ = [
    "BACKOFF_BASE",
    "BACKOFF_CAP",
    "PROVIDER_LIMITS_EVERY_SECONDS",
    "CallPlan",
    "Dispatched",
    "Dispatcher",
    "Messages",
    "limits_json",
    "provider_room",
]

BACKOFF_BASE = 0.1
BACKOFF_CAP = 2.0


@dataclass
class _Request:
    """One request's fixed parts, the same for each of its passes over the chain."""

    plan: CallPlan
    requested: str
    summary: CallSummary
    deadline: float
    stream: bool
    #: Larger-window models put into the chain because the prompt did not fit (FallbackReason).
    context_models: set[str] = field(default_factory=set)


class Dispatcher:
    def __init__(
        self,
        manager: KeyManager,
        transport: Transport,
        routing: RoutingTable,
        settings: Settings,
        usage: UsageLog | None = None,
    ) -> None:
        self.manager = manager
        self.transport = transport
        self.routing = routing
        self.settings = settings
        self.usage = usage
        self.caller = KeyCaller(manager, transport, settings, usage)

    def adapter(self, provider: str) -> ProviderAdapter:
        return self.caller.adapter(provider)

    def served(self, model: str) -> bool:
        return bool(self.manager.engine.serving(model))

    def chain(self, requested: str) -> list[str]:
        return self.routing.resolve(requested, self.served)

    def summary_for(self, plan: CallPlan, *, stream: bool = False) -> CallSummary:
        """The summary a dispatch of ``plan`` fills in (the caller keeps it: a cancelled call's
        usage record is made from it)."""
        requested = (
            plan.requested_model
            or self.routing.config.default_model
            or self.manager.default_model()
        )
        return CallSummary(
            requested_model=requested,
            request_id=plan.request_id,
            attribution=plan.attribution,
            stream=stream,
        )

    async def run(
        self, plan: CallPlan, *, stream: bool = False, summary: CallSummary | None = None
    ) -> Dispatched:
        summary = summary or self.summary_for(plan, stream=stream)
        requested = summary.requested_model
        started = summary.started
        deadline = started + self.settings.RETRY_BUDGET_SECONDS
        room = RoomWait(self.settings.RESERVE_WAIT_SECONDS, deadline, jitter=0.005)
        request = _Request(plan, requested, summary, deadline, stream)

        async def attempt() -> Dispatched | NoRoom[Dispatched]:
            summary.waited = room.waited  # so far: a usage record made at a settle has it
            outcome, earliest = await self._pass(request)
            if outcome.error is None or earliest is None:
                return outcome
            learning = getattr(outcome.error, "reason", "") == "learning"
            return NoRoom(outcome, earliest - time.monotonic(), learning)

        try:
            got = await room.until_room(attempt)
            done = got.answer if isinstance(got, NoRoom) else got
            # degraded: reserved on degraded mode's local store (kernel/failover.py); with no
            # reservation, whether the store is degraded now
            selection = done.selection
            summary.degraded = (
                selection.reservation.degraded if selection else self.manager.store.degraded
            )
            return done
        finally:
            summary.waited = room.waited
            summary.latency_ms = (time.monotonic() - started) * 1000

    async def _pass(self, request: _Request) -> tuple[Dispatched, float | None]:
        """Try every model of the chain once. Answers the outcome and, when the only trouble was
        missing room, the earliest monotonic time some model expects room."""
        models = self.chain(request.requested)
        found = PassState()
        i = 0
        while i < len(models):
            model = models[i]
            i += 1
            if not self.served(model):
                found.unserved.append(model)
                continue
            done = await self._try_model(request, models, i, model, found)
            if done is not None:
                return done, None
        error = found.final_error(
            request.requested, self.settings.RATE_LIMIT_COOLDOWN_SECONDS, self.served_models
        )
        return Dispatched(request.summary, error=error), found.earliest_room()

    async def _try_model(
        self, request: _Request, models: list[str], at: int, model: str, found: PassState
    ) -> Dispatched | None:
        """Try one model of the chain (``models[at - 1]``). Answers the request's end, or None to
        go on with the chain (larger-context models put next when the prompt is too long)."""
        messages = await request.plan.messages_for(model)
        prompt_tokens = await count_message_tokens_async(messages, model)
        window = context_window(model)
        try:
            if window and prompt_tokens > window:
                raise NextModel(
                    ContextLengthExceededError(
                        f"prompt of {prompt_tokens} tokens exceeds {model}'s context window "
                        f"of {window}"
                    )
                )
            completion = self._completion_tokens(request.plan, model)
            done = await self._rotate(request, model, messages, completion, prompt_tokens, found)
        except NextModel as step:
            found.other(step.args[0])
            added = self._add_context_fallbacks(models, at, model, prompt_tokens)
            request.context_models.update(added)
            return None
        if done is not None and done.error is None and at > 1:  # not the chain's first model
            context = model in request.context_models
            request.summary.fallback_reason = "context_window" if context else "fallback"
        return done

    async def _rotate(
        self,
        request: _Request,
        model: str,
        messages: Messages,
        completion: int,
        prompt_tokens: int,
        found: PassState,
    ) -> Dispatched | None:
        """Rotate over the model's keys until one answers or the request's end is known. None:
        the model has no room (go on with the chain); NextModel: it cannot take the prompt."""
        estimate = prompt_tokens + completion
        summary = request.summary
        exclude: list[str] = []
        while True:
            if len(summary.attempts) >= self.settings.MAX_ATTEMPTS or (
                time.monotonic() > request.deadline
            ):
                return Dispatched(summary, messages, error=found.out_of_budget())
            try:
                selection = await self._select(
                    request,
                    model,
                    (estimate, completion),
                    exclude,
                    self._cost(model, prompt_tokens, completion),
                )
            except AllKeysExhaustedError as exc:
                summary.no_room += 1
                found.no_room(exc)
                return None
            except BudgetExceededError as exc:  # final: nothing else may be spent for it
                return Dispatched(summary, messages, error=exc)
            done = await self.caller.attempt(
                request.plan, selection, messages, completion, summary, request.stream
            )
            if isinstance(done, Dispatched):
                done.estimate = estimate
                return done
            found.failed(done.error)
            if isinstance(done.error, BadRequestError):
                return Dispatched(summary, messages, error=done.error)
            exclude.append(selection.key_id)
            if not done.rotate_now:
                await self._back_off(found, request.deadline)

    async def _select(
        self,
        request: _Request,
        model: str,
        tokens: tuple[int, int],
        exclude: list[str],
        cost_nanos: int | None,
    ) -> KeySelection:
        """Reserve a key of ``model`` (not in ``exclude``) for ``tokens`` (the estimate, and how
        much of it is the completion) and the call's worst-case cost on its budgets; too large
        for every key: NextModel; a budget spent: BudgetExceededError; the gateway's limits
        (``plan.admission``, charged by the call's first reservation) refused:
        AdmissionRefusedError, raised to the caller (nothing reserved, nothing recorded)."""
        try:
            selection = await self.manager.select_key(
                model,
                tokens[0],
                output_tokens=tokens[1],
                exclude=exclude,
                tags=request.plan.tags,
                margin=self.settings.RESERVE_MARGIN_SECONDS,
                budgets=budget_fields(request.plan.attribution),
                cost_nanos=cost_nanos,
                admission=request.plan.admission,
            )
        except RequestTooLargeError as exc:
            raise NextModel(exc) from exc
        if selection.reservation.alerts:
            hooks = self.usage.alert_hooks if self.usage is not None else ()
            budget_alerts(selection.reservation.alerts, request.plan.attribution, hooks)
        return selection

    def _cost(self, model: str, prompt_tokens: int, completion: int) -> int | None:
        """The call's worst case on ``model`` (None: no price known, or no usage log)."""
        if self.usage is None:
            return None
        return self.usage.estimate_nanos(model, prompt_tokens, completion)

    async def _back_off(self, found: PassState, deadline: float) -> None:
        """Sleep before the next key after a transient failure: exponential with jitter, capped,
        never past the deadline."""
        found.backoffs += 1
        pause = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (found.backoffs - 1)) * random.uniform(
            0.5, 1.0
        )
        await asyncio.sleep(min(pause, max(0.0, deadline - time.monotonic())))

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
        """Settle a call that worked (a whole answer or a finished stream): router/attempt.py."""
        await self.caller.settle_success(
            done, actual_tokens, usage, snapshot, content=content, usage_reported=usage_reported
        )

    def _completion_tokens(self, plan: CallPlan, model: str) -> int:
        if plan.max_tokens is not None:
            return plan.max_tokens
        return plan.expected_completion or self.settings.EXPECTED_COMPLETION_TOKENS

    def _add_context_fallbacks(
        self, models: list[str], at: int, model: str, tokens: int
    ) -> list[str]:
        """Put the larger-window models for ``model`` next in the chain; answers those put."""
        provider = provider_of_model(model) or next(
            (k.provider for k, _, _ in self.manager.engine.serving(model)), ""
        )
        served = [
            (b.model, k.provider)
            for k in self.manager.keys.values()
            for b in k.bindings
            if not b.is_pattern
        ]
        added = []
        for offset, name in enumerate(
            self.routing.context_fallbacks(model, tokens, served, provider)
        ):
            if name not in models:
                models.insert(at + offset, name)
                added.append(name)
        return added
