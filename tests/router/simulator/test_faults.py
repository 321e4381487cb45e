"""Injected faults: each kind as a client sees it, per key, changeable at run time, and seeded."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest

from router.simulator import FaultConfig, SimKey, SimulatorConfig
from tests.router.simulator.conftest import OTHER, SECRET, SimFactory

pytestmark = pytest.mark.integration
BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]}
AUTH = {"Authorization": f"Bearer {SECRET}"}


async def call(
    http: aiohttp.ClientSession,
    url: str,
    body: dict[str, Any] = BODY,
    limit: float = 5.0,
    headers: dict[str, str] = AUTH,
) -> tuple[int, bytes]:
    async with http.post(
        url + "/v1/chat/completions",
        json=body,
        headers=headers,
        timeout=aiohttp.ClientTimeout(total=limit),
    ) as response:
        return response.status, await response.read()


@pytest.mark.parametrize(
    ("faults", "status"),
    [
        ({"error_rate": 1.0}, 500),
        ({"error_rate": 1.0, "error_status": 502}, 502),
        ({"overload_rate": 1.0}, 503),
        ({"spurious_429_rate": 1.0}, 429),
    ],
)
async def test_error_answers(
    make_sim: SimFactory, http: aiohttp.ClientSession, faults: dict[str, Any], status: int
) -> None:
    sim = await make_sim(key={"rpm": 100}, faults=FaultConfig(**faults))
    assert (await call(http, sim.base_url))[0] == status
    usage = sim.usage("k1", "gpt-4o-mini")
    assert usage["admitted_requests"] == 0 and sum(usage["faults"].values()) == 1


async def test_connection_reset_gives_no_answer(
    make_sim: SimFactory, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim(faults=FaultConfig(reset_rate=1.0))
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await call(http, sim.base_url)
    assert sim.usage("k1", "gpt-4o-mini")["faults"] == {"reset": 1}


async def test_timeout_hangs_until_the_client_gives_up(
    make_sim: SimFactory, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim(faults=FaultConfig(timeout_rate=1.0, hang_seconds=60))
    with pytest.raises(asyncio.TimeoutError):
        await call(http, sim.base_url, limit=0.3)
    usage = sim.usage("k1", "gpt-4o-mini")
    assert usage["faults"] == {"timeout": 1} and usage["admitted_requests"] == 1
    for _ in range(200):  # the hung handler is cancelled when the client leaves, and settles
        if sim.usage("k1", "gpt-4o-mini")["admitted_tokens"]:
            break
        await asyncio.sleep(0.05)
    settled = sim.usage("k1", "gpt-4o-mini")
    assert (
        settled["completion_tokens"] == 0
        and settled["admitted_tokens"] == settled["prompt_tokens"] > 0
    )


async def test_malformed_json(make_sim: SimFactory, http: aiohttp.ClientSession) -> None:
    sim = await make_sim(faults=FaultConfig(malformed_rate=1.0))
    status, raw = await call(http, sim.base_url)
    assert status == 200
    with pytest.raises(ValueError):
        json.loads(raw)


async def test_stream_cut_midway(make_sim: SimFactory, http: aiohttp.ClientSession) -> None:
    sim = await make_sim(faults=FaultConfig(stream_cut_rate=1.0))
    received = bytearray()
    with pytest.raises(aiohttp.ClientPayloadError):
        async with http.post(
            sim.base_url + "/v1/chat/completions", json={**BODY, "stream": True}, headers=AUTH
        ) as response:
            async for chunk in response.content.iter_any():
                received.extend(chunk)
    assert b"chat.completion.chunk" in received and b"[DONE]" not in received
    assert sim.usage("k1", "gpt-4o-mini")["faults"] == {"stream_cut": 1}


async def test_latency_delays_answers(make_sim: SimFactory, http: aiohttp.ClientSession) -> None:
    sim = await make_sim(faults=FaultConfig(latency_ms=400))
    with pytest.raises(asyncio.TimeoutError):
        await call(http, sim.base_url, limit=0.1)
    sim.set_faults(FaultConfig())
    assert (await call(http, sim.base_url))[0] == 200


async def test_per_key_faults_override_global(
    make_sim: SimFactory, http: aiohttp.ClientSession
) -> None:
    keys = [
        SimKey(key_id="bad", secret=SECRET, faults={"error_rate": 1.0}),
        SimKey(key_id="good", secret=OTHER),
    ]
    sim = await make_sim(keys=keys)
    assert (await call(http, sim.base_url))[0] == 500
    assert (await call(http, sim.base_url, headers={"Authorization": f"Bearer {OTHER}"}))[0] == 200
    sim.set_faults({"error_rate": 0.0}, key_id="bad")
    assert (await call(http, sim.base_url))[0] == 200
    with pytest.raises(KeyError):
        sim.set_faults({"error_rate": 0.5}, key_id="missing")


async def test_seeded_faults_repeat_exactly(
    make_sim: SimFactory, http: aiohttp.ClientSession
) -> None:
    async def run(seed: int) -> list[int]:
        config = SimulatorConfig(
            keys=[SimKey(key_id="k1", secret=SECRET)],
            seed=seed,
            faults=FaultConfig(error_rate=0.3, spurious_429_rate=0.2, overload_rate=0.1),
        )
        sim = await make_sim(config)
        return [(await call(http, sim.base_url))[0] for _ in range(40)]

    first, second, other = await run(7), await run(7), await run(8)
    assert first == second
    assert first != other
    assert {200, 429, 500, 503} <= set(first)


def test_fault_rates_must_not_add_up_past_one() -> None:
    with pytest.raises(ValueError, match="add up to"):
        FaultConfig(error_rate=0.6, timeout_rate=0.6)
    with pytest.raises(ValueError, match="unknown fault setting"):
        SimKey(secret=SECRET, faults={"eror_rate": 0.1})
