"""The dispatcher's rules with scripted provider answers (router.testing.ScriptedTransport): the
real adapters, key pool and Lua scripts on the embedded store, no server, virtual time.

The same rules are proven end to end against the simulator and real Redis in
test_request_router.py and test_failures.py; these tests pin each rule on its own, fast.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from router.dispatch import BACKOFF_BASE
from router.testing import (
    Call,
    Reply,
    ScriptedResponse,
    connect_timeout,
    error,
    held,
    ok,
    rate_limited,
    read_timeout,
    refused,
)
from tests.helpers import eventually
from tests.router.scripted import ScriptedPool, key, scripted_router

MODEL = "gpt-4o-mini"
ROUND_ROBIN: dict[str, Any] = {"KEY_ROTATION_STRATEGY": "round_robin"}


async def ask(pool: ScriptedPool, model: str = MODEL, **options: Any) -> dict[str, Any]:
    return await pool.router.send_one_shot("hi", model, **options)


async def status(pool: ScriptedPool, key_id: str) -> dict[str, Any]:
    return await pool.router.key_manager.get_key_status(key_id)


# -- rotation ------------------------------------------------------------------------------------
async def test_a_429_cools_the_key_for_its_retry_after_and_the_call_rotates_at_once(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    async with scripted_router(request, tmp_path, [key("a"), key("b")], **ROUND_ROBIN) as pool:
        pool.transport.script(rate_limited(retry_after=7), ok(), secret=pool.secret("a"))
        first = await ask(pool)
        cooled = await status(pool, "a")
        during = [await ask(pool) for _ in range(3)]
        pool.time.advance(7.5)
        after = [await ask(pool) for _ in range(2)]
    assert first["success"] and first["key_id"] == "b" and first["attempts"] == 2
    assert pool.slept == []  # rotation after a 429 does not back off
    assert cooled["state"] == "cooldown" and cooled["rate_limited"] == 1
    assert [a["key_id"] for a in during] == ["b", "b", "b"]
    assert sorted(a["key_id"] for a in after) == ["a", "b"]


async def test_a_401_disables_the_key_and_the_call_rotates_at_once(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    async with scripted_router(request, tmp_path, [key("a"), key("b")], **ROUND_ROBIN) as pool:
        pool.transport.script(error(401, "Incorrect API key"), secret=pool.secret("a"))
        answers = [await ask(pool) for _ in range(4)]
        revoked = await status(pool, "a")
    assert all(a["success"] and a["key_id"] == "b" for a in answers)
    assert pool.called().count("a") == 1 and pool.slept == []
    assert revoked["state"] == "disabled"


async def test_a_5xx_backs_off_with_jitter_then_tries_the_next_key(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    async with scripted_router(request, tmp_path, [key("a"), key("b")], **ROUND_ROBIN) as pool:
        pool.transport.script(error(503, "upstream unavailable"), secret=pool.secret("a"))
        answer = await ask(pool)
    assert answer["success"] and answer["key_id"] == "b" and pool.called() == ["a", "b"]
    assert len(pool.slept) == 1 and BACKOFF_BASE * 0.5 <= pool.slept[0] <= BACKOFF_BASE


async def test_a_400_is_final_the_request_itself_is_wrong(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    async with scripted_router(request, tmp_path, [key("a"), key("b")], **ROUND_ROBIN) as pool:
        pool.transport.default = error(400, "Unrecognized request argument", kind="invalid")
        answer = await ask(pool)
    assert not answer["success"] and answer["error_type"] == "bad_request"
    assert answer["attempts"] == 1 and len(pool.transport.calls) == 1


# -- breaker and outages ---------------------------------------------------------------------------
async def test_the_breaker_opens_after_the_threshold_and_an_outage_answers_the_upstream_failure(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    async with scripted_router(
        request,
        tmp_path,
        [key("a")],
        CIRCUIT_BREAKER_THRESHOLD=3,
        CIRCUIT_BREAKER_TIMEOUT_SECONDS=40,
    ) as pool:
        pool.transport.default = error(500, "internal error")
        failed = [await ask(pool) for _ in range(3)]
        breaker = await status(pool, "a")
        outage = await ask(pool)
    assert [a["error_type"] for a in failed] == ["server_error"] * 3
    assert breaker["state"] == "circuit_open"
    assert len(pool.transport.calls) == 3  # the open circuit is not called
    assert not outage["success"] and outage["error_type"] == "server_error"
    assert outage["attempts"] == 0 and 35 <= outage["retry_after"] <= 40


@pytest.mark.parametrize("failure", [refused, connect_timeout], ids=["refused", "connect-timeout"])
async def test_an_unreachable_endpoint_gives_its_reservation_back_and_cools_the_key(
    request: pytest.FixtureRequest, tmp_path: Path, failure: Any
) -> None:
    async with scripted_router(
        request, tmp_path, [key("a"), key("b")], UNREACHABLE_COOLDOWN_SECONDS=5, **ROUND_ROBIN
    ) as pool:
        pool.transport.script(failure(), ok(), secret=pool.secret("a"))
        first = await ask(pool)
        stats = await pool.router.key_manager.engine.stats("a")
        cooled = [await ask(pool) for _ in range(3)]
        pool.time.advance(5.5)
        back = [await ask(pool) for _ in range(2)]
    assert first["success"] and first["key_id"] == "b" and pool.slept == []
    assert (stats["failures"], stats["released"], stats["requests"]) == (1, 1, 0)
    assert stats["last_error"] == "ProviderConnectionError"
    assert [a["key_id"] for a in cooled] == ["b", "b", "b"]
    assert sorted(a["key_id"] for a in back) == ["a", "b"]


async def test_a_read_timeout_may_have_been_processed_so_its_reservation_is_kept(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    async with scripted_router(request, tmp_path, [key("a"), key("b")], **ROUND_ROBIN) as pool:
        pool.transport.script(read_timeout(), secret=pool.secret("a"))
        answer = await ask(pool)
        stats = await pool.router.key_manager.engine.stats("a")
    assert answer["success"] and answer["key_id"] == "b" and len(pool.slept) == 1
    assert stats["released"] == 0 and stats["last_error"] == "ProviderTimeoutError"


# -- fallbacks -----------------------------------------------------------------------------------
async def test_a_context_length_error_moves_to_a_larger_context_model(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    keys = [key("small", "gpt-4o-mini"), key("large", "gpt-4.1-mini")]
    async with scripted_router(request, tmp_path, keys) as pool:
        pool.transport.script(
            error(400, "maximum context length exceeded", kind="context_length_exceeded"),
            model="gpt-4o-mini",
        )
        answer = await ask(pool)
    assert answer["success"] and answer["model"] == "gpt-4.1-mini"
    assert answer["fallback_used"] and pool.called() == ["small", "large"]
    assert [c.model for c in pool.transport.calls] == ["gpt-4o-mini", "gpt-4.1-mini"]


async def test_an_alias_resolves_to_a_chain_and_a_failing_model_falls_back_to_the_next(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    keys = [key("o", "gpt-4o-mini"), key("c", "claude-3-5-haiku-latest", provider="anthropic")]
    routing = {
        "aliases": {"fast": ["gpt-4o-mini"]},
        "fallbacks": {"gpt-4o-mini": ["claude-3-5-haiku-latest"]},
    }
    async with scripted_router(request, tmp_path, keys, routing=routing) as pool:
        pool.transport.script(error(503, "overloaded"), provider="openai")
        answer = await ask(pool, "fast")
    assert answer["success"] and answer["requested_model"] == "fast"
    assert answer["model"] == "claude-3-5-haiku-latest" and answer["provider"] == "anthropic"
    assert answer["fallback_used"] and pool.called() == ["o", "c"]


# -- waiting for room, attempts and budget ---------------------------------------------------------
@pytest.mark.parametrize("wait", [120.0, 30.0])
async def test_a_full_pool_waits_for_room_only_within_reserve_wait_seconds(
    request: pytest.FixtureRequest, tmp_path: Path, wait: float
) -> None:
    async with scripted_router(
        request, tmp_path, [key("a", rpm=1)], RESERVE_WAIT_SECONDS=wait, RETRY_BUDGET_SECONDS=300
    ) as pool:
        assert (await ask(pool))["success"]
        answer = await ask(pool)
    if wait == 120.0:  # room comes back within the minute: one wait for it, then the call
        assert answer["success"] and len(pool.slept) == 1 and 55 <= pool.slept[0] <= 60.01
        assert answer["waited_ms"] == pytest.approx(pool.slept[0] * 1000, abs=10)
    else:  # the minute is past the bound: no wait, rate_limited saying when
        assert not answer["success"] and answer["error_type"] == "rate_limited"
        assert pool.slept == [] and answer["waited_ms"] == 0 and 55 <= answer["retry_after"] <= 60
    assert len(pool.transport.calls) == (2 if wait == 120.0 else 1)


async def test_attempts_stop_at_max_attempts_with_the_last_failure(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    keys = [key(name) for name in "abcdef"]
    async with scripted_router(request, tmp_path, keys, MAX_ATTEMPTS=3) as pool:
        pool.transport.default = error(502, "bad gateway")
        answer = await ask(pool)
    assert not answer["success"] and answer["error_type"] == "server_error"
    assert answer["attempts"] == 3 and len(pool.transport.calls) == 3


async def test_attempts_stop_when_the_retry_budget_is_spent(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    keys = [key(name) for name in "abcdef"]
    async with scripted_router(request, tmp_path, keys, RETRY_BUDGET_SECONDS=1.0) as pool:
        failure = error(500)

        def slow_failure(call: Call) -> Reply:
            pool.time.advance(0.6)  # each call takes 0.6 s
            return failure(call)

        pool.transport.default = slow_failure
        answer = await ask(pool)
    # 0.6 s, a backoff of 0.05-0.1 s, 0.6 s: past the 1 s budget, no third call
    assert not answer["success"] and answer["error_type"] == "server_error"
    assert len(pool.transport.calls) == 2


# -- streams and cancellation ----------------------------------------------------------------------
async def test_a_stream_rotates_before_its_first_event_and_is_never_restarted_after(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    async with scripted_router(request, tmp_path, [key("a"), key("b")], **ROUND_ROBIN) as pool:
        pool.transport.script(rate_limited(5), secret=pool.secret("a"))
        cut = Reply(lines=[b'data: {"choices":[{"delta":{"content":"par"}}]}\n', b"\n"])
        cut.cut = aiohttp.ClientPayloadError("Response payload is not completed")
        pool.transport.script(cut, secret=pool.secret("b"))
        events = [e async for e in pool.router.stream_one_shot("hi", MODEL)]
    done = events[-1]
    assert [e["content"] for e in events[:-1]] == ["par"]
    assert not done["success"] and done["partial"] and done["key_id"] == "b"
    assert pool.called() == ["a", "b"]


async def test_a_cancelled_call_frees_its_slot_and_says_nothing_of_the_key(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    async with scripted_router(request, tmp_path, [key("a")]) as pool:
        reply, gate = held()
        pool.transport.script(reply, ok(), secret=pool.secret("a"))
        call = asyncio.create_task(ask(pool))
        await eventually(lambda: pool.transport.calls)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        health = await status(pool, "a")
        stats = await pool.router.key_manager.engine.stats("a")
        after = await ask(pool)
    assert not gate.is_set()
    assert health["state"] == "healthy" and stats["failures"] == 0
    assert after["success"] and after["key_id"] == "a"


async def test_a_scripted_response_reads_as_an_http_response() -> None:
    response = ScriptedResponse(Reply(200, {"Retry-After": "3"}, b"line one\nline two\n"))
    assert response.headers["retry-after"] == "3"
    assert [line async for line in response.content] == [b"line one\n", b"line two\n"]
    assert await response.read() == b"line one\nline two\n"
