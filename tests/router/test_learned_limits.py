"""Limits learned from the provider, end to end: the simulator enforces limits the router is not
told (or is told wrong), reports them as the providers do, and the router adopts them.

Real Redis, the real simulator, the real RequestRouter; from 1 process and from 4 (spawned).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from kernel.settings import Settings
from keys.manager import KeyManager
from router.request_router import RequestRouter
from router.simulator import FaultConfig, ProviderSimulator, SimulatorConfig
from tests.conftest import unique_prefix
from tests.helpers import log_events
from tests.router.load_workers import drive
from tests.router.pool import MODELS, PoolKey, pool_files

MODEL = MODELS["openai"]
RPM = 60
SECONDS = 20.0
#: Answers take this long: calls overlap, so a 429 cannot be avoided by looking at the last
#: answer's headers alone (the hold of router/provider_limits.py): the limits must be known.
SLOW = FaultConfig(latency_ms=300)


def settings(redis_url: str, prefix: str, **extra: Any) -> Settings:
    return Settings.from_env(
        {}, REDIS_URL=redis_url, REDIS_KEY_PREFIX=prefix, RESERVE_WAIT_SECONDS=0, **extra
    )


def capacity(keys: int, rpm: int, seconds: float) -> float:
    """Requests the provider admits in ``seconds`` from full buckets: the burst, then the refill."""
    return keys * (rpm + rpm * seconds / 60.0)


async def offer(
    router: RequestRouter, model: str, rate: float, seconds: float, **send: Any
) -> Counter[str]:
    """Calls arriving at ``rate`` per second for ``seconds`` (open loop): their outcomes."""
    outcomes: Counter[str] = Counter()

    async def one(i: int) -> None:
        answer = await router.send_one_shot(f"load {i}", model, **send)
        outcomes["success" if answer["success"] else str(answer["error_type"])] += 1

    tasks, started, i = [], time.monotonic(), 0
    while time.monotonic() - started < seconds:
        tasks.append(asyncio.create_task(one(i)))
        i += 1
        await asyncio.sleep(max(0.0, started + i / rate - time.monotonic()))
    await asyncio.gather(*tasks)
    return outcomes


def limited(sim: ProviderSimulator, key_ids: list[str], model: str = MODEL) -> int:
    stats = sim.stats()["keys"]
    return sum(stats[k][model]["rate_limited"] for k in key_ids if model in stats.get(k, {}))


@pytest.mark.integration
async def test_keys_told_no_limits_run_at_the_providers_from_one_process(
    redis_url: str, tmp_path: Path
) -> None:
    keys = [PoolKey(f"k{i}", rpm=RPM, tpm=1_000_000, told=False) for i in range(2)]
    real = capacity(len(keys), RPM, SECONDS)
    sim_config = SimulatorConfig(keys=[k.sim_key() for k in keys], completion_tokens=8, faults=SLOW)
    async with ProviderSimulator(sim_config) as sim:
        path, env = pool_files(tmp_path, sim, keys)
        config = settings(redis_url, unique_prefix())
        manager = KeyManager(key_store_path=path, settings=config, environ=env)
        async with RequestRouter(manager, settings=config) as router:
            outcomes = await offer(router, MODEL, 2 * real / SECONDS, SECONDS, max_tokens=16)
            status = await manager.get_key_status("k0")
        rate_limited = limited(sim, [k.key_id for k in keys])
    assert rate_limited == 0, outcomes
    assert outcomes["success"] >= 0.97 * real, (outcomes, real)
    assert set(outcomes) <= {"success", "rate_limited"}, outcomes
    rpm = status["limits"]["rpm"]
    assert rpm == {"limit": RPM, "source": "learned", "configured": None, "learned": RPM}
    assert status["limits"]["tpm"]["limit"] == 1_000_000
    assert status["limits"]["source"] == "learned" and status["rpm_usage"]["limit"] == RPM


@pytest.mark.slow
@pytest.mark.integration
async def test_keys_told_no_limits_run_at_the_providers_from_four_processes(
    redis_url: str, tmp_path: Path
) -> None:
    keys = [PoolKey(f"k{i}", rpm=RPM, tpm=1_000_000, told=False) for i in range(4)]
    real = capacity(len(keys), RPM, SECONDS)
    rate = 2 * real / SECONDS / 4  # per process
    sim_config = SimulatorConfig(keys=[k.sim_key() for k in keys], completion_tokens=8)
    async with ProviderSimulator(sim_config) as sim:
        path, env = pool_files(tmp_path, sim, keys)
        args = (redis_url, unique_prefix(), str(path), env, SECONDS, rate, MODEL)
        with multiprocessing.get_context("spawn").Pool(4) as pool:
            pending = [pool.apply_async(drive, args) for _ in range(4)]
            loop = asyncio.get_running_loop()
            results = [await loop.run_in_executor(None, p.get, SECONDS + 120) for p in pending]
        rate_limited = limited(sim, [k.key_id for k in keys])
    outcomes: Counter[str] = Counter()
    for result in results:
        outcomes.update(result["outcomes"])
    assert rate_limited == 0, outcomes
    assert outcomes["success"] >= 0.97 * real, (outcomes, real)
    assert sum(r["offered"] for r in results) >= 1.9 * real


@pytest.mark.integration
async def test_configured_above_runs_at_the_providers_figure_and_warns_once(
    redis_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    keys = [PoolKey("k0", rpm=RPM, tpm=1_000_000, extra={"rpm": 2 * RPM})]
    seconds = 10.0
    real = capacity(1, RPM, seconds)
    sim_config = SimulatorConfig(keys=[k.sim_key() for k in keys], completion_tokens=8)
    with log_events(caplog) as logs:
        async with ProviderSimulator(sim_config) as sim:
            path, env = pool_files(tmp_path, sim, keys)
            config = settings(redis_url, unique_prefix())
            manager = KeyManager(key_store_path=path, settings=config, environ=env)
            async with RequestRouter(manager, settings=config) as router:
                outcomes = await offer(router, MODEL, 2 * real / seconds, seconds, max_tokens=16)
                status = await manager.get_key_status("k0")
            rate_limited = limited(sim, ["k0"])
    warnings = [e for e in logs if "configured above" in str(e.get("event"))]
    assert len(warnings) == 1, warnings
    assert warnings[0]["limits"] == f"rpm={2 * RPM}>{RPM}" and warnings[0]["level"] == "warning"
    assert rate_limited == 0, outcomes
    assert real * 0.97 <= outcomes["success"] <= real + 1, (outcomes, real)
    assert status["limits"]["rpm"] == {
        "limit": RPM,
        "source": "both",
        "configured": 2 * RPM,
        "learned": RPM,
    }


@pytest.mark.integration
async def test_configured_below_keeps_the_configured_figure(redis_url: str, tmp_path: Path) -> None:
    keys = [PoolKey("k0", rpm=RPM, tpm=1_000_000, extra={"rpm": RPM // 2})]
    seconds = 6.0
    sim_config = SimulatorConfig(keys=[k.sim_key() for k in keys], completion_tokens=8)
    async with ProviderSimulator(sim_config) as sim:
        path, env = pool_files(tmp_path, sim, keys)
        config = settings(redis_url, unique_prefix())
        manager = KeyManager(key_store_path=path, settings=config, environ=env)
        async with RequestRouter(manager, settings=config) as router:
            outcomes = await offer(router, MODEL, 20.0, seconds, max_tokens=16)
            status = await manager.get_key_status("k0")
    # the operator's 30 a minute: its burst and refill, never the provider's 60
    assert outcomes["success"] <= capacity(1, RPM // 2, seconds + 1), outcomes
    assert outcomes["success"] >= RPM // 2
    assert status["limits"]["rpm"]["limit"] == RPM // 2
    assert status["limits"]["rpm"]["source"] == "both"


@pytest.mark.integration
async def test_anthropic_input_and_output_limits_are_learned_and_kept_apart(
    redis_url: str, tmp_path: Path
) -> None:
    model = MODELS["anthropic"]
    keys = [PoolKey("a0", provider="anthropic", rpm=1000, itpm=4000, otpm=400, told=False)]
    seconds = 8.0
    sim_config = SimulatorConfig(keys=[k.sim_key() for k in keys], completion_tokens=8, faults=SLOW)
    async with ProviderSimulator(sim_config) as sim:
        path, env = pool_files(tmp_path, sim, keys)
        config = settings(redis_url, unique_prefix())
        manager = KeyManager(key_store_path=path, settings=config, environ=env)
        async with RequestRouter(manager, settings=config) as router:
            # max_tokens 40: 10 calls fill the output limit at admission, well before the input
            outcomes = await offer(router, model, 30.0, seconds, max_tokens=40)
            status = await manager.get_key_status("a0")
        rate_limited = limited(sim, ["a0"], model)
    assert rate_limited == 0, outcomes
    assert status["limits"]["itpm"]["limit"] == 4000
    assert status["limits"]["otpm"]["limit"] == 400
    assert "tpm" not in status["limits"]  # Anthropic's tokens-limit is not a total
    # output bound: its burst (400 / 40), then the refill of what the answers did not use
    assert outcomes["success"] > 10, outcomes


@pytest.mark.integration
async def test_gemini_learns_its_quota_from_its_first_429_per_minute_and_per_day(
    redis_url: str, tmp_path: Path
) -> None:
    model = MODELS["gemini"]
    keys = [
        PoolKey("g0", provider="gemini", rpm=30, told=False),
        PoolKey("g1", provider="gemini", rpd=3, told=False, models=["gemini-2.5-flash"]),
    ]
    sim_config = SimulatorConfig(keys=[k.sim_key() for k in keys], completion_tokens=8)
    async with ProviderSimulator(sim_config) as sim:
        path, env = pool_files(tmp_path, sim, keys)
        config = settings(redis_url, unique_prefix())
        manager = KeyManager(key_store_path=path, settings=config, environ=env)
        async with RequestRouter(manager, settings=config) as router:
            # Gemini's successes say nothing of its limits: the 31st call meets the first 429
            first = [await router.send_one_shot(f"hi {i}", model) for i in range(31)]
            assert sum(a["success"] for a in first) == 30 and first[-1]["retry_after"]
            await asyncio.sleep(first[-1]["retry_after"] + 0.1)  # the provider's RetryInfo
            # room for one call again; the router now knows the quota: one goes, none is refused
            after = await asyncio.gather(*(router.send_one_shot("hi", model) for _ in range(5)))
            minute = await manager.get_key_status("g0")
            daily = [await router.send_one_shot(f"d {i}", "gemini-2.5-flash") for i in range(6)]
            day = await manager.get_key_status("g1")
        per_key = {k: limited(sim, [k], m) for k, m in (("g0", model), ("g1", "gemini-2.5-flash"))}
    assert sum(a["success"] for a in after) == 1, after
    assert sum(a["success"] for a in daily) == 3, daily
    # each key: one 429 to learn its quota, then none (the router holds the key instead)
    assert per_key == {"g0": 1, "g1": 1}, per_key
    assert minute["limits"]["rpm"] == {
        "limit": 30,
        "source": "learned",
        "configured": None,
        "learned": 30,
    }
    assert day["limits"]["rpd"]["limit"] == 3 and day["limits"]["rpd"]["source"] == "learned"
    assert day["state"] == "cooldown"  # until midnight Pacific time


@pytest.mark.integration
async def test_learned_limits_survive_a_restart_and_serve_every_process(
    redis_url: str, tmp_path: Path
) -> None:
    keys = [PoolKey("k0", rpm=7, tpm=1_000_000, told=False)]
    prefix = unique_prefix()
    async with ProviderSimulator(SimulatorConfig(keys=[k.sim_key() for k in keys])) as sim:
        path, env = pool_files(tmp_path, sim, keys)
        config = settings(redis_url, prefix)
        first = KeyManager(key_store_path=path, settings=config, environ=env)
        async with RequestRouter(first, settings=config) as router:
            assert (await router.send_one_shot("hi", MODEL))["success"]
        restarted = KeyManager(key_store_path=path, settings=config, environ=env)
        async with RequestRouter(restarted, settings=config) as router:
            status = await restarted.get_key_status("k0")  # before any call of its own
            answers = await asyncio.gather(*(router.send_one_shot("hi", MODEL) for _ in range(9)))
        served = len(sim.requests(key_id="k0"))
    assert status["limits"]["rpm"]["limit"] == 7 and not status["limits"]["learning"]
    # at once, all 9 together: the learned burst (7, one used), no call held back to learn
    assert sum(a["success"] for a in answers) == 6 and served == 7
