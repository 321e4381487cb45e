"""``RequestRouter.lease`` and ``RequestRouter.execute_with_retry``: a pool key for any SDK call.

    async with router.lease("gpt-4o-mini", tokens=1200) as lease:
        client = lease.async_client()
        answer = await client.chat.completions.create(model=lease.model, messages=[...])
        lease.record(answer)

    answer = await router.execute_with_retry(
        lambda lease: lease.client().chat.completions.create(model=lease.model, messages=[...]),
        model="gpt-4o-mini",
        tokens=1200,
    )

How a lease is reserved, settled and retried: router/lease_runner.py; the lease: router/lease.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from kernel.errors import ClientRequestError
from kernel.usage_record import Attribution
from router.lease import Lease
from router.lease_runner import LeaseRunner

if TYPE_CHECKING:
    from router.dispatch import Dispatcher
    from router.usage_log import UsageLog

__all__ = ["LeaseAPI"]


class LeaseAPI:
    """The lease methods of :class:`router.request_router.RequestRouter`."""

    if TYPE_CHECKING:
        usage: UsageLog

        async def _ready(self) -> Dispatcher: ...

    @asynccontextmanager
    async def lease(
        self,
        model: str | None = None,
        tokens: int | None = None,
        *,
        kind: str = "chat",
        user: str | None = None,
        team: str | None = None,
        tags: dict[str, str] | None = None,
        request_id: str | None = None,
        exclude: Sequence[str] = (),
    ) -> AsyncIterator[Lease]:
        """Reserve a key of ``model`` (its aliases and fallbacks too) for ``tokens`` tokens
        (default ``EXPECTED_COMPLETION_TOKENS``) and hand it over as a :class:`Lease`.
        ``kind``: chat, embedding or other (how the worst-case cost is priced for budgets).
        No room: AllKeysExhaustedError (``retry_after``); a spent budget: BudgetExceededError.
        An exception of the block is recorded against the key and goes on unchanged."""
        runner = LeaseRunner(await self._ready(), self.usage)
        async with runner.lease(
            model,
            tokens,
            kind=kind,
            exclude=exclude,
            tags=tags,
            attribution=_attribution(user, team),
            request_id=request_id,
        ) as lease:
            yield lease

    async def execute_with_retry(
        self,
        fn: Callable[[Lease], Any],
        model: str | None = None,
        tokens: int | None = None,
        *,
        max_attempts: int | None = None,
        max_retries: int | None = None,
        kind: str = "chat",
        user: str | None = None,
        team: str | None = None,
        tags: dict[str, str] | None = None,
    ) -> Any:
        """Document 001's ``execute_with_retry``: ``fn(lease)`` (a coroutine function, or a
        blocking one run in a thread) on a fresh lease per attempt, rotating to another key
        after a 429, 401/403, 5xx, 529, timeout or lost connection; answers what ``fn``
        answers (a response's usage is recorded unless ``fn`` recorded it), else raises the
        last error. ``max_attempts`` (document 001's ``max_retries`` is the same number)
        defaults to ``MAX_ATTEMPTS``."""
        runner = LeaseRunner(await self._ready(), self.usage)
        options: dict[str, Any] = {
            "kind": kind,
            "tags": tags,
            "attribution": _attribution(user, team),
        }
        return await runner.execute(fn, model, tokens, max_attempts or max_retries, options)


def _attribution(user: str | None, team: str | None) -> Attribution:
    for param, value in (("user", user), ("team", team)):
        if value is not None and (not isinstance(value, str) or not 0 < len(value) <= 256):
            raise ClientRequestError(
                f"Invalid value for '{param}': expected a string of 1 to 256 characters", param
            )
    return Attribution(user=user, team=team)
