"""Silent model substitution made visible: an answer served by a fallback or a larger-window model
says so (``fallback_reason``, with ``model`` and ``requested_model``), an alias's own target is no
fallback, a stream's first delta says it too (with its provider and the keys tried), and a failure
about limits names the model the caller asked for. The library against the provider simulator on
real Redis (the gateway's header: tests/router/gateway)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import settings_for
from tests.router.pool import PoolKey, sim_router

FLASH, EXP = "gemini-2.0-flash", "gemini-2.0-flash-exp"


def settings(request: pytest.FixtureRequest, **overrides: Any) -> Any:
    overrides.setdefault("RESERVE_WAIT_SECONDS", 0)
    return settings_for("redis", request, **overrides)


async def test_a_fallback_model_says_so_and_an_alias_target_does_not(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    keys = [
        PoolKey("g1", "gemini", rpm=2, models=[FLASH]),
        PoolKey("g3", "gemini", rpm=50, models=[EXP]),
    ]
    routing = {"aliases": {"gpt-4": FLASH}, "fallbacks": {FLASH: [EXP]}}
    async with sim_router(settings(request), tmp_path, keys, routing=routing) as (router, _):
        first = await router.send_one_shot("hi", FLASH)
        aliased = await router.send_one_shot("hi", "gpt-4")
        fell_back = await router.send_one_shot("hi", FLASH)
        alias_fell_back = await router.send_one_shot("hi", "gpt-4")
    assert first["model"] == FLASH and first["fallback_reason"] is None
    assert not first["fallback_used"]
    # the alias's target: what the operator configured, not a substitution
    assert aliased["model"] == FLASH and aliased["fallback_reason"] is None
    assert fell_back["success"] and fell_back["model"] == EXP
    assert fell_back["requested_model"] == FLASH and fell_back["fallback_reason"] == "fallback"
    assert fell_back["fallback_used"]
    assert alias_fell_back["model"] == EXP and alias_fell_back["fallback_reason"] == "fallback"


async def test_a_larger_window_model_says_so(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    keys = [PoolKey("tiny", models=["sim-tiny"]), PoolKey("big", models=["gpt-4o-mini"])]
    routing = {"context_fallbacks": {"sim-tiny": ["gpt-4o-mini"]}}
    options = {"context_windows": {"sim-tiny": 100}}
    async with sim_router(
        settings(request), tmp_path, keys, routing=routing, sim_options=options
    ) as (router, _):
        short = await router.send_one_shot("hi", "sim-tiny")
        long = await router.send_one_shot("word " * 300, "sim-tiny")
        first, second, *_, streamed = [
            e async for e in router.stream_one_shot("word " * 300, "sim-tiny")
        ]
        asked_first, *_ = [e async for e in router.stream_one_shot("hi", "sim-tiny")]
    assert short["model"] == "sim-tiny" and short["fallback_reason"] is None
    assert long["success"] and long["model"] == "gpt-4o-mini"
    assert long["requested_model"] == "sim-tiny" and long["fallback_reason"] == "context_window"
    assert streamed["type"] == "done" and streamed["fallback_reason"] == "context_window"
    # a stream's first delta says it already (the gateway's headers go out with it), once
    assert first["type"] == "delta" and first["content"]
    assert (first.get("model"), first.get("fallback_reason")) == ("gpt-4o-mini", "context_window")
    assert second["type"] == "delta" and set(second) == {"type", "content"}
    assert asked_first["type"] == "delta"
    assert (asked_first.get("model"), asked_first.get("fallback_reason")) == ("sim-tiny", None)


def tier(priority: int) -> dict[str, Any]:
    """A key's binding of the openai model in priority tier ``priority`` (1 is tried first)."""
    return {"models": [{"model": "gpt-4o-mini", "priority": priority}]}


async def test_a_streams_first_delta_names_its_provider_and_the_keys_tried(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    keys = [
        PoolKey("flaky", faults={"spurious_429_rate": 1.0}, extra=tier(1)),  # 429: rotated off
        PoolKey("steady", extra=tier(2)),
    ]
    async with sim_router(settings(request), tmp_path, keys) as (router, sim):
        rotated = [e async for e in router.stream_one_shot("hi", "gpt-4o-mini")]
        plain = [e async for e in router.stream_one_shot("hi", "gpt-4o-mini")]  # flaky cools down
    assert [r.key_id for r in sim.requests()] == ["flaky", "steady", "steady"]
    for events, attempts in ((rotated, 2), (plain, 1)):
        first, second, *_, done = events
        assert done["type"] == "done" and done["success"] and done["attempts"] == attempts
        assert first["type"] == "delta" and first["content"]
        served = (first.get("provider"), first.get("attempts"), first.get("degraded"))
        assert served == ("openai", attempts, False)  # as the answer's, known before any text
        assert second["type"] == "delta" and set(second) == {"type", "content"}


async def test_a_failure_about_limits_names_the_model_asked_for(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    keys = [PoolKey("g1", "gemini", rpm=1, models=[FLASH])]
    routing = {"aliases": {"gpt-4": FLASH}}
    budgets = json.dumps({"user:cara": {"limit_usd": 0.000001, "period": "day"}})
    async with sim_router(settings(request, BUDGETS=budgets), tmp_path, keys, routing=routing) as (
        router,
        _,
    ):
        assert (await router.send_one_shot("hi", "gpt-4"))["success"]
        limited = await router.send_one_shot("hi", "gpt-4")
        refused = await router.send_one_shot("hi", FLASH, max_tokens=16, user="cara")
    assert limited["error_type"] == "rate_limited" and "'gpt-4'" in (limited["error"] or "")
    assert limited["fallback_reason"] is None
    assert refused["error_type"] == "budget_exceeded"
    assert f"(model asked for: '{FLASH}')" in (refused["error"] or "")
