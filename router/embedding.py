"""Embeddings through the pool: ``await router.embed(texts, model=...)``.

The same machinery as chat (router/dispatch.py): the model chain (aliases, fallbacks), one
reservation per batch on a key of the model (RPM 1, TPM the batch's tokens counted with the
router's tokenizer, its worst-case cost on the budgets), rotation over the keys (a 429 or 401
moves to the next key at once, a 5xx backs off first), the settle with the provider's usage and
the call's one usage record (router/usage_log.py). Only the call differs: :class:`EmbedCaller`
calls the provider's embeddings API (router/providers/embeddings.py) instead of chat, and
:class:`EmbedDispatcher` counts the inputs' tokens instead of a chat's (no completion) and never
falls back to a chat model for a long input.

The answer (:class:`EmbedAnswer`) follows the chat answer's conventions: ``success``,
``embeddings`` (one list of floats per input, in order), ``model``, ``provider``, ``key_id``,
``key`` (masked), ``tokens`` ``{prompt, total}``, ``cost``, ``error``, ``error_type``,
``retry_after``, ``latency_ms``, ``attempts``, ``request_id``, ``degraded`` (and, as in the chat
answer, ``requested_model``, ``rotations``, ``fallback_used``, ``fallback_reason``, ``no_room``,
``waited_ms``).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypedDict

from kernel.errors import (
    BadRequestError,
    ClientRequestError,
    ContextLengthExceededError,
    ProviderError,
    RouterError,
    StoreError,
)
from kernel.tokens import THREAD_COUNT_CHARS, count_tokens
from keys.manager import KeySelection
from router.answers import (
    Answer,
    AttemptRecord,
    CallSummary,
    FallbackReason,
    failure_answer,
    success_answer,
)
from router.attempt import Failed, KeyCaller, NextModel
from router.dispatch import Dispatcher, _Request
from router.dispatch_types import CallPlan, Dispatched, Messages
from router.error_types import ErrorType
from router.pass_state import PassState
from router.plans import attribution_of, fixed, plan_error, summary_of
from router.providers import ChatResult
from router.providers.catalog import model_info
from router.providers.embeddings import EmbedRequest, EmbedResult, embed, supports_embeddings
from router.usage_log import UsageLog

#: Inputs one call may carry at most (OpenAI's limit per request).
MAX_INPUTS = 2048


class EmbedTokens(TypedDict):
    prompt: int
    total: int


class EmbedAnswer(TypedDict):
    """The answer of ``RequestRouter.embed`` (README "Python API")."""

    success: bool
    embeddings: list[list[float]]
    model: str
    provider: str | None
    key_id: str | None
    key: str | None
    tokens: EmbedTokens
    cost: float | None
    error: str | None
    error_type: ErrorType | None
    retry_after: float | None
    latency_ms: float
    attempts: int
    request_id: str
    degraded: bool
    # as in the chat answer: what the call went through
    requested_model: str
    rotations: int
    fallback_used: bool
    #: ``fallback`` when a model of the asked one's fallback chain served, else None.
    fallback_reason: FallbackReason | None
    no_room: int
    waited_ms: float


@dataclass
class EmbedPlan(CallPlan):
    """A chat plan's fields (model, attribution, tags ...) and the texts to embed."""

    inputs: list[str] = field(default_factory=list)
    dimensions: int | None = None


@dataclass
class EmbedDispatched(Dispatched):
    embedded: EmbedResult | None = None


