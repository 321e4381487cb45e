"""Redis restarted under the engine: scripts reload (NOSCRIPT) and the pool rebuilds itself."""

from __future__ import annotations

import pytest

from kernel.errors import StoreError
from kernel.settings import Settings
from kernel.store import create_store
from keys.engine import CapacityEngine
from tests.keys.engine_helpers import ManualClock, make_key
from tests.servers import redis_server


@pytest.mark.integration
async def test_engine_survives_a_redis_restart() -> None:
    with redis_server() as server:
        settings = Settings.from_env(
            {}, REDIS_URL=server.url, REDIS_TIMEOUT_SECONDS=1, STORE_FAILURE_MODE="closed"
        )
        store = create_store(settings)
        engine = CapacityEngine(store, clock=ManualClock())
        try:
            await engine.configure([make_key("a", rpm=100), make_key("b", rpm=100)])
            reservation = await engine.reserve("gpt-4o", 5)
            await engine.settle(reservation, actual_tokens=3)
            server.stop()
            with pytest.raises(StoreError, match="unreachable"):
                await engine.reserve("gpt-4o", 5)
            server.start()  # an empty Redis: no scripts, no pool records
            again = await engine.reserve("gpt-4o", 5)
            assert again.key_id in {"a", "b"}
            assert (await engine.settle(again)).settled
        finally:
            await store.close()
