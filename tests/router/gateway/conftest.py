"""Fixtures: ``make_gateway`` starts gateways (simulator upstream, real Redis) and stops them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import unique_prefix
from tests.router.gateway.harness import GatewayHarness

GatewayFactory = Callable[..., Awaitable[GatewayHarness]]


@pytest.fixture
async def make_gateway(tmp_path: Path, redis_url: str) -> AsyncIterator[GatewayFactory]:
    """``await make_gateway(pool=..., routing=..., sim_config=..., **settings)``; the store is
    real Redis unless ``embedded=True``. Everything started is stopped after the test."""
    started: list[GatewayHarness] = []

    async def factory(*, embedded: bool = False, **kwargs: Any) -> GatewayHarness:
        folder = tmp_path / f"gw{len(started)}"
        folder.mkdir()
        harness = GatewayHarness(folder, None if embedded else redis_url, unique_prefix(), **kwargs)
        started.append(harness)
        return await harness.start()

    yield factory
    for harness in reversed(started):
        await harness.stop()


@pytest.fixture
async def gw(make_gateway: GatewayFactory) -> GatewayHarness:
    """A gateway over two keys of 600 RPM each, generous gateway limits."""
    return await make_gateway()
