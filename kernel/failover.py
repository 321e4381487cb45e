"""Degraded mode: a process keeps serving on a local store while the shared store is unreachable.

With ``REDIS_URL`` set and ``STORE_FAILURE_MODE=open`` (the default), every :class:`~kernel.store.Store`
gets a :class:`Failover`. The first command that cannot reach the shared store (at start or
mid-run) switches the store to *degraded*: ``Store.run`` and ``Store.call`` then go to a private
in-process embedded server of this Store, running the same Lua scripts, and ``store.client`` is its
client. Key limits synced to it are divided by ``ROUTER_PROCESSES`` (keys/engine.py), so the
processes together stay within each key's limits without sharing state.

While degraded a task pings the shared store every :data:`PROBE_SECONDS`. When it answers, the
writes kept for it (conversation turns, in order: :meth:`Failover.keep`) are written there, then
the store switches back at once. What the local store counted is never added to the shared store
(nothing is counted twice), but for :data:`HOLDOVER_SECONDS` (one rate window) a reservation made
on the shared store must also fit the local limits (``holdover``; keys/selection.py): the shared
store never saw what this process sent meanwhile, so without it a key could get its limit from
the shared store on top of what the processes sent while degraded. Then the local state is
dropped. A warning is logged once per transition, each way.

Reservations made on one side and settled on the other answer ``expired`` (nothing to refund or
charge there): harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from redis.exceptions import ClusterError, RedisClusterException
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from kernel.errors import StoreError
from kernel.log import get_logger
from lua import Script

if TYPE_CHECKING:
    from kernel.store import Store

log = get_logger("router.store")

#: Seconds between two probes of the shared store while degraded.
PROBE_SECONDS = 0.5
#: Longest a probe waits for the shared store's answer.
PROBE_TIMEOUT_SECONDS = 1.0
#: After the shared store returns, the local store's limits still apply this long (one strict
#: window and its current second): the shared store never saw what this process sent meanwhile.
HOLDOVER_SECONDS = 61.0


#: Failures that mean the shared store cannot be reached (degraded mode takes over).
UNREACHABLE = (
    RedisConnectionError,
    RedisTimeoutError,
    OSError,
    ClusterError,
    RedisClusterException,
)


def is_unreachable(exc: BaseException | None) -> bool:
    return isinstance(exc, UNREACHABLE)


@dataclass(frozen=True)
class Replay:
    """A write made locally while degraded, to run again on the shared store when it returns."""

    script: Script
    keys: Sequence[str]
    args: Sequence[Any]
    #: Told the shared store's reply (e.g. to log a turn the shared store refused).
    done: Callable[[Any], None] | None = None


class BufferFullError(StoreError):
    """The shared store is unreachable and the degraded-mode buffer is full."""


class Failover:
    """The local backend of one Store and the switching between it and the shared one."""

    def __init__(
        self,
        shared_client: Any,
        new_local: Callable[[], Store],
        *,
        divisor: int = 1,
        buffer_size: int = 5000,
    ) -> None:
        self.shared_client = shared_client
        self._new_local = new_local
        self._local: Store | None = None
        #: Each key's limits are divided by this on the local store (ROUTER_PROCESSES).
        self.divisor = max(1, divisor)
        self.buffer_size = buffer_size
        self.degraded = False
        #: Why the store is degraded (the last connection error), "" when not.
        self.error = ""
        self.since: float | None = None
        #: Times the store switched to local (for reports and tests).
        self.transitions = 0
        self.pending: deque[Replay] = deque()
        #: Called (synchronously) right after the store is back on the shared store.
        self.on_recover: list[Callable[[], None]] = []
        self._store: Store | None = None
        self._probe: asyncio.Task[None] | None = None
        self._closed = False
        #: Monotonic time until which the local limits still apply on the shared store.
        self._holdover_until = 0.0

    @property
    def local(self) -> Store:
        """The private local store (made on first use)."""
        if self._local is None:
            self._local = self._new_local()
        return self._local

    @property
    def holdover(self) -> bool:
        """Back on the shared store less than HOLDOVER_SECONDS ago: reservations made there must
        also fit the local store's limits, which hold what this process sent while degraded."""
        return not self.degraded and time.monotonic() < self._holdover_until

    def attach(self, store: Store) -> None:
        self._store = store

    # -- switching ---------------------------------------------------------------------------------
    def enter(self, error: BaseException | str) -> None:
        """The shared store did not answer: serve locally (idempotent)."""
        if self._closed:
            return
        if not self.degraded:
            if not self.holdover:  # what the local store counted is over: start afresh
                self._local = self._new_local()
            self.degraded = True
            self.error = str(error)
            self.since = time.time()
            self.transitions += 1
            assert self._store is not None
            self._store.client = self.local.client
            log.warning(
                "shared store unreachable: serving in degraded mode on a local store "
                f"(limits divided by ROUTER_PROCESSES={self.divisor}) until it answers again",
                store=self._store.describe_target(),
                error=self.error,
            )
        if self._probe is None or self._probe.done():
            self._probe = asyncio.get_running_loop().create_task(self._watch())

    def _leave(self) -> None:
        """Back on the shared store. The local store is no longer written to, nor added to the
        shared one (no double counting); for HOLDOVER_SECONDS its limits still cap this process
        (keys/selection.py), then it is dropped."""
        assert self._store is not None
        seconds = time.time() - (self.since or time.time())
        self.degraded = False
        self.error = ""
        self.since = None
        self._store.client = self.shared_client
        self._holdover_until = time.monotonic() + HOLDOVER_SECONDS
        log.warning(
            "shared store reachable again: degraded mode ended "
            f"(local limits still cap this process for {HOLDOVER_SECONDS:.0f} s)",
            store=self._store.describe_target(),
            degraded_seconds=round(seconds, 3),
        )
        for hook in list(self.on_recover):
            try:
                hook()
            except Exception:  # a hook must not keep the store degraded
                log.exception("recovery hook failed")

    async def _watch(self) -> None:
        while self.degraded and not self._closed:
            await asyncio.sleep(PROBE_SECONDS)
            try:
                await asyncio.wait_for(self.shared_client.ping(), PROBE_TIMEOUT_SECONDS)
                await self._replay()
            except Exception as exc:  # still unreachable (or failing): stay degraded
                self.error = str(exc) or type(exc).__name__
                continue
            self._leave()

    async def _replay(self) -> None:
        """Write what was kept, oldest first; a failure stops here (it is tried again later)."""
        assert self._store is not None
        written = 0
        while self.pending:
            entry = self.pending[0]
            try:
                reply = await self._store.run_shared(entry.script, entry.keys, entry.args)
            except StoreError as exc:
                if is_unreachable(exc.__cause__):
                    raise  # tried again at the next probe
                self.pending.popleft()  # refused for good: must not hold the others back
                log.error("a write kept while degraded failed on the shared store", error=str(exc))
                continue
            self.pending.popleft()
            written += 1
            if entry.done is not None:
                entry.done(reply)
        if written:
            log.info("degraded-mode writes replayed on the shared store", writes=written)

    # -- kept writes -------------------------------------------------------------------------------
    def check_room(self) -> None:
        """Raise BufferFullError when a write to keep would not fit in the buffer."""
        if len(self.pending) >= self.buffer_size:
            raise BufferFullError(
                "the shared store is unreachable and the degraded-mode buffer is full "
                f"(DEGRADED_CONVERSATION_BUFFER={self.buffer_size} writes waiting)"
            )

    def keep(self, replay: Replay) -> None:
        self.pending.append(replay)

    # -- life cycle --------------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"degraded": self.degraded, "failure_mode": "open"}
        if self.degraded:
            out.update(
                error=self.error,
                degraded_since=self.since,
                buffered_writes=len(self.pending),
                limits_divided_by=self.divisor,
            )
        return out

    async def close(self) -> None:
        self._closed = True
        if self._probe is not None and not self._probe.done():
            self._probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe
        if self.pending:
            log.error(
                "store closed while degraded: buffered writes not written to the shared store",
                writes=len(self.pending),
            )
        if self._local is not None:
            await self._local.close()
