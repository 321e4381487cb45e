"""A stream longer than the reservation TTL through the gateway, read with the official openai SDK:
settled with its real usage; a client that leaves mid-stream ends the extension (issue 13, item 8).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from router.keepalive import TASK_PREFIX
from tests.router.gateway.conftest import GatewayFactory
from tests.router.gateway.harness import MODEL, GatewayHarness, PoolKey

pytestmark = pytest.mark.integration
TTL = 1  # seconds; the engine takes any TTL (the setting's lower bound is 10 s)
HELLO = [{"role": "user", "content": "Tell me a long story"}]


async def slow_gateway(make_gateway: GatewayFactory, chunk_delay_ms: float) -> GatewayHarness:
    gw = await make_gateway(
        pool=[PoolKey("slow", rpm=600, tpm=100_000)],
        sim_config={"faults": {"stream_chunk_delay_ms": chunk_delay_ms}},
    )
    gw.gateway.router.key_manager.engine.reservation_ttl = TTL
    return gw


def keepers() -> list[asyncio.Task[Any]]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith(TASK_PREFIX) and not t.done()]


async def reservation_records(gw: GatewayHarness) -> list[dict[str, str]]:
    store = gw.gateway.router.key_manager.store
    return [
        await store.client.hgetall(name)
        async for name in store.client.scan_iter(match=store.keys.reservation("*"))
    ]


async def test_an_sdk_stream_longer_than_the_ttl_is_settled_with_its_usage(
    make_gateway: GatewayFactory,
) -> None:
    gw = await slow_gateway(make_gateway, 500)  # 6 chunks: ~3 s
    client = gw.client(await gw.vkey())
    started = time.monotonic()
    stream = await client.chat.completions.create(
        model=MODEL, messages=HELLO, stream=True, stream_options={"include_usage": True}
    )
    usage = None
    async for chunk in stream:
        usage = chunk.usage or usage
    lasted = time.monotonic() - started
    assert usage is not None and lasted > 2 * TTL
    # the settle's own counts (a reservation left to expire would count no success and keep its
    # estimate); the settled record itself expires a TTL after the last extension, so on a
    # loaded machine it may be gone by now
    stats = await gw.gateway.router.key_manager.engine.stats("slow")
    assert stats["successes"] == 1 and stats["tokens"] == usage.total_tokens
    for record in await reservation_records(gw):
        assert record["state"] == "settled" and int(record["actual"]) == usage.total_tokens
    assert gw.sim is not None
    assert gw.sim.usage("slow", MODEL)["admitted_tokens"] == usage.total_tokens
    assert not keepers()


async def test_a_client_that_leaves_mid_stream_ends_the_extension(
    make_gateway: GatewayFactory,
) -> None:
    gw = await slow_gateway(make_gateway, 1000)  # 6 chunks: ~6 s
    client = gw.client(await gw.vkey())
    stream = await client.chat.completions.create(model=MODEL, messages=HELLO, stream=True)
    seen = 0
    async for chunk in stream:
        seen += bool(chunk.choices and chunk.choices[0].delta.content)
        if seen == 2:  # a second after the first: past the TTL
            break
    assert len(keepers()) == 1
    await stream.close()
    for _ in range(1000):  # the gateway notices at its next write (bounded wait)
        records = await reservation_records(gw)
        if not keepers() and records and records[0]["state"] == "settled":
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError(f"still extending or not settled: {records}")
