"""The ``Answer`` type (router/answers.py) against real answers: simulator, real Redis, embedded store.

Every key a real answer holds is declared in ``Answer``, every required key is in every answer,
and every value has its declared type (``Tokens``, the tool calls and ``ErrorType`` included):
successes, failures of each kind, a conversation's turns (saved and not), streams (whole and cut)
and degraded answers. The error types are one closed list: exactly what the error classes answer.
"""

from __future__ import annotations

import inspect
import types
import typing
from pathlib import Path
from typing import Any

import pytest

import kernel.errors
from kernel.settings import Settings
from router import Answer
from router.answers import DeltaEvent, DoneEvent
from router.error_types import ERROR_TYPES, error_type_of
from tests.conftest import settings_for
from tests.helpers import local_stores
from tests.router.pool import PoolKey, sim_router, unstarted_router
from tests.servers import free_port

MODEL = "gpt-4o-mini"
TOOLS = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]


def conforms(value: Any, hint: Any, where: str) -> None:
    """Assert ``value`` has type ``hint`` (the subset of typing the answer's types use)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if typing.is_typeddict(hint):
        assert isinstance(value, dict), f"{where}: {value!r} is not a dict"
        declared = typing.get_type_hints(hint)
        assert set(value) <= set(declared), f"{where}: undeclared {set(value) - set(declared)}"
        missing = hint.__required_keys__ - set(value)
        assert not missing, f"{where}: required keys missing: {sorted(missing)}"
        for key, item in value.items():
            conforms(item, declared[key], f"{where}[{key!r}]")
    elif origin in (typing.Union, types.UnionType):
        errors = []
        for option in args:
            try:
                conforms(value, option, where)
                return
            except AssertionError as exc:
                errors.append(str(exc))
        raise AssertionError(f"{where}: {value!r} is none of {hint}: {errors}")
    elif origin is typing.Literal:
        assert value in args, f"{where}: {value!r} not one of {args}"
    elif origin is list:
        assert isinstance(value, list), f"{where}: {value!r} is not a list"
        for i, item in enumerate(value):
            conforms(item, args[0], f"{where}[{i}]")
    elif hint is type(None):
        assert value is None, f"{where}: {value!r} is not None"
    elif hint is float:  # an int is a float to the type checker too
        assert isinstance(value, int | float) and not isinstance(value, bool), f"{where}: {value!r}"
    else:
        assert type(value) is hint, f"{where}: {value!r} is not {hint.__name__}"


def check_answers(answers: list[Any]) -> None:
    for i, answer in enumerate(answers):
        conforms(answer, Answer, f"answer {i}")


def check_stream(events: list[Any]) -> None:
    *deltas, done = events
    for i, event in enumerate(deltas):
        conforms(event, DeltaEvent, f"event {i}")
    conforms(done, DoneEvent, "the done event")


def test_the_checker_rejects_what_answer_does_not_declare() -> None:
    good = {"prompt": 1, "completion": 2, "cached": 0, "total": 3}
    conforms(good, typing.get_type_hints(Answer)["tokens"], "tokens")
    for bad in (
        {**good, "extra": 1},
        {"prompt": 1},
        {**good, "total": "3"},
        {**good, "cached": None},
    ):
        with pytest.raises(AssertionError):
            conforms(bad, typing.get_type_hints(Answer)["tokens"], "tokens")
    with pytest.raises(AssertionError, match="not one of"):
        conforms("rate_limted", typing.get_type_hints(Answer)["error_type"], "error_type")


@local_stores
async def test_every_kind_of_answer_is_an_answer(
    request: pytest.FixtureRequest, tmp_path: Path, store: Any
) -> None:
    config = settings_for(request.node.callspec.params["store"], request, RESERVE_WAIT_SECONDS=0)
    keys = [PoolKey("a", rpm=100, tpm=100_000), PoolKey("one", rpm=1, models=["sim-one"])]
    keys.append(PoolKey("cut", faults={"stream_cut_rate": 1.0}, models=["sim-cut"]))
    async with sim_router(config, tmp_path, keys) as (router, _sim):
        plain = await router.send_one_shot("hi", MODEL, system_prompt="be brief")
        tool = await router.complete(
            [{"role": "user", "content": "look it up"}], MODEL, tools=TOOLS, tool_choice="required"
        )
        chat = [await router.send_chat("c-1", prompt, MODEL) for prompt in ("one", "two")]
        first = await router.send_one_shot("hi", "sim-one")
        limited = await router.send_one_shot("hi", "sim-one")
        unknown = await router.send_one_shot("hi", "no-such-model")
        refused = await router.send_one_shot("hi", MODEL, max_tokens=-1)
        streamed = [e async for e in router.stream_chat("c-1", "three", MODEL)]
        cut = [e async for e in router.stream_one_shot("hi", "sim-cut")]
    assert tool["tool_calls"] and tool["tool_calls"][0]["name"] == "lookup"
    assert chat[1]["conversation_saved"] is True and chat[1]["conversation_id"] == "c-1"
    assert first["success"] and limited["error_type"] == "rate_limited"
    assert (unknown["error_type"], refused["error_type"]) == (
        "model_not_available",
        "invalid_request_error",
    )
    assert streamed[-1]["usage_reported"] is True and streamed[-1]["conversation_saved"] is True
    assert cut[-1]["success"] is False and "partial" in cut[-1]
    check_answers([plain, tool, *chat, first, limited, unknown, refused])
    check_stream(streamed)
    check_stream(cut)


async def test_degraded_and_store_unavailable_answers_are_answers(tmp_path: Path) -> None:
    nowhere = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    base = {"REDIS_URL": nowhere, "REDIS_TIMEOUT_SECONDS": 0.5, "RESERVE_WAIT_SECONDS": 0}
    degraded = Settings.from_env({}, **base, DEGRADED_CONVERSATION_BUFFER=1)
    async with sim_router(degraded, tmp_path, [PoolKey("a", rpm=100)]) as (router, _sim):
        kept = await router.send_chat("c", "one", MODEL)
        not_kept = await router.send_chat("c", "two", MODEL)
        streamed = [e async for e in router.stream_chat("c", "three", MODEL)]
    closed = Settings.from_env({}, **base, STORE_FAILURE_MODE="closed")
    async with unstarted_router(closed, tmp_path, [PoolKey("a", rpm=100)]) as router:
        unavailable = await router.send_chat("c", "one", MODEL)
    assert kept["degraded"] and not_kept["conversation_saved"] is False
    assert not_kept["conversation_error_type"] == "store_unavailable"
    assert unavailable["error_type"] == "store_unavailable"
    check_answers([kept, not_kept, unavailable])
    check_stream(streamed)


def test_error_type_lists_exactly_what_the_error_classes_answer() -> None:
    answered = {"internal_error"}  # a failure that is not a RouterError (a bug)
    for cls in vars(kernel.errors).values():
        if inspect.isclass(cls) and issubclass(cls, kernel.errors.RouterError):
            answered |= {cls.error_type, *getattr(cls, "other_error_types", ())}
    answered.add("no_keys_available")  # AllKeysExhaustedError's, without a retry time
    assert answered == ERROR_TYPES, (
        f"not in ErrorType: {sorted(answered - ERROR_TYPES)}; "
        f"answered by no error: {sorted(ERROR_TYPES - answered)}"
    )
    exhausted = kernel.errors.AllKeysExhaustedError("m", retry_at=None, now=0.0)
    assert error_type_of(exhausted) == "no_keys_available"
    assert error_type_of(kernel.errors.ProviderTimeoutError("slow")) == "timeout"
    assert error_type_of(KeyError("bug")) == "internal_error"
