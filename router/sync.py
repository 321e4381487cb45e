"""Blocking facades for callers without an event loop.

The product's API is async. A facade runs each call on a private event loop (``asyncio.Runner``)
that lives as long as the facade, so the Redis connections and HTTP session the async object opened
stay usable from call to call. Facades are one-line wrappers, never a second implementation. Inside
a running event loop, await the async object instead: a facade raises RuntimeError there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from router.answers import Answer

if TYPE_CHECKING:
    from router.request_router import RequestRouter

T = TypeVar("T")


class Portal:
    """Runs coroutines to completion on one private event loop."""

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self._runner = asyncio.Runner()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return self._runner.run(coro)
        coro.close()
        raise RuntimeError(f"{self.owner} called inside an event loop: await the async API instead")

    def close(self) -> None:
        self._runner.close()


class SyncRequestRouter:
    """``RequestRouter`` with blocking methods of the same names (document 004's examples)."""

    def __init__(self, router: RequestRouter | None = None, **kwargs: Any) -> None:
        from router.request_router import RequestRouter

        self._portal = Portal("SyncRequestRouter")
        self.router = router or RequestRouter(**kwargs)

    def send_one_shot(self, prompt: str, *args: Any, **kwargs: Any) -> Answer:
        return self._portal.run(self.router.send_one_shot(prompt, *args, **kwargs))

    def send_chat(self, conv_id: str, prompt: str, *args: Any, **kwargs: Any) -> Answer:
        return self._portal.run(self.router.send_chat(conv_id, prompt, *args, **kwargs))

    def complete(self, messages: list[dict[str, Any]], *args: Any, **kwargs: Any) -> Answer:
        return self._portal.run(self.router.complete(messages, *args, **kwargs))

    def health_check(self) -> dict[str, Any]:
        return self._portal.run(self.router.health_check())

    def truncate_conversation(
        self, conv_id: str, keep_last_n: int | None = None, **kwargs: Any
    ) -> Any:
        return self._portal.run(self.router.truncate_conversation(conv_id, keep_last_n, **kwargs))

    def close(self) -> None:
        try:
            self._portal.run(self.router.close())
        finally:
            self._portal.close()

    def __enter__(self) -> SyncRequestRouter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
