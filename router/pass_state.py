"""What one pass over the model chain found (router/dispatch.py), and the answer of a pass that
found nothing: the last failure, else no room (or another reason), else the model is not served."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from kernel.errors import (
    AllKeysExhaustedError,
    ModelNotAvailableError,
    ProviderError,
    RateLimitedError,
    RouterError,
)


@dataclass
class PassState:
    """What one pass over the chain found, for its final answer."""

    #: The last failure of a call (or the upstream failure that opened every key of a model).
    failure: RouterError | None = None
    #: The last other reason a model could not serve (no room, too large, context length).
    last: RouterError | None = None
    #: Monotonic times some key is expected back.
    room_at: list[float] = field(default_factory=list)
    only_capacity: bool = True
    unserved: list[str] = field(default_factory=list)
    #: Back-offs slept so far in this pass (each one longer).
    backoffs: int = 0

    def no_room(self, exc: AllKeysExhaustedError) -> None:
        self.last = exc
        if exc.retry_after is not None:
            self.room_at.append(time.monotonic() + exc.retry_after)
        if exc.upstream is not None:
            self.failure = self.failure or exc.upstream
            self.only_capacity = False
        elif exc.retry_after is None:
            self.only_capacity = False

    def other(self, exc: RouterError) -> None:
        self.last, self.only_capacity = exc, False

    def failed(self, exc: RouterError) -> None:
        self.failure, self.only_capacity = exc, False

    def earliest_room(self) -> float | None:
        """When the only trouble was missing room: the earliest monotonic time some key is
        expected back."""
        return min(self.room_at) if self.room_at and self.only_capacity else None

    def final_error(
        self, requested: str, cooldown: float, served_models: Callable[[], list[str]]
    ) -> RouterError:
        """The answer of a pass that found nothing: the last failure (with ``retry_after``;
        ``cooldown``, the 429 cooldown, for a rate limit), else no room (or another reason),
        else the model is not served."""
        room = max(0.0, min(self.room_at) - time.monotonic()) if self.room_at else None
        if self.failure is not None:
            if isinstance(self.failure, ProviderError) and self.failure.retry_after is None:
                self.failure.retry_after = room
            if isinstance(self.failure, RateLimitedError) and self.failure.retry_after is None:
                # rate_limited always says when: the cooldown the 429 started
                self.failure.retry_after = cooldown
            return self.failure
        if isinstance(self.last, AllKeysExhaustedError):
            ex = self.last
            return AllKeysExhaustedError(
                requested,
                retry_at=None if room is None else ex.now + room,
                now=ex.now,
                reason=ex.reason,
                keys=ex.keys,
            )
        if self.last is not None:
            return self.last
        return ModelNotAvailableError(requested, served_models())

    def out_of_budget(self) -> RouterError:
        """The answer when attempts or time ran out: the last failure or reason, if any."""
        return (
            self.failure or self.last or ProviderError("retry budget exhausted (attempts or time)")
        )
