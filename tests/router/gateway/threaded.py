"""A gateway harness on its own event loop in a thread, for synchronous tests (schemathesis)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from tests.router.gateway.harness import GatewayHarness

T = TypeVar("T")


class ThreadedGateway:
    """Runs ``harness`` (simulator + gateway) on a loop in a daemon thread until stopped."""

    def __init__(self, harness: GatewayHarness) -> None:
        self.harness = harness
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=60)

    def __enter__(self) -> ThreadedGateway:
        self._thread.start()
        self.call(self.harness.start())
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.call(self.harness.stop())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop.close()
