"""Virtual-key times are kept in the store's clock: workers whose host clocks disagree agree on
whether a key has expired (issue 13, item 2)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from kernel.settings import Settings
from kernel.store import Store, create_store
from router.gateway import VirtualKeySpec
from router.gateway.vkeys import VirtualKeyStore
from tests.conftest import unique_prefix

SKEW = 600.0


@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[Store]:
    settings = Settings.from_env(
        {}, REDIS_URL=redis_url, REDIS_KEY_PREFIX=unique_prefix(), STORE_FAILURE_MODE="closed"
    )
    store = create_store(settings)
    yield store
    await store.close()


def shift_host_clock(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + seconds)


async def test_a_worker_whose_clock_runs_ahead_still_accepts_a_fresh_key(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, secret = await VirtualKeyStore(store).create(VirtualKeySpec(expires_in=300))
    shift_host_clock(monkeypatch, SKEW)  # another worker, ten minutes ahead
    assert await VirtualKeyStore(store).verify(secret) is not None


async def test_a_worker_whose_clock_runs_behind_refuses_an_expired_key(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    key, secret = await VirtualKeyStore(store).create(VirtualKeySpec(expires_in=0.2))
    assert key.expires_at is not None
    for _ in range(100):  # until the store's clock is past the key's expiry
        if await store.server_time() > key.expires_at:
            break
        await asyncio.sleep(0.05)
    shift_host_clock(monkeypatch, -SKEW)  # another worker, ten minutes behind
    assert await VirtualKeyStore(store).verify(secret) is None


async def test_creation_and_revocation_times_are_the_stores(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    shift_host_clock(monkeypatch, SKEW)
    keys = VirtualKeyStore(store)
    key, _ = await keys.create(VirtualKeySpec())
    revoked = await keys.revoke(key.id)
    monkeypatch.undo()
    store_now = await store.server_time()
    assert abs(key.created_at - store_now) < 60
    assert revoked is not None and revoked.revoked_at is not None
    assert abs(revoked.revoked_at - store_now) < 60
