"""``python -m router serve`` as a real process: workers sharing Redis, SIGTERM drain, probes."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from router.simulator import ProviderSimulator, SimKey, SimulatorConfig
from tests.conftest import unique_prefix
from tests.keygen import openai_project_key
from tests.router.gateway.harness import MODEL, chat_body
from tests.router.gateway.processes import fresh_get, fresh_post, run_cli, start_serve

pytestmark = pytest.mark.integration
MASTER = "master-" + openai_project_key()[8:40]


@pytest.fixture
async def upstream() -> AsyncIterator[tuple[ProviderSimulator, dict[str, str]]]:
    """The simulator with two OpenAI keys, and the environment that gives them to the router."""
    secrets = [openai_project_key(), openai_project_key()]
    keys = [
        SimKey(key_id=f"sim-{i}", secret=s, providers=["openai"], rpm=600)
        for i, s in enumerate(secrets)
    ]
    async with ProviderSimulator(SimulatorConfig(keys=keys, faults={"latency_ms": 5})) as sim:
        env = {
            "OPENAI_API_KEYS": ",".join(secrets),
            "OPENAI_BASE_URL": sim.base_url_for("openai"),
            "OPENAI_RPM": "600",
            "ROUTER_MASTER_KEY": MASTER,
            "RESERVE_WAIT_SECONDS": "0",
        }
        yield sim, env


async def create_vkey(url: str, **spec: object) -> str:
    status, body = await fresh_post(url + "/api/v1/admin/vkeys", spec, token=MASTER)
    assert status == 201, body
    return str(body["data"]["key"])


def success_count(metrics_text: str) -> float:
    for family in text_string_to_metric_families(metrics_text):
        for s in family.samples:
            if s.name == "llm_router_requests_total" and s.labels.get("outcome") == "success":
                return s.value
    return 0.0


async def test_two_workers_share_limits_cooldowns_and_metrics(
    upstream: tuple[ProviderSimulator, dict[str, str]], redis_url: str, tmp_path: Path
) -> None:
    sim, env = upstream
    env = {
        **env,
        "REDIS_URL": redis_url,
        "REDIS_KEY_PREFIX": unique_prefix(),
        "USER_RPM_DEFAULT": "6",
    }
    served = await start_serve(["--port", "0", "--workers", "2"], env, tmp_path)
    try:
        assert served.line["workers"] == 2
        pids = {(await fresh_get(served.url + "/health"))[1]["pid"] for _ in range(40)}
        assert len(pids) == 2  # connections land on both workers

        # one user's limit (6 a minute) holds across both workers
        key = await create_vkey(served.url, user_id="alice")
        statuses = [
            (await fresh_post(served.url + "/v1/chat/completions", chat_body(), key))[0]
            for _ in range(20)
        ]
        assert 6 <= statuses.count(200) <= 7 and statuses.count(429) == 20 - statuses.count(200)

        # a cooldown set through one worker is honoured by both
        status, listing = await fresh_get(served.url + "/api/v1/admin/keys", MASTER)
        assert status == 200 and len(listing["data"]) == 2
        cooled = listing["data"][0]["key_id"]
        status, _ = await fresh_post(
            served.url + f"/api/v1/admin/keys/{cooled}/cooldown", {"seconds": 600}, MASTER
        )
        assert status == 200
        sim.reset_stats()
        users = [await create_vkey(served.url, user_id=f"u{i}") for i in range(3)]
        for i in range(15):
            status, _ = await fresh_post(
                served.url + "/v1/chat/completions", chat_body(), users[i % 3]
            )
            assert status == 200
        assert len(sim.stats()["keys"]) == 1  # every call went to the key not cooling down

        # metrics add up both workers' counts, whichever answers the scrape
        status, text = await fresh_get(served.url + "/metrics")
        assert status == 200
        assert success_count(text) == statuses.count(200) + 15

        code, out, _ = await run_cli(["--health-check", "--url", served.url], {}, tmp_path)
        assert code == 0 and '"ready": true' in out

        # a worker that dies is replaced
        os.kill(sorted(pids)[0], signal.SIGKILL)
        now: set[int] = set()
        for _ in range(300):
            now = {pid for _ in range(20) if (pid := await health_pid(served.url)) is not None}
            if len(now) == 2 and now != pids:
                break
            await asyncio.sleep(0.1)
        assert len(now) == 2 and sorted(pids)[0] not in now
    finally:
        assert await served.stop() == 0
    code, _, err = await run_cli(["--health-check", "--url", served.url], {}, tmp_path)
    assert code == 1 and "unreachable" in err


async def health_pid(url: str) -> int | None:
    """The pid of the worker that answered /health; None when the connection was reset (the
    kernel resets connections still queued on a killed worker's socket)."""
    try:
        return int((await fresh_get(url + "/health"))[1]["pid"])
    except aiohttp.ClientConnectionError:
        return None


async def test_more_workers_than_one_need_redis(tmp_path: Path) -> None:
    code, _, err = await run_cli(["serve", "--workers", "2", "--port", "0"], {}, tmp_path)
    assert code == 2 and "REDIS_URL" in err and "embedded store" in err


async def test_sigterm_drains_requests_in_flight(
    upstream: tuple[ProviderSimulator, dict[str, str]], tmp_path: Path
) -> None:
    sim, env = upstream
    sim.set_faults({"latency_ms": 800})
    env = {
        **env,
        "GATEWAY_ALLOW_ANONYMOUS": "true",
        "USER_RPM_DEFAULT": "1000",
        "LOG_LEVEL": "INFO",
    }
    served = await start_serve(["--port", "0"], env, tmp_path)
    url = served.url + "/v1/chat/completions"
    calls = [asyncio.create_task(fresh_post(url, chat_body())) for _ in range(5)]
    calls.append(asyncio.create_task(fresh_post(url, chat_body(stream=True))))
    while True:
        status, body = await fresh_get(served.url + "/status")
        if status == 200 and body["inflight"] >= 7:  # the six calls and this /status
            break
        await asyncio.sleep(0.02)
    served.send(signal.SIGTERM)
    results = await asyncio.gather(*calls)
    assert [status for status, _ in results] == [200] * 6
    assert all(body["model"] == MODEL for _, body in results[:5])
    assert str(results[5][1]).rstrip().endswith("data: [DONE]")
    assert await served.stop() == 0
    assert "gateway stopped" in served.log.read_text()


async def test_a_bad_configuration_stops_serve_at_once(tmp_path: Path) -> None:
    (tmp_path / "keys.json").write_text(json.dumps({"keys": [{"key_id": "k", "provider": "x"}]}))
    code, _, err = await run_cli(["serve", "--port", "0"], {}, tmp_path)
    assert code == 2 and "keys.json" in err and "entry 'k'" in err


async def test_health_check_url_is_1_when_not_ready(tmp_path: Path) -> None:
    code, _, err = await run_cli(
        ["--health-check", "--url", "http://127.0.0.1:9"], {}, tmp_path, wait_seconds=30
    )
    assert code == 1 and "unreachable" in err


@pytest.mark.parametrize(("setting", "loop"), [(None, "uvloop"), ("false", "asyncio")])
async def test_serve_runs_on_uvloop_unless_gateway_uvloop_is_false(
    upstream: tuple[ProviderSimulator, dict[str, str]],
    tmp_path: Path,
    setting: str | None,
    loop: str,
) -> None:
    pytest.importorskip("uvloop")  # the speed extra: installed in the test environment
    _, env = upstream
    env = {**env, "GATEWAY_ALLOW_ANONYMOUS": "true", "LOG_LEVEL": "INFO"}
    if setting is not None:
        env["GATEWAY_UVLOOP"] = setting
    served = await start_serve(["--port", "0"], env, tmp_path)
    try:
        assert served.line["loop"] == loop
        status, body = await fresh_post(served.url + "/v1/chat/completions", chat_body())
        assert status == 200 and body["model"] == MODEL
    finally:
        assert await served.stop() == 0
    # once ready, the worker froze what startup built and collects the young generation less often
    tuned = [line for line in served.log.read_text().splitlines() if "collector tuned" in line]
    frozen = re.search(r"frozen\W{1,3}(\d+)", tuned[0]) if tuned else None
    assert frozen is not None and int(frozen.group(1)) > 1000


def test_tune_gc_freezes_startup_objects_and_raises_the_young_threshold() -> None:
    from router.gateway.server import GC_THRESHOLD, tune_gc

    before = gc.get_threshold()
    try:
        tune_gc()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == GC_THRESHOLD and GC_THRESHOLD[0] > before[0]
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_use_uvloop_falls_back_to_asyncio(monkeypatch: pytest.MonkeyPatch) -> None:
    from router.gateway.server import use_uvloop

    assert use_uvloop(enabled=False) == "asyncio"
    monkeypatch.setitem(sys.modules, "uvloop", None)  # as when the speed extra is not installed
    assert use_uvloop() == "asyncio"