class EmbedCaller(KeyCaller):
    """Calls a provider's embeddings API on one reserved key and settles what happened."""

    async def attempt(
        self,
        plan: CallPlan,
        selection: KeySelection,
        messages: Messages,
        completion: int,
        summary: CallSummary,
        stream: bool,
    ) -> Dispatched | Failed:
        assert isinstance(plan, EmbedPlan)
        key = selection.key
        if not supports_embeddings(key.provider):
            await self.manager.release(selection)
            raise NextModel(BadRequestError(f"{key.provider} offers no embeddings API"))
        record = AttemptRecord(selection.model, key.key_id, key.provider, "success")
        summary.attempts.append(record)
        secret = await self._secret(selection, record)
        if isinstance(secret, Failed):
            return secret
        request = EmbedRequest(
            selection.model, plan.inputs, plan.dimensions, plan.attribution.user, plan.timeout
        )
        result = await self._call(selection, record, secret, request)
        if isinstance(result, Failed):
            return result
        summary.model, summary.provider = selection.model, key.provider
        summary.key_id, summary.key = key.key_id, self.manager.masked(key.key_id)
        done = EmbedDispatched(summary, messages, selection, embedded=result)
        usage = result.usage
        await self.settle_success(
            done,
            usage.prompt_tokens or None,
            usage,
            result.rate_limits,
            content="",
            usage_reported=result.usage_reported,
        )
        return done

    async def _call(
        self, selection: KeySelection, record: AttemptRecord, secret: str, request: EmbedRequest
    ) -> EmbedResult | Failed:
        started = record.started = time.monotonic()
        try:
            result = await embed(
                self.adapter(selection.key.provider), selection.key, secret, request
            )
        except ProviderError as exc:
            record.latency_ms = (time.monotonic() - started) * 1000
            return await self._failed(selection, record, exc)
        except BaseException:  # cancelled or a bug: as chat (router/attempt.py), queued
            await asyncio.shield(self._settle_cancelled(selection))
            raise
        record.latency_ms = result.latency_ms
        return result


