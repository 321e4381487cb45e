"""A router over scripted provider answers (router.testing), the embedded store and virtual time.

    async with scripted_router(request, tmp_path, [key("a"), key("b")]) as pool:
        pool.transport.script(rate_limited(3), secret=pool.secret("a"))
        answer = await pool.router.send_one_shot("hi", "gpt-4o-mini")
        assert pool.called() == ["a", "b"]

Time is virtual: the key pool's scripts read a manual clock, and the dispatcher's
``time.monotonic`` and ``asyncio.sleep`` are the same clock (a sleep advances it at once and is
recorded in ``pool.slept``), so a 60 s wait for room costs nothing and its length is exact.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from router.request_router import RequestRouter
from router.routing import RoutingTable
from router.testing import ScriptedTransport
from tests.conftest import settings_for
from tests.keys.engine_helpers import ManualClock
from tests.keys.manager_helpers import env_name, manager_for


def key(key_id: str, *models: str, provider: str = "openai", **fields: Any) -> dict[str, Any]:
    """A keys.json entry serving ``models`` (default gpt-4o-mini)."""
    names = list(models or ["gpt-4o-mini"])
    return {
        "key_id": key_id,
        "provider": provider,
        "model_name": names[0],
        "models": [{"model": m} for m in names],
        **fields,
    }


@dataclass
class VirtualTime:
    """The dispatcher's clock and sleep, tied to the pool's manual clock."""

    clock: ManualClock
    monotonic_now: float = field(default_factory=time.monotonic)
    slept: list[float] = field(default_factory=list)

    def advance(self, seconds: float) -> None:
        self.monotonic_now += seconds
        self.clock.advance(seconds)

    def monotonic(self) -> float:
        return self.monotonic_now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.advance(max(0.0, seconds))
        await asyncio.sleep(0)


class _Namespace:
    """A module seen through ``overrides`` (only the dispatcher's name for it is replaced)."""

    def __init__(self, module: Any, **overrides: Any) -> None:
        self._module, self._overrides = module, overrides

    def __getattr__(self, name: str) -> Any:
        return self._overrides.get(name) or getattr(self._module, name)


#: The modules whose clock and sleeps the dispatcher's waits use (the dispatcher, its calls on a
#: key, what a pass found; the one wait-for-room loop in keys/room.py).
TIMED_MODULES = ("router.dispatch", "router.attempt", "router.pass_state", "keys.room")


def _timed_modules() -> list[Any]:
    found = []
    for name in TIMED_MODULES:
        with contextlib.suppress(ModuleNotFoundError):
            found.append(importlib.import_module(name))
    return found


@dataclass
class ScriptedPool:
    router: RequestRouter
    transport: ScriptedTransport
    time: VirtualTime
    secrets: dict[str, str]

    def secret(self, key_id: str) -> str:
        return self.secrets[key_id]

    def called(self) -> list[str]:
        """The key ids called, in order."""
        by_secret = {s: k for k, s in self.secrets.items()}
        return [by_secret[call.secret] for call in self.transport.calls]

    @property
    def slept(self) -> list[float]:
        return self.time.slept


@contextlib.asynccontextmanager
async def scripted_router(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    keys: list[dict[str, Any]],
    *,
    routing: dict[str, Any] | None = None,
    **settings: Any,
) -> AsyncIterator[ScriptedPool]:
    settings.setdefault("RESERVE_WAIT_SECONDS", 0)
    conf = settings_for("embedded", request, **settings)
    clock = ManualClock()
    entries = [dict(k) for k in keys]
    manager, env = manager_for(conf, tmp_path, entries, clock=clock)
    virtual = VirtualTime(clock)
    monkeypatch = pytest.MonkeyPatch()
    for module in _timed_modules():
        monkeypatch.setattr(module, "time", _Namespace(time, monotonic=virtual.monotonic))
        if hasattr(module, "asyncio"):  # a module that only reads the clock never sleeps
            monkeypatch.setattr(module, "asyncio", _Namespace(asyncio, sleep=virtual.sleep))
    transport = ScriptedTransport()
    table = RoutingTable.from_section(routing)
    instance = RequestRouter(manager, settings=conf, transport=transport, routing=table)
    try:
        await instance.start()
        secrets = {k["key_id"]: env[env_name(k["key_id"])] for k in keys}
        yield ScriptedPool(instance, transport, virtual, secrets)
    finally:
        await instance.close()
        monkeypatch.undo()
