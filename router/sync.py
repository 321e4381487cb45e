"""A blocking facade over ``RequestRouter`` for callers without an event loop.

The product's API is async. Each method runs the async method through a portal (kernel/portal.py:
a private event loop that lives as long as the facade); it is one line, never a second
implementation. Inside a running event loop, await the async router instead: the facade raises
RuntimeError there.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from kernel.portal import Portal
from router.answers import Answer

if TYPE_CHECKING:
    from router.embedding import EmbedAnswer
    from router.lease import Lease
    from router.request_router import RequestRouter


class SyncRequestRouter:
    """``RequestRouter`` with blocking methods of the same names (document 004's examples)."""

    def __init__(self, router: RequestRouter | None = None, **kwargs: Any) -> None:
        from router.request_router import RequestRouter

        self._portal = Portal("SyncRequestRouter", "await the async API instead")
        self.router = router or RequestRouter(**kwargs)

    def send_one_shot(self, prompt: str, *args: Any, **kwargs: Any) -> Answer:
        return self._portal.run(self.router.send_one_shot(prompt, *args, **kwargs))

    def send_chat(self, conv_id: str, prompt: str, *args: Any, **kwargs: Any) -> Answer:
        return self._portal.run(self.router.send_chat(conv_id, prompt, *args, **kwargs))

    def complete(self, messages: list[dict[str, Any]], *args: Any, **kwargs: Any) -> Answer:
        return self._portal.run(self.router.complete(messages, *args, **kwargs))

    def embed(self, texts: str | Sequence[str], model: str, **kwargs: Any) -> EmbedAnswer:
        return self._portal.run(self.router.embed(texts, model, **kwargs))

    def health_check(self) -> dict[str, Any]:
        return self._portal.run(self.router.health_check())

    def truncate_conversation(
        self, conv_id: str, keep_last_n: int | None = None, **kwargs: Any
    ) -> Any:
        return self._portal.run(self.router.truncate_conversation(conv_id, keep_last_n, **kwargs))

    @contextlib.contextmanager
    def lease(
        self, model: str | None = None, tokens: int | None = None, **kwargs: Any
    ) -> Iterator[Lease]:
        """``RequestRouter.lease`` as a blocking context manager (use ``lease.client()``)."""
        manager = self.router.lease(model, tokens, **kwargs)
        lease = self._portal.run(manager.__aenter__())
        try:
            yield lease
        except BaseException as exc:
            self._portal.run(manager.__aexit__(type(exc), exc, exc.__traceback__))
            raise
        self._portal.run(manager.__aexit__(None, None, None))

    def execute_with_retry(self, fn: Callable[[Lease], Any], *args: Any, **kwargs: Any) -> Any:
        """``RequestRouter.execute_with_retry``; ``fn`` runs in a worker thread."""
        return self._portal.run(self.router.execute_with_retry(fn, *args, **kwargs))

    def close(self) -> None:
        try:
            self._portal.run(self.router.close())
        finally:
            self._portal.close()

    def __enter__(self) -> SyncRequestRouter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
