"""At start on Redis the router checks persistence and the eviction policy (README "Redis in
production"): real redis-servers started with the settings in question, the router's own start."""

from __future__ import annotations

from typing import Any

import pytest

from kernel.settings import Settings
from keys.manager import KeyManager
from tests import keygen
from tests.helpers import log_events
from tests.servers import RedisServer

pytestmark = pytest.mark.integration


async def start_logs(caplog: pytest.LogCaptureFixture, *redis_args: str) -> list[dict[str, Any]]:
    """What a KeyManager's start logs against a redis-server run with ``redis_args``."""
    server = RedisServer(extra=list(redis_args)).start()
    try:
        settings = Settings.from_env({}, REDIS_URL=server.url)
        manager = KeyManager(
            settings=settings, environ={"OPENAI_API_KEY": keygen.openai_project_key()}
        )
        with log_events(caplog) as logs:
            await manager.start()
        await manager.close()
    finally:
        server.cleanup()
    return [e for e in logs if e.get("logger") == "router.store" or "Redis" in e["event"]]


async def test_an_evicting_server_that_persists_nothing_is_warned_about(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logs = await start_logs(
        caplog, "--maxmemory-policy", "allkeys-lru", "--appendonly", "no", "--save", ""
    )
    warnings = [e["event"] for e in logs if e["level"] == "warning"]
    assert len(warnings) == 2, logs
    assert "maxmemory-policy is allkeys-lru" in warnings[0] and "noeviction" in warnings[0]
    assert "limiter state, virtual keys and revocations" in warnings[0]
    assert "persists nothing" in warnings[1] and "appendonly yes" in warnings[1]


async def test_volatile_policies_and_snapshots_only_are_warned_about_precisely(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logs = await start_logs(
        caplog, "--maxmemory-policy", "volatile-lru", "--appendonly", "no", "--save", "60 1"
    )
    warnings = [e["event"] for e in logs if e["level"] == "warning"]
    assert len(warnings) == 2, logs
    assert "volatile-lru" in warnings[0] and "conversations, reservations" in warnings[0]
    assert "only RDB snapshots" in warnings[1]


async def test_noeviction_with_aof_is_not_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    logs = await start_logs(caplog, "--maxmemory-policy", "noeviction", "--appendonly", "yes")
    assert [e for e in logs if e["level"] == "warning"] == []


async def test_a_server_without_config_is_logged_as_unchecked(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logs = await start_logs(caplog, "--rename-command", "CONFIG", "")
    assert [e for e in logs if e["level"] == "warning"] == []
    (unchecked,) = [e for e in logs if "could not check" in e["event"]]
    assert unchecked["level"] == "info" and "Redis in production" in unchecked["event"]
