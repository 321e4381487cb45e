"""Settles off the answer's path: a call's settle is queued and sent after its answer returns.

    queue = SettleQueue()
    await queue.submit(key_id, job)     # job: a coroutine function (the settle); back once queued
    kind = await queue.run(key_id, job)  # queued in order too, and its result waited for
    await queue.flush()                  # every settle queued so far has landed (or failed for good)

The queue belongs to the KeyManager, not to the caller's task: a caller cancelled after its submit
loses nothing. Settles are started in the order they came, up to ``BATCH`` at once, each in a task
the queue holds. On a standalone Redis (``ordered``: the script lane writes the calls in the order
they are made, on one connection, and Redis runs them in that order) they all go at once, pipelined;
on other stores one per key at a time, so that a key's settles land in order whatever the backend
(other keys' go past a slow one). On the lane, a call retried (a lost connection, a script Redis
must load again after a restart) may land after one sent behind it. The limits do not mind
(settles of other processes interleave with these anyway: refunds are bounded, blocks only
grow), nor do a key's health counts between its successes (each fades the key's failures, resets
its back-off levels, closes its breaker: in any order, the same). A failure's does not commute
with a success (one landing after it would take back its count, or close the breaker it opened,
and the breaker would trip later): so a settle whose result is waited for (``run``: failures, and
successes the next reservation must see) is fenced within its key, on every store: it starts
once the key's earlier settles have landed, and the key's later ones once it has (tested in
tests/keys/test_settle_queue.py). Each retries like an inline
settle (the store's retries, then degraded mode); a job that still fails has handled it itself
(logged; its usage record goes the background path). When ``size`` settles wait, a submit waits for
room (back-pressure, never a drop). Until its settle lands a call holds what it reserved; if the
process dies first, the reservation's TTL gives it back as before (``RESERVATION_TTL_SECONDS``).

``deferred=False`` (``SETTLE_MODE=inline``): every job runs at once, in its caller's task.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, TypeVar

from kernel.log import get_logger

log = get_logger("keys.settle")

T = TypeVar("T")
Job = Callable[[], Awaitable[Any]]

#: Settles waiting at most before a submit waits for room.
QUEUE_SIZE = 10_000
#: Settles in flight at most.
BATCH = 512

_Item = tuple[str, Job, "asyncio.Future[Any] | None"]


class SettleQueue:
    """The settles of one KeyManager's calls, sent in order without their callers waiting."""

    def __init__(
        self, *, deferred: bool = True, size: int = QUEUE_SIZE, ordered: bool = False
    ) -> None:
        self.deferred = deferred
        self.size = max(1, size)
        #: Settles in flight at most.
        self.batch = BATCH
        #: The store runs scripts in the order they were made (the script lane).
        self.ordered = ordered
        self._waiting: deque[_Item] = deque()
        self._running: set[asyncio.Task[None]] = set()
        self._busy: dict[str, int] = {}
        #: Keys with a waited-for settle in flight (their next ones wait for it).
        self._fenced: dict[str, int] = {}
        self._room: deque[asyncio.Future[None]] = deque()
        self._idle: list[asyncio.Future[None]] = []
        #: Settles sent since start (landed or failed for good).
        self.sent = 0

    @property
    def pending(self) -> int:
        """Settles queued or being sent."""
        return len(self._waiting) + len(self._running)

    @property
    def held_back(self) -> int:
        """Submits waiting for room (the queue is full)."""
        return sum(not waiter.done() for waiter in self._room)

    async def submit(self, key_id: str, job: Job) -> None:
        """Queue ``job`` (inline mode: run it now). Waits only while the queue is full; a caller
        cancelled meanwhile still gets its settle queued."""
        if not self.deferred:
            await job()
            return
        try:
            await self._wait_for_room()
        finally:  # cancelled while waiting for room too: the settle is never lost
            self._enqueue(key_id, job, None)

    async def run(self, key_id: str, job: Callable[[], Awaitable[T]]) -> T:
        """Queue ``job`` behind the settles before it and wait for its result (a failure the
        caller's next step depends on). The job runs even if the caller is cancelled."""
        if not self.deferred:
            return await job()
        result: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        try:
            await self._wait_for_room()
        finally:
            self._enqueue(key_id, job, result)
        return await asyncio.shield(result)

    async def flush(self) -> None:
        """Wait until every settle queued so far was sent and answered (or failed for good)."""
        while self._waiting or self._running:
            self._dispatch()  # queued from a loop that went away: sent from this one
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._idle.append(waiter)
            await waiter

    # -- sending -----------------------------------------------------------------------------------
    async def _wait_for_room(self) -> None:
        while len(self._waiting) >= self.size:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._room.append(waiter)
            await waiter

    def _enqueue(self, key_id: str, job: Job, result: asyncio.Future[Any] | None) -> None:
        self._waiting.append((key_id, job, result))
        self._dispatch()

    def _dispatch(self) -> None:
        """Start the oldest settles that may go now (unordered stores: not a key's second; any
        store: not across a key's fence, module docstring)."""
        loop = asyncio.get_running_loop()
        waiting, later, batch = self._waiting, list[_Item](), self.batch
        held: set[str] = set()  # keys with a settle left waiting: their later ones wait too
        while waiting and len(self._running) < batch and len(later) < batch:
            key_id, job, result = waiting.popleft()
            if key_id in held or self._must_wait(key_id, result is not None):
                later.append((key_id, job, result))  # after that key's settle in flight
                held.add(key_id)
                continue
            self._busy[key_id] = self._busy.get(key_id, 0) + 1
            fence = result is not None
            if fence:
                self._fenced[key_id] = self._fenced.get(key_id, 0) + 1
            task = loop.create_task(_one(job, result))
            self._running.add(task)
            task.add_done_callback(partial(self._finished, key_id, fence))
        waiting.extendleft(reversed(later))
        while self._room and len(waiting) < self.size:
            _wake(self._room.popleft())

    def _must_wait(self, key_id: str, fence: bool) -> bool:
        if key_id not in self._busy:
            return False
        return not self.ordered or fence or key_id in self._fenced

    def _finished(self, key_id: str, fence: bool, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        self.sent += 1
        _count_down(self._busy, key_id)
        if fence:
            _count_down(self._fenced, key_id)
        if self._waiting and not task.cancelled():
            self._dispatch()
        if not self._waiting and not self._running:
            idle, self._idle = self._idle, []
            for waiter in idle:
                _wake(waiter)


async def _one(job: Job, result: asyncio.Future[Any] | None) -> None:
    try:
        value = await job()
    except Exception as exc:  # a job's bug: logged, never stops the others
        log.error("a queued settle failed", error=f"{type(exc).__name__}: {exc}")
        if result is not None and not result.done():
            result.set_exception(exc)
        return
    if result is not None and not result.done():
        result.set_result(value)


def _count_down(counts: dict[str, int], key_id: str) -> None:
    left = counts.pop(key_id, 1) - 1
    if left:
        counts[key_id] = left


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
