"""Requests that find a virtual key's cache entry expired together share one read of the store."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.router.gateway.harness import GatewayHarness

pytestmark = pytest.mark.integration


async def hgetall_calls(client: Any) -> int:
    stats = await client.info("commandstats")
    return int(stats.get("cmdstat_hgetall", {}).get("calls", 0))


async def test_concurrent_verifies_share_one_read(gw: GatewayHarness) -> None:
    secret = await gw.vkey(name="herd")
    other = gw.build_gateway()  # a worker that has not verified the key yet
    await other.start()
    try:
        client = other.vkeys.store.shared_client
        before = await hgetall_calls(client)
        keys = await asyncio.gather(*(other.vkeys.verify(secret) for _ in range(20)))
        assert all(k is not None and keys[0] is not None and k.id == keys[0].id for k in keys)
        assert await hgetall_calls(client) - before == 1
        assert not other.vkeys._reading  # nothing left behind

        # a caller that goes away does not cancel the read another one waits for
        other.vkeys._cache.clear()
        leaving = asyncio.create_task(other.vkeys.verify(secret))
        staying = asyncio.create_task(other.vkeys.verify(secret))
        await asyncio.sleep(0)
        leaving.cancel()
        assert (await staying) is not None
        assert await hgetall_calls(client) - before == 2
    finally:
        await other.close()
