"""Graceful shutdown: requests in flight, streams included, all complete while the gateway stops."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from tests.helpers import eventually
from tests.router.gateway.conftest import GatewayFactory
from tests.router.gateway.harness import chat_body

pytestmark = pytest.mark.integration


async def test_requests_in_flight_complete_during_shutdown(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway(sim_config={"faults": {"latency_ms": 700, "stream_chunk_delay_ms": 60}})
    key = await gw.vkey()
    headers = {"Authorization": f"Bearer {key}"}
    url = gw.base_url + "/chat/completions"

    async def plain(session: aiohttp.ClientSession) -> str:
        async with session.post(url, json=chat_body(), headers=headers) as response:
            assert response.status == 200
            body = await response.json()
            return str(body["choices"][0]["message"]["content"])

    async def streamed(session: aiohttp.ClientSession) -> str:
        body = chat_body(stream=True, stream_options={"include_usage": True})
        async with session.post(url, json=body, headers=headers) as response:
            assert response.status == 200
            text = await response.text()
        assert text.rstrip().endswith("data: [DONE]") and '"usage":{"prompt_tokens"' in text
        return text

    async with aiohttp.ClientSession() as session:
        calls = [asyncio.create_task(plain(session)) for _ in range(4)]
        calls += [asyncio.create_task(streamed(session)) for _ in range(3)]
        await eventually(lambda: gw.gateway.inflight >= len(calls))
        assert gw.server is not None
        stopping = asyncio.create_task(gw.server.stop())
        await eventually(lambda: gw.gateway.draining)
        assert not stopping.done()  # it waits for the calls in flight
        results = await asyncio.gather(*calls)
        await stopping
        gw.server = None  # stopped: the fixture has nothing left to stop
    assert all(r.startswith("Simulated openai reply") for r in results[:4])
    assert len(results) == 7
    # and the gateway accepts nothing any more
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientConnectionError):
            await session.get(url.replace("/v1/chat/completions", "/health"))


async def test_a_stream_left_by_its_client_is_settled(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway(sim_config={"faults": {"stream_chunk_delay_ms": 100}})
    key = await gw.vkey()
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            gw.base_url + "/chat/completions",
            json=chat_body(stream=True),
            headers={"Authorization": f"Bearer {key}"},
        ) as response,
    ):
        assert response.status == 200
        await response.content.readline()  # the first event, then hang up
    await eventually(lambda: gw.gateway.inflight == 0)
    # the reservation was settled (not left to expire): the key's counters saw the request end
    status = await gw.gateway.router.key_manager.get_all_key_statuses()
    assert sum(s["requests"] for s in status) == 1
    assert sum(s["successes"] + s["failures"] for s in status) == 1
