"""``python -m router dashboard`` as a real process against the Redis a gateway (here the
harness's, standing for the library processes) writes to: it shows their traffic and their keys,
acts on them, serves no OpenAI route, and refuses the embedded store."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from tests.router.dashboard.browser import DashboardClient
from tests.router.gateway.harness import GatewayHarness, chat_body
from tests.router.gateway.processes import ServeProcess, child_env, run_cli

pytestmark = pytest.mark.integration


async def start_dashboard(env: dict[str, str], cwd: Path) -> ServeProcess:
    log = cwd / "dashboard.log"
    with log.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "router",
            "dashboard",
            "--port",
            "0",
            cwd=cwd,
            env=child_env(env),
            stdout=asyncio.subprocess.PIPE,
            stderr=sink,
        )
    assert process.stdout is not None
    raw = await asyncio.wait_for(process.stdout.readline(), 60)
    if not raw:
        await process.wait()
        raise AssertionError(f"dashboard exited {process.returncode}: {log.read_text()[-3000:]}")
    return ServeProcess(process, json.loads(raw), log)


async def test_the_dashboard_command_shows_and_acts_on_the_shared_pool(
    gw: GatewayHarness, redis_url: str, tmp_path: Path
) -> None:
    vkey = await gw.vkey(name="library")
    client = gw.client(vkey)
    for _ in range(3):
        await client.chat.completions.create(**chat_body())
    await client.close()
    env = {
        **gw.environ,
        "REDIS_URL": redis_url,
        "REDIS_KEY_PREFIX": gw.settings.REDIS_KEY_PREFIX,
        "ROUTER_MASTER_KEY": gw.master,
        "KEY_STORE_PATH": str(gw.tmp_path / "keys.json"),
    }
    served = await start_dashboard(env, tmp_path)
    try:
        other = GatewayHarness(tmp_path, redis_url, gw.settings.REDIS_KEY_PREFIX)
        other.master = gw.master
        other.server = served  # type: ignore[assignment]  # only .url is used
        async with DashboardClient(other) as ui:
            status, _, _ = await ui.login()
            assert status == 303
            status, body, _ = await ui.get("/ui/api/overview")
            assert status == 200 and json.loads(body)["outcomes"] == {"success": 3}
            status, _, _ = await ui.get("/v1/models")
            assert status == 404, "the dashboard process serves no OpenAI route"
            status, body, _ = await ui.act("pool-a", "cooldown", {"seconds": 60, "reason": "ops"})
            assert status == 200, body
        _, key = await gw.admin("GET", "/keys/pool-a")  # the gateway, another process, sees it
        assert (key["data"]["state"], key["data"]["reason"]) == ("cooldown", "ops")
    finally:
        assert await served.stop() == 0


async def test_the_dashboard_command_refuses_the_embedded_store(tmp_path: Path) -> None:
    code, _, err = await run_cli(
        ["dashboard", "--port", "0"], {"ROUTER_MASTER_KEY": "a-master-key-1234"}, tmp_path
    )
    assert code == 2 and "needs REDIS_URL" in err


async def test_the_dashboard_command_needs_a_master_key(tmp_path: Path, redis_url: str) -> None:
    code, _, err = await run_cli(["dashboard", "--port", "0"], {"REDIS_URL": redis_url}, tmp_path)
    assert code == 2 and "ROUTER_MASTER_KEY" in err
