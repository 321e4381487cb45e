"""Fixtures: a simulator factory on a free loopback port and an aiohttp session for raw HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from router.simulator import ProviderSimulator, SimKey, SimulatorConfig

SECRET = "sk-sim-test-key-0000000000000001"
OTHER = "sk-sim-test-key-0000000000000002"

SimFactory = Callable[..., Awaitable[ProviderSimulator]]


@pytest.fixture
async def make_sim() -> AsyncIterator[SimFactory]:
    """Start simulators with the given configuration; all are stopped after the test."""
    started: list[ProviderSimulator] = []

    async def factory(config: SimulatorConfig | None = None, **kwargs: Any) -> ProviderSimulator:
        if config is None:
            keys = kwargs.pop("keys", None) or [
                SimKey(key_id="k1", secret=SECRET, **kwargs.pop("key", {}))
            ]
            config = SimulatorConfig(keys=keys, **kwargs)
        sim = ProviderSimulator(config)
        await sim.start()
        started.append(sim)
        return sim

    yield factory
    for sim in started:
        await sim.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session