class EmbedDispatcher(Dispatcher):
    """The chat dispatcher's passes and rotation, with the embeddings call and token count."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.caller = EmbedCaller(self.manager, self.transport, self.settings, self.usage)

    async def _try_model(
        self, request: _Request, models: list[str], at: int, model: str, found: PassState
    ) -> Dispatched | None:
        plan = request.plan
        assert isinstance(plan, EmbedPlan)
        try:
            tokens = await _count(plan.inputs, model)
            _check_model(model, tokens)
            messages = [{"role": "user", "content": "\n".join(plan.inputs)}]
            done = await self._rotate(request, model, messages, 0, sum(tokens), found)
        except NextModel as step:
            found.other(step.args[0])
            return None
        if done is not None and done.error is None and at > 1:  # not the chain's first model
            request.summary.fallback_reason = "fallback"
        return done


async def _count(inputs: list[str], model: str) -> list[int]:
    if sum(len(t) for t in inputs) < THREAD_COUNT_CHARS:
        return [count_tokens(t, model) for t in inputs]
    return await asyncio.to_thread(lambda: [count_tokens(t, model) for t in inputs])


def _check_model(model: str, tokens: list[int]) -> None:
    """NextModel when the catalog knows ``model`` as a chat model or an input is over its limit."""
    info = model_info(model)
    if info is None:
        return
    if info.kind != "embedding":
        raise NextModel(BadRequestError(f"{model} is not an embedding model"))
    for index, count in enumerate(tokens):
        if count > info.context_window:
            raise NextModel(
                ContextLengthExceededError(
                    f"input[{index}] has {count} tokens, over {model}'s input limit of "
                    f"{info.context_window}"
                )
            )


def embed_plan(
    texts: str | Sequence[str],
    model: str | None,
    dimensions: int | None,
    options: dict[str, Any],
) -> EmbedPlan:
    options = dict(options)
    inputs = [texts] if isinstance(texts, str) else list(texts)
    return EmbedPlan(
        requested_model=model,
        messages_for=fixed([]),
        tags=options.pop("tags", None),
        request_id=options.pop("request_id", None) or os.urandom(16).hex(),
        timeout=options.pop("timeout", None),
        attribution=attribution_of(options),
        inputs=inputs,
        dimensions=dimensions,
    )


def embed_problem(plan: EmbedPlan) -> ClientRequestError | None:
    """What no provider may be asked: no input, an empty or non-text input, too many inputs,
    ``dimensions`` not a positive integer (and what chat checks: ``user``, ``team``)."""
    inputs = plan.inputs
    if not isinstance(plan.requested_model, str) or not plan.requested_model:
        return ClientRequestError(
            "Invalid value for 'model': an embedding model is needed", "model"
        )
    if not inputs:
        return ClientRequestError("Invalid value for 'input': expected at least one text", "input")
    if len(inputs) > MAX_INPUTS:
        return ClientRequestError(
            f"Invalid value for 'input': {len(inputs)} texts, at most {MAX_INPUTS}", "input"
        )
    for index, text in enumerate(inputs):
        if not isinstance(text, str) or not text:
            return ClientRequestError(
                f"Invalid value for 'input[{index}]': expected a non-empty string", "input"
            )
    dims = plan.dimensions
    if dims is not None and (isinstance(dims, bool) or not isinstance(dims, int) or dims < 1):
        return ClientRequestError(
            "Invalid value for 'dimensions': expected a positive integer", "dimensions"
        )
    return plan_error(plan)


class EmbedAPI:
    """``RequestRouter.embed`` (a mixin of RequestRouter, which supplies ``usage``/``_ready``)."""

    _embedders: tuple[Dispatcher, EmbedDispatcher] | None = None

    if TYPE_CHECKING:
        usage: UsageLog

        async def _ready(self) -> Dispatcher: ...

    async def embed(
        self,
        texts: str | Sequence[str],
        model: str,
        *,
        dimensions: int | None = None,
        user: str | None = None,
        team: str | None = None,
        raise_on_error: bool = False,
        **options: Any,
    ) -> EmbedAnswer:
        """One vector per text (``texts``: a string or a list of them) from embedding model
        ``model``, through the pool like a chat call. ``options``: tags, request_id, timeout."""
        plan = embed_plan(texts, model, dimensions, {**options, "user": user, "team": team})
        refused = embed_problem(plan)
        if refused is not None:
            return _failed(self.usage, refused, summary_of(plan), raise_on_error)
        try:
            dispatcher = await self._ready()
        except StoreError as exc:
            return _failed(self.usage, exc, summary_of(plan), raise_on_error)
        if self._embedders is None or self._embedders[0] is not dispatcher:
            embedder = EmbedDispatcher(
                dispatcher.manager,
                dispatcher.transport,
                dispatcher.routing,
                dispatcher.settings,
                self.usage,
            )
            self._embedders = (dispatcher, embedder)
        return await run_embed(self._embedders[1], self.usage, plan, raise_on_error)


async def run_embed(
    embedder: EmbedDispatcher, usage: UsageLog, plan: EmbedPlan, raise_on_error: bool
) -> EmbedAnswer:
    """Dispatch a checked ``plan`` and answer; the call's usage record goes out either way."""
    summary = embedder.summary_for(plan)
    try:
        done = await embedder.run(plan, summary=summary)
    except StoreError as exc:
        return _failed(usage, exc, summary, raise_on_error)
    except asyncio.CancelledError:
        usage.abandoned(summary)
        raise
    result = done.embedded if isinstance(done, EmbedDispatched) else None
    if done.error is not None or result is None:
        error = done.error or ProviderError("no answer")
        return _failed(usage, error, done.summary, raise_on_error)
    chat = ChatResult("", "stop", result.usage, result.model, result.provider)
    answer = success_answer(chat, done.summary)
    answer["usage_reported"] = result.usage_reported
    usage.finish(answer, done.summary)
    return _embed_answer(answer, result.vectors)


def _failed(
    usage: UsageLog, error: RouterError, summary: CallSummary, raise_it: bool
) -> EmbedAnswer:
    answer = failure_answer(error, summary)
    usage.finish(answer, summary)
    if raise_it:
        raise error
    return _embed_answer(answer, [])


def _embed_answer(answer: Answer, vectors: list[list[float]]) -> EmbedAnswer:
    tokens = answer["tokens"]
    return {
        "success": answer["success"],
        "embeddings": vectors,
        "model": answer["model"],
        "provider": answer["provider"],
        "key_id": answer["key_id"],
        "key": answer["key"],
        "tokens": {"prompt": tokens["prompt"], "total": tokens["total"]},
        "cost": answer["cost"],
        "error": answer["error"],
        "error_type": answer["error_type"],
        "retry_after": answer["retry_after"],
        "latency_ms": answer["latency_ms"],
        "attempts": answer["attempts"],
        "request_id": answer["request_id"],
        "degraded": answer["degraded"],
        "requested_model": answer["requested_model"],
        "rotations": answer["rotations"],
        "fallback_used": answer["fallback_used"],
        "fallback_reason": answer["fallback_reason"],
        "no_room": answer["no_room"],
        "waited_ms": answer["waited_ms"],
    }
