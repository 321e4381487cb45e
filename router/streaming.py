"""A dispatched stream relayed to its caller: its deltas, then its answer, settled once.

``RequestRouter`` dispatches a stream (router/dispatch.py picks the key and gets the first event);
:func:`relay` hands its text to the caller as ``DeltaEvent`` s (the first names the model serving
it, its ``fallback_reason``, ``provider``, ``attempts`` and ``degraded``: the key and model were
chosen before it) and ends with one ``DoneEvent``. A stream may outlive
``RESERVATION_TTL_SECONDS``, so its reservation is kept alive while it runs (router/keepalive.py).
However the stream ends, its reservation is settled exactly once: with the usage the provider
reported (or counted from the text when it reported none) when it finished, as a failure when it
was cut, and charged at its estimate when the caller stopped reading. A stream that already sent
text is never restarted on another key: its answer is a failure with ``partial`` and the text so
far.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable

from kernel.errors import ProviderError
from kernel.tokens import count_message_tokens, count_tokens
from keys.manager import KeyManager
from router.answers import (
    Answer,
    DeltaEvent,
    StreamEvent,
    done_event,
    failure_answer,
    success_answer,
)
from router.dispatch import Dispatched, Dispatcher
from router.keepalive import ReservationKeeper
from router.providers import ChatResult, StreamEnd, TextDelta, Usage

#: What a conversation does with a successful answer: store the turn, answer with what it says.
OnDone = Callable[[Answer, Dispatched], Awaitable[Answer]]


async def relay(
    manager: KeyManager, dispatcher: Dispatcher, done: Dispatched, on_done: OnDone | None
) -> AsyncGenerator[StreamEvent, None]:
    """The events of ``done``, a dispatched stream with a selection and a first event."""
    assert done.selection is not None and done.rest is not None
    parts: list[str] = []
    end: StreamEnd | None = None
    error: BaseException | None = None
    event = done.first
    keeper = ReservationKeeper(manager, done.selection)
    keeper.start()
    try:
        while True:
            if isinstance(event, TextDelta):
                parts.append(event.text)
                with keeper.paused():
                    yield _first_delta(done, event.text) if len(parts) == 1 else _delta(event.text)
            elif isinstance(event, StreamEnd):
                end = event
                break
            event = await done.rest.__anext__()
    except StopAsyncIteration:
        error = ProviderError(
            "the stream ended without its final event", provider=done.summary.provider
        )
    except ProviderError as exc:
        error = exc
    finally:  # the caller's aclose() too (GeneratorExit at the yield): settled all the same
        try:
            await keeper.stop()
        finally:
            await _settle(manager, dispatcher, done, end, error, "".join(parts))
    yield done_event(await _answer(done, end, error, "".join(parts), on_done))


def _delta(text: str) -> DeltaEvent:
    return {"type": "delta", "content": text}


def _first_delta(done: Dispatched, text: str) -> DeltaEvent:
    """The first delta: who serves the stream, all chosen before it came (the gateway's headers)."""
    assert done.selection is not None
    summary = done.summary
    return {
        "type": "delta",
        "content": text,
        "model": summary.model,
        "fallback_reason": summary.fallback_reason,
        "provider": summary.provider,
        "attempts": len(summary.attempts),
        "degraded": done.selection.reservation.degraded,
    }


async def _answer(
    done: Dispatched,
    end: StreamEnd | None,
    error: BaseException | None,
    text: str,
    on_done: OnDone | None,
) -> Answer:
    if end is None:
        answer = failure_answer(error or ProviderError("stream interrupted"), done.summary)
        answer["content"] = text or None
        answer["partial"] = bool(text)
        return answer
    result = ChatResult(
        content=end.content or text,
        finish_reason=end.finish_reason,
        usage=end.usage or _counted_usage(done, end.content or text),
        model=end.model,
        provider=end.provider,
        tool_calls=end.tool_calls,
        rate_limits=end.rate_limits,
        latency_ms=end.latency_ms,
        stop_sequence=end.stop_sequence,
        thinking=end.thinking,
    )
    answer = success_answer(result, done.summary)
    answer["usage_reported"] = end.usage is not None
    return answer if on_done is None else await on_done(answer, done)


def _counted_usage(done: Dispatched, content: str) -> Usage:
    """The provider reported no usage: count it from the text."""
    model = done.selection.model if done.selection else ""
    prompt = count_message_tokens(done.messages, model)
    completion = count_tokens(content, model)
    return Usage(
        prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
    )


async def _settle(
    manager: KeyManager,
    dispatcher: Dispatcher,
    done: Dispatched,
    end: StreamEnd | None,
    error: BaseException | None,
    text: str,
) -> None:
    """Settle a stream's reservation once, however it ended (finished, cut, or abandoned)."""
    selection = done.selection
    assert selection is not None
    if end is not None:
        usage = end.usage or _counted_usage(done, end.content or text)
        await dispatcher.settle_success(
            done,
            usage.prompt_tokens + usage.completion_tokens,
            usage,
            end.rate_limits,
            content=end.content or text,
            usage_reported=end.usage is not None,
        )
    else:  # cut after text came (the provider may bill it: the estimate), or the consumer
        # stopped reading (the call reached the provider, keep its charge); queued, nothing waits
        failure = error if error is not None else GeneratorExit()
        await manager.settles.submit(
            selection.key.key_id,
            lambda: manager.record_failure(selection, failure, cost_nanos=None),
        )
