"""``python -m router demo --keep``: the demo prints the dashboard's URL and master key, keeps the
gateway and the simulator up after its summary so the dashboard can be explored, and stops them
on Ctrl-C (exit 0)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys

import aiohttp
import pytest

from router.demo.pool import demo_pool
from tests.router.gateway.processes import ROOT

pytestmark = pytest.mark.integration
DASHBOARD = re.compile(
    r"dashboard at (http://127\.0\.0\.1:\d+)/ui \(log in with the demo's master key (\S+)\)"
)


async def _lines_until(stream: asyncio.StreamReader, marker: str, seen: list[str]) -> None:
    while True:
        raw = await stream.readline()
        assert raw, "the demo ended early:\n" + "".join(seen)
        seen.append(raw.decode(errors="replace"))
        if marker in seen[-1]:
            return


async def test_demo_keep_serves_the_dashboard_until_ctrl_c() -> None:
    env = {**os.environ, "COLUMNS": "250", "PYTHONPATH": str(ROOT)}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "router", "demo", "--seconds", "2", "--no-faults", "--keep",
        cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    assert process.stdout is not None
    seen: list[str] = []
    try:
        await asyncio.wait_for(_lines_until(process.stdout, "Press Ctrl-C", seen), 180)
        found = DASHBOARD.search("".join(seen))
        assert found, "".join(seen)
        url, master = found[1], found[2]
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(cookie_jar=jar) as session:
            async with session.post(url + "/ui/login", data={"token": master}) as answer:
                assert answer.status == 200 and "Overview" in await answer.text()
            async with session.get(url + "/ui/api/keys") as answer:
                body = await answer.text()
        keys = json.loads(body)["keys"]
        assert {k["key_id"] for k in keys} == {k.key_id for k in demo_pool().keys}
        assert sum(k["requests"] for k in keys) > 0, "the traffic shows in the dashboard"
        process.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(process.wait(), 60) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
