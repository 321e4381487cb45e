"""Real faults against the router: an endpoint that never accepts, an outage of every key, a caller
that cancels a probe, a host clock off by minutes, a model nobody serves (real Redis, the provider
simulator, real sockets)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import structlog

import keys.health_actions
from kernel.errors import ProviderConnectionError, ProviderTimeoutError, RateLimitedError
from keys.engine import CapacityEngine
from keys.outcomes import outcome_of
from router.providers.transport import CallContext, translate
from router.simulator import FaultConfig, ProviderSimulator, SimulatorConfig
from tests import keygen
from tests.conftest import settings_for
from tests.router.pool import PoolKey, sim_router
from tests.servers import blackhole_listener, free_port

MODEL = "gpt-4o-mini"
REPO = Path(__file__).resolve().parents[2]


def settings(request: pytest.FixtureRequest, **overrides: Any) -> Any:
    overrides.setdefault("RESERVE_WAIT_SECONDS", 0)
    return settings_for("redis", request, **overrides)


async def store_time_reaches(engine: CapacityEngine, when: float, limit: float = 30.0) -> None:
    """Wait (bounded) until the store's clock reaches ``when``."""
    deadline = time.monotonic() + limit
    while await engine.now() < when:
        assert time.monotonic() < deadline, "the store's clock never got there"
        await asyncio.sleep(0.05)


