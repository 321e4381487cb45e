"""send_chat: history survives key rotation, provider fallback, router restarts and Redis outages."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
from pathlib import Path
from typing import Any

import pytest

from kernel.settings import Settings
from router.simulator import FaultConfig
from tests.conftest import settings_for, unique_prefix
from tests.helpers import eventually, local_stores
from tests.router.pool import PoolKey, pool_files, sim_router
from tests.servers import redis_server


def settings(request: pytest.FixtureRequest, **overrides: Any) -> Settings:
    callspec = getattr(request.node, "callspec", None)
    kind = callspec.params.get("store", "redis") if callspec else "redis"
    overrides.setdefault("RESERVE_WAIT_SECONDS", 0)
    return settings_for(kind, request, **overrides)


def said(record: Any) -> str:
    return json.dumps(record.messages)


@local_stores
async def test_every_turn_on_another_key_keeps_the_whole_ordered_history(
    request: pytest.FixtureRequest, tmp_path: Path, store: Any
) -> None:
    keys = [PoolKey(f"k{i}", rpm=100) for i in range(3)]
    async with sim_router(
        settings(request, KEY_ROTATION_STRATEGY="round_robin"), tmp_path, keys
    ) as (router, sim):
        answers = [
            await router.send_chat("conv-1", f"turn {i}", "gpt-4o-mini", system_prompt="be brief")
            for i in range(6)
        ]
        history = await router.conversations.get_messages("conv-1")
        meta = await router.conversations.get_metadata("conv-1")
        received = {k.key_id: sim.requests(key_id=k.key_id) for k in keys}
    served = [a["key_id"] for a in answers]
    assert all(a["success"] and a["conversation_saved"] for a in answers)
    assert all(served[i] != served[i + 1] for i in range(5))
    assert [m.role for m in history] == ["user", "assistant"] * 6
    assert [m.content for m in history[::2]] == [f"turn {i}" for i in range(6)]
    assert meta is not None and meta["message_count"] == 12 and meta["last_model"] == "gpt-4o-mini"
    # each key received every earlier turn, in order, and the system prompt
    last = received[served[5]][-1]
    sent = [m for m in last.messages if m["role"] == "user"]
    assert [m["content"] for m in sent] == [f"turn {i}" for i in range(6)]
    assert last.messages[0] == {"role": "system", "content": "be brief"}
    assert [m.key_id for m in history[1::2]] == served


@local_stores
async def test_a_chat_continues_across_providers(
    request: pytest.FixtureRequest, tmp_path: Path, store: Any
) -> None:
    keys = [
        PoolKey("oa", "openai", rpm=1),
        PoolKey("an", "anthropic", rpm=1),
        PoolKey("ge", "gemini", rpm=1),
    ]
    routing = {
        "aliases": {"assistant": ["gpt-4o-mini", "claude-3-5-haiku-latest", "gemini-2.0-flash"]}
    }
    async with sim_router(settings(request), tmp_path, keys, routing=routing) as (router, sim):
        answers = [await router.send_chat("conv-x", f"step {i}", "assistant") for i in range(3)]
        gemini_saw = said(sim.requests(key_id="ge")[-1])
        claude_saw = said(sim.requests(key_id="an")[-1])
    assert [a["provider"] for a in answers] == ["openai", "anthropic", "gemini"]
    assert "step 0" in claude_saw and "Simulated openai reply" in claude_saw
    assert (
        "step 0" in gemini_saw
        and "step 1" in gemini_saw
        and "Simulated anthropic reply" in gemini_saw
    )


def _continue_in_new_process(
    redis_url: str, prefix: str, keys_path: str, env: dict[str, str], conv_id: str
) -> dict[str, Any]:
    from keys.manager import KeyManager
    from router.request_router import RequestRouter

    async def run() -> dict[str, Any]:
        settings = Settings.from_env({}, REDIS_URL=redis_url, REDIS_KEY_PREFIX=prefix)
        manager = KeyManager(key_store_path=keys_path, settings=settings, environ=env)
        async with RequestRouter(manager, settings=settings) as router:
            answer = await router.send_chat(conv_id, "and now?", "gpt-4o-mini")
            answer["history"] = [
                m.content for m in await router.conversations.get_messages(conv_id)
            ]
            return answer

    return asyncio.run(run())


async def test_a_new_router_in_a_new_process_continues_the_conversation(
    redis_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    prefix = unique_prefix()
    settings_ = Settings.from_env({}, REDIS_URL=redis_url, REDIS_KEY_PREFIX=prefix)
    keys = [PoolKey("a", rpm=100)]
    async with sim_router(settings_, tmp_path, keys) as (router, sim):
        await router.send_chat("c-restart", "remember 42", "gpt-4o-mini")
        path, env = (
            pool_files(tmp_path / "second", sim, keys)
            if (tmp_path / "second").mkdir() is None
            else (None, {})
        )
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            pending = pool.apply_async(
                _continue_in_new_process, (redis_url, prefix, str(path), env, "c-restart")
            )
            answer = await asyncio.get_running_loop().run_in_executor(None, pending.get, 120)
        sent = said(sim.requests(key_id="a")[-1])
    assert answer["success"] and answer["conversation_saved"]
    assert answer["history"][0] == "remember 42" and answer["history"][-2] == "and now?"
    assert "remember 42" in sent


async def test_redis_stopped_mid_chat_is_reported_and_the_chat_continues_after(
    tmp_path: Path,
) -> None:
    with redis_server() as server:
        settings_ = Settings.from_env(
            {},
            REDIS_URL=server.url,
            REDIS_TIMEOUT_SECONDS=1,
            RESERVE_WAIT_SECONDS=0,
            STORE_FAILURE_MODE="closed",
        )
        faults = FaultConfig(latency_ms=800)
        async with sim_router(settings_, tmp_path, [PoolKey("a", rpm=100)], faults=faults) as (
            router,
            sim,
        ):
            first = await router.send_chat("c-down", "before", "gpt-4o-mini")
            call = asyncio.create_task(router.send_chat("c-down", "during", "gpt-4o-mini"))
            # the provider has the call (it answers 800 ms later): stop Redis while it is under way
            await eventually(lambda: len(sim.requests(key_id="a")) == 2)
            server.stop()
            during = await call
            down = await router.send_chat("c-down", "while down", "gpt-4o-mini")
            server.start()
            after = await router.send_chat("c-down", "after", "gpt-4o-mini")
            history = [m.content for m in await router.conversations.get_messages("c-down")]
    assert first["conversation_saved"] is True, first
    assert during["success"] is True, {k: during[k] for k in ("error", "error_type", "attempts")}
    assert during["success"] is True and during["content"]  # the answer is not lost
    assert during["conversation_saved"] is False and "unreachable" in during["conversation_error"]
    assert down["success"] is False and down["error_type"] == "store_unavailable"
    assert after["success"] and after["conversation_saved"] is True
    assert history[-2:] == ["after", after["content"]]  # the restarted Redis had no persistence
