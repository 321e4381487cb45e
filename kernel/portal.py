"""The one portal from blocking code into the async API: a private event loop per facade.

A facade (``router.sync.SyncRequestRouter``, ``conversation.sync.SyncConversationStore``) runs
each call on a private event loop (``asyncio.Runner``) that lives as long as the facade, so the
Redis connections and HTTP session the async object opened, which belong to the loop that opened
them, stay usable from call to call. Facades are one-line wrappers, never a second
implementation. Inside a running event loop, await the async object instead: a portal raises
RuntimeError there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class Portal:
    """Runs coroutines to completion on one private event loop."""

    def __init__(self, owner: str, instead: str) -> None:
        self.owner = owner
        self.instead = instead
        self._runner = asyncio.Runner()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return self._runner.run(coro)
        coro.close()
        raise RuntimeError(f"{self.owner} called inside an event loop: {self.instead}")

    def close(self) -> None:
        self._runner.close()