async def test_an_endpoint_that_never_accepts_stops_costing_the_connect_timeout_and_is_found_again(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    with blackhole_listener() as hole:
        dead = PoolKey("dead", base_url=f"http://127.0.0.1:{hole.port}/v1")
        conf = settings(
            request,
            CONNECT_TIMEOUT_SECONDS=0.3,
            UNREACHABLE_COOLDOWN_SECONDS=0.2,
            CIRCUIT_BREAKER_TIMEOUT_SECONDS=2.0,
            KEY_ROTATION_STRATEGY="round_robin",
        )
        async with sim_router(conf, tmp_path, [dead, PoolKey("a"), PoolKey("b")]) as (router, _):
            engine = router.key_manager.engine
            answers = []
            for _ in range(60):  # each failure cools the key down first, then the breaker opens
                answers.append(await router.send_one_shot("hi", MODEL))
                if (await engine.health("dead"))["state"] == "open":
                    break
                await asyncio.sleep(0.05)
            assert (await engine.health("dead"))["state"] == "open"
            assert all(a["success"] and a["key_id"] != "dead" for a in answers)
            stats = await engine.stats("dead")
            assert (stats["failures"], stats["released"], stats["requests"]) == (3, 3, 0)
            assert stats["last_error"] == "ProviderConnectionError"

            half_open_at = (await engine.health("dead"))["until"]
            later = [await router.send_one_shot("hi", MODEL) for _ in range(20)]
            overrun = await engine.now() - half_open_at  # store time past the first probe's
            probes = 0 if overrun < 0 else 1 + int(overrun / 2.0)
            assert all(a["success"] and a["key_id"] != "dead" for a in later)
            # no request paid the connect timeout while the circuit was open: at most one probe
            # per breaker timeout reached the dead endpoint
            assert (await engine.stats("dead"))["failures"] - 3 <= probes

            hole.close()  # the endpoint comes back: a real provider on the same port
            revived = SimulatorConfig(keys=[dead.sim_key()])
            async with ProviderSimulator(revived, port=hole.port) as sim:
                served = None
                for _ in range(100):
                    answer = await router.send_one_shot("hi", MODEL)
                    if answer["key_id"] == "dead":
                        served = answer
                        break
                    await asyncio.sleep(0.1)
                assert served is not None and served["success"]
                await router.flush()  # the probe's settle closes the circuit
                assert (await engine.health("dead"))["state"] == "ok"
                assert sim.usage("dead", MODEL)["admitted_requests"] >= 1


async def test_an_outage_of_every_key_answers_at_once_with_one_probe_per_key_per_interval(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    conf = settings(request, CIRCUIT_BREAKER_TIMEOUT_SECONDS=2.0)
    keys = [PoolKey("a"), PoolKey("b")]
    async with sim_router(conf, tmp_path, keys, faults=FaultConfig(error_rate=1.0)) as (
        router,
        sim,
    ):
        engine = router.key_manager.engine
        for _ in range(3):  # each request tries both keys: three open both circuits
            answer = await router.send_one_shot("hi", MODEL)
            assert answer["error_type"] == "server_error" and "500" in answer["error"]
        assert [(await engine.health(k))["state"] for k in "ab"] == ["open", "open"]
        calls = len(sim.requests())

        answers = await asyncio.gather(*(router.send_one_shot("hi", MODEL) for _ in range(10)))
        assert len(sim.requests()) == calls  # no breaker reset, no call to the failing provider
        for answer in answers:
            assert answer["error_type"] == "server_error" and answer["attempts"] == 0
            assert 0 < answer["retry_after"] <= 2.0
            assert "next probe in" in answer["error"]

        await store_time_reaches(engine, max([(await engine.health(k))["until"] for k in "ab"]))
        answers = await asyncio.gather(*(router.send_one_shot("hi", MODEL) for _ in range(10)))
        probes = sim.requests()[calls:]
        assert sorted(r.key_id or "" for r in probes) == ["a", "b"]  # one probe per key
        assert all(a["error_type"] == "server_error" and a["retry_after"] for a in answers)
        assert [(await engine.health(k))["state"] for k in "ab"] == ["open", "open"]


async def test_a_caller_cancelling_a_probe_frees_it_for_the_next_caller(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    conf = settings(request, CIRCUIT_BREAKER_TIMEOUT_SECONDS=1.0)
    async with sim_router(conf, tmp_path, [PoolKey("a")], faults=FaultConfig(error_rate=1.0)) as (
        router,
        sim,
    ):
        engine = router.key_manager.engine
        for _ in range(3):
            await router.send_one_shot("hi", MODEL)
        assert (await engine.health("a"))["state"] == "open"
        sim.set_faults(FaultConfig(timeout_rate=1.0, hang_seconds=60))
        await store_time_reaches(engine, (await engine.health("a"))["until"])
        calls = len(sim.requests())
        probe = asyncio.create_task(router.send_one_shot("hi", MODEL))
        for _ in range(200):  # until the probe reached the provider
            if len(sim.requests()) > calls:
                break
            await asyncio.sleep(0.02)
        assert (await engine.health("a"))["state"] == "probing"
        probe.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await probe
        await router.flush()  # the cancelled call's settle is queued
        health = await engine.health("a")
        assert health["state"] == "open"  # neither closed by the cancel nor held half-open
        assert health["until"] <= await engine.now()  # the next caller may probe at once
        sim.set_faults(FaultConfig())
        answer = await router.send_one_shot("hi", MODEL)
        assert answer["success"] and answer["key_id"] == "a"
        await router.flush()
        assert (await engine.health("a"))["state"] == "ok"


@pytest.mark.parametrize("shift", [120.0, -120.0])
async def test_a_host_clock_off_by_minutes_changes_no_wait_retry_time_or_cooldown_log(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shift: float
) -> None:
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + shift)  # Redis keeps the real clock
    paced = PoolKey("paced", rpm=60, extra={"rpm_burst": 1})
    async with sim_router(settings(request, RESERVE_WAIT_SECONDS=5), tmp_path, [paced]) as (
        router,
        _,
    ):
        first = await router.send_one_shot("hi", MODEL)
        second = await router.send_one_shot("hi", MODEL)  # waits about a second for room
        assert first["success"] and second["success"]
        assert 0 < second["waited_ms"] <= 1100  # the room's real distance, not 120 s off
        manager = router.key_manager
        selection = await manager.select_key(MODEL, wait=5)
        with structlog.testing.capture_logs() as logs:
            # a logger made under the capture (the module's may be cached by earlier tests)
            monkeypatch.setattr(keys.health_actions, "log", structlog.get_logger("keys.manager"))
            await manager.record_failure(selection, RateLimitedError("429", retry_after=30))
        assert any("backing off for 30s" in e["event"] for e in logs)
    (tmp_path / "one").mkdir()
    async with sim_router(settings(request), tmp_path / "one", [PoolKey("one", rpm=1)]) as (
        router,
        _,
    ):
        assert (await router.send_one_shot("hi", MODEL))["success"]
        answer = await router.send_one_shot("again", MODEL)
    assert answer["error_type"] == "rate_limited" and 55 <= answer["retry_after"] <= 60


def _readme_example() -> str:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Python API") :]
    found = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert found is not None
    return found.group(1)


def run_readme_example(tmp_path: Path, model: str | None = None) -> str:
    """The README's first example as a new user runs it: only ``OPENAI_API_KEY`` set, its
    ``OPENAI_BASE_URL`` a closed loopback port; its stdout. ``model``: the example with its
    commented-out ``model_preference`` set to it."""
    code = _readme_example()
    if model is not None:
        commented = '# model_preference="gemini-2.5-flash": default, the pool\'s first model'
        assert commented in code
        code = code.replace(commented, f'model_preference="{model}",')
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "TIKTOKEN_CACHE_DIR": os.environ.get("TIKTOKEN_CACHE_DIR", str(tmp_path / "tiktoken")),
        "PYTHONPATH": str(REPO),
        "OPENAI_API_KEY": keygen.openai_project_key(),
        "OPENAI_BASE_URL": f"http://127.0.0.1:{free_port()}/v1",  # nothing listens there
    }
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_the_readme_example_with_no_route_to_the_provider_prints_the_connection_error(
    tmp_path: Path,
) -> None:
    out = run_readme_example(tmp_path)
    assert out.startswith("connection_error: openai: cannot connect: connection refused"), out
    assert "pool is full" not in out and "None" not in out
    # with a Gemini model the OpenAI key cannot serve it: said so, with what it serves
    out = run_readme_example(tmp_path, model="gemini-2.5-flash")
    assert out.startswith("model_not_available: "), out
    assert "'gemini-2.5-flash'" in out and "(openai)" in out


async def test_a_model_no_key_serves_is_model_not_available_naming_the_served_ones(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    async with sim_router(settings(request), tmp_path, [PoolKey("a"), PoolKey("b")]) as (
        router,
        sim,
    ):
        answer = await router.send_one_shot("hi", "no-such-model")
        assert len(sim.requests()) == 0
    assert answer["error_type"] == "model_not_available" and answer["retry_after"] is None
    assert answer["attempts"] == 0 and MODEL in answer["error"]


async def test_a_connect_timeout_never_reached_the_provider_a_read_timeout_may_have() -> None:
    ctx = CallContext("openai", "sk-test-not-a-real-key")
    silent_peers: list[asyncio.StreamWriter] = []

    async def silent(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        silent_peers.append(writer)  # accepts, reads nothing, answers nothing

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    errors = []
    with blackhole_listener() as hole:
        async with aiohttp.ClientSession() as session:
            for target in (hole.port, port):
                try:
                    await session.get(
                        f"http://127.0.0.1:{target}/v1/chat/completions",
                        timeout=aiohttp.ClientTimeout(total=5, sock_connect=0.3, sock_read=0.3),
                    )
                except (TimeoutError, aiohttp.ClientError) as exc:
                    errors.append(translate(exc, ctx))
    server.close()
    unreachable, silent_answer = errors
    assert isinstance(unreachable, ProviderConnectionError) and not unreachable.reached_provider
    assert outcome_of(unreachable).kind == "unreachable" and "connect timed out" in str(unreachable)
    assert isinstance(silent_answer, ProviderTimeoutError)
    assert outcome_of(silent_answer).kind == "transient"


async def test_rate_limited_always_says_when_and_a_pool_that_never_recovers_says_so(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    async with sim_router(settings(request), tmp_path, [PoolKey("revoked", revoked=True)]) as (
        router,
        _,
    ):
        first = await router.send_one_shot("hi", MODEL)
        second = await router.send_one_shot("hi", MODEL)
    assert first["error_type"] == "auth" and first["attempts"] == 1  # the call's own failure
    assert second["error_type"] == "no_keys_available" and second["attempts"] == 0
    assert second["retry_after"] is None and "no key recovers by itself" in second["error"]
