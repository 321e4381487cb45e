"""Keeping a running stream's reservation alive.

A reservation expires ``RESERVATION_TTL_SECONDS`` after it was made, so that capacity held by a
process that died comes back by itself. A stream can run longer than that. While it runs, a task
extends its reservation every third of the TTL (lua/extend_reservation.lua), so the stream is
settled with its real usage when it ends, instead of its settle finding the reservation gone.

    keeper = ReservationKeeper(manager, selection)
    keeper.start()
    try:
        ...
        with keeper.paused():        # the consumer has the event; waiting for it to ask again
            yield event
    finally:
        await keeper.stop()          # before the settle

The task ends when the stream ends or is cancelled (``stop``), when the reservation is no longer
held (settled or released), and when the consumer has not asked for the next event for a
whole TTL: a consumer that stopped reading without closing the stream does not hold capacity
forever; its reservation then expires and stays charged at its estimate. A store that cannot be
reached, or that does not know the reservation, is tried again at the next interval (with AOF
persistence the reservation survives a Redis restart).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator

from kernel.log import get_logger
from keys.manager import KeyManager, KeySelection

log = get_logger("router.keepalive")

#: Extensions per TTL: one lost (the store away for up to two thirds of the TTL) is harmless.
EXTENSIONS_PER_TTL = 3
#: Name prefix of the extension tasks (``asyncio.all_tasks()`` shows which streams hold one).
TASK_PREFIX = "keep-reservation:"


class ReservationKeeper:
    """Extends one reservation while its stream runs; see the module's docstring."""

    def __init__(self, manager: KeyManager, selection: KeySelection) -> None:
        self.manager = manager
        self.selection = selection
        self.ttl = float(manager.engine.reservation_ttl)
        self.interval = self.ttl / EXTENSIONS_PER_TTL
        self._lost = False
        self._paused_since: float | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            name = TASK_PREFIX + self.selection.reservation.reservation_id
            self._task = asyncio.create_task(self._run(), name=name)

    async def stop(self) -> None:
        """End the task (idempotent); waits until it has ended."""
        task = self._task
        if task is None or task.done():
            return
        task.cancel()
        await asyncio.wait({task})

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """The consumer holds an event: time until it asks for the next counts as idle."""
        self._paused_since = time.monotonic()
        try:
            yield
        finally:
            self._paused_since = None

    def _consumer_gone(self) -> bool:
        since = self._paused_since
        return since is not None and time.monotonic() - since >= self.ttl

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            if self._consumer_gone():
                log.warning(
                    "stream consumer stopped reading: its reservation is left to expire",
                    key=self.selection.masked_key,
                    model=self.selection.model,
                    idle_seconds=self.ttl,
                )
                return
            found = await self.manager.extend_reservation(self.selection)
            if found in ("settled", "released"):  # its call is over: nothing to keep
                return
            if found == "expired" and not self._lost:
                # gone from the store this process now reaches (a Redis that lost it, or a
                # local store while Redis is away): say so once, and keep trying, since the store
                # that holds it may answer again
                self._lost = True
                log.warning(
                    "a running stream's reservation was not found",
                    key=self.selection.masked_key,
                    model=self.selection.model,
                )
