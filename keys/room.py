"""Waiting for room: the one bounded loop of every caller that waits until a key has room.

``KeyManager.select_key(wait=...)`` waits for one model's keys; the Dispatcher (router/dispatch.py)
waits, between passes over a model chain, for the earliest room any of its models expects. Both
try, learn from the try when room is expected, and sleep until then (plus a little jitter, so
waiters do not all wake at the same instant) while the wait's budget and deadline allow it; else
the last try's answer stands. Pauses are durations (seconds from the store's ``now``) waited on
the monotonic clock, so a host clock that is off changes nothing.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

A = TypeVar("A")
R = TypeVar("R")


@dataclass(frozen=True)
class NoRoom(Generic[A]):
    """A try that found no room: its answer if the wait ends here, and the seconds until room is
    expected (None: waiting will not help)."""

    answer: A
    pause: float | None
    #: The pause is a key's limits being learned from its provider's first answer
    #: (keys/learned.py): it spends the wait's deadline, not its budget.
    learning: bool = False


@dataclass
class RoomWait:
    """A bounded wait: at most ``budget`` seconds of sleep in all, none ending past ``deadline``
    (a monotonic time)."""

    budget: float
    deadline: float = math.inf
    jitter: float = 0.01
    #: seconds slept so far
    waited: float = 0.0

    @classmethod
    def for_seconds(cls, seconds: float, *, jitter: float = 0.01) -> RoomWait:
        """A wait of at most ``seconds`` from now."""
        seconds = max(0.0, seconds)
        return cls(seconds, time.monotonic() + seconds, jitter)

    def allows(self, pause: float | None, learning: bool = False) -> bool:
        """Whether this wait may still sleep ``pause`` seconds (``learning``: within its deadline,
        whatever its budget)."""
        if pause is None:
            return False
        if learning:
            return time.monotonic() + max(0.0, pause) + self.jitter <= self.deadline
        # the jitter counts too: a sleep that ended past the deadline would find the budget
        # spent and answer "retry budget exhausted" where "no room, retry in ..." is the truth
        return (
            max(0.0, pause) <= self.budget - self.waited
            and time.monotonic() + pause + self.jitter <= self.deadline
        )

    async def until_room(self, attempt: Callable[[], Awaitable[R]]) -> R:
        """Try until a try finds room (answers anything but a NoRoom) or the wait cannot cover
        the pause its NoRoom names; answers that try's result."""
        while True:
            got = await attempt()
            if not isinstance(got, NoRoom) or not self.allows(got.pause, got.learning):
                return got
            pause = max(0.0, got.pause or 0.0)
            if not got.learning:
                self.waited += pause
            await asyncio.sleep(pause + random.uniform(0, self.jitter))
