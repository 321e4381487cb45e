"""Budgets while the shared store is unreachable (degraded mode, kernel/failover.py).

The local store of degraded mode starts empty: without this, no budget would hold there. So each
process keeps the budgets it last read from the shared store, records and spend (read with the
budgets' time zones at each load and every BUDGET_ZONES_SECONDS: keys/pool.py), and the first time
it reserves on a fresh local store (a new degraded episode: ``Failover.transitions``) writes them
there, each limit set to what was left at that read, divided among the processes:

    local limit = max(0, limit - (spent + reserved at the last read)) // ROUTER_PROCESSES

so the processes together spend at most what was left. The local store then counts this
process's reservations and settles as the shared one would (reserve.lua refuses with
``budget_exceeded``). When the shared store is back, each call served meanwhile has its cost
charged there by its usage record's replay (lua/record_usage.lua), exactly once.

A process that never read the shared store (it started while Redis was unreachable) divides the
configured budgets it wrote to its local store at start (nothing spent known). A spend record of
an older period than the current one counts as nothing spent. A new episode within the holdover
after the previous one keeps its local store and what it counted: the limits are written again
from the last read, which may already include what the previous episode spent (stricter, never
looser). A reservation made on the local store before its budgets were written is released and
made again once they are (keys/selection.py), so no call escapes them.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace

from kernel.errors import ConfigError
from kernel.failover import Failover
from kernel.log import get_logger
from kernel.redis_keys import RedisKeys
from keys.budgets import utc_offset
from lua.usage_records import BudgetRecord, SpendRecord, period_of

log = get_logger("keys.budgets")

Snapshot = dict[str, tuple[BudgetRecord, SpendRecord]]


def left_now(budget: BudgetRecord, spend: SpendRecord, now: float) -> int:
    """What ``budget`` had left at unix time ``now`` given ``spend`` (an older period's: all)."""
    try:
        offset = utc_offset(budget.tz, now)
    except ConfigError:
        offset = 0  # the scripts count an unknown zone's periods in UTC too
    current = period_of(now, offset, budget.period)[0]
    used = spend.used if spend.period == current else 0
    return max(0, budget.limit_nanos - used)


def local_limits(snapshot: Snapshot, now: float, divisor: int) -> dict[str, BudgetRecord]:
    """Each budget of ``snapshot`` with its limit set to its share of what was left."""
    share = max(1, divisor)
    return {
        field: replace(budget, limit_nanos=left_now(budget, spend, now) // share)
        for field, (budget, spend) in snapshot.items()
    }


class LocalBudgets:
    """The budgets this process last read, and their writing to degraded mode's local store."""

    def __init__(self, names: RedisKeys) -> None:
        self.names = names
        #: The last read of the shared store's budgets (None: never read).
        self.snapshot: Snapshot | None = None
        #: The degraded episode (Failover.transitions) whose local store has the budgets.
        self._written_for = 0
        #: How many budgets that local store has.
        self._count = 0
        self._lock = asyncio.Lock()

    def keep(self, snapshot: Snapshot) -> None:
        """The budgets just read from the shared store."""
        self.snapshot = snapshot

    def ready(self, failover: Failover | None) -> bool:
        """The local store of the current episode has its budgets (or there is no episode)."""
        return failover is None or self._written_for == failover.transitions

    async def write(self, failover: Failover, now: float) -> bool:
        """Write the budgets to the current episode's local store unless done; answers whether
        that store has any (then a reservation made there before they were written must be
        made again)."""
        if self.ready(failover):
            return self._count > 0
        async with self._lock:
            if not self.ready(failover):
                episode = failover.transitions
                self._count = await self._write(failover, now)
                self._written_for = episode
            return self._count > 0

    async def _write(self, failover: Failover, now: float) -> int:
        local, key = failover.local, self.names.budgets
        snapshot = self.snapshot
        if snapshot is None:  # never read the shared store: its configured budgets, unspent
            raw: dict[str, str] = await local.call(lambda c: c.hgetall(key))
            snapshot = {}
            for field, value in raw.items():
                with contextlib.suppress(ValueError):  # a record no writer of ours made
                    snapshot[field] = (BudgetRecord.decode(value), SpendRecord())
        limits = local_limits(snapshot, now, failover.divisor)
        if limits:
            mapping = {field: record.encode() for field, record in limits.items()}
            await local.call(lambda c: c.hset(key, mapping=mapping))
            log.warning(
                "degraded mode: budgets enforced on the local store at this process's share of "
                "what was left at the last read",
                budgets=len(limits),
                divided_by=failover.divisor,
            )
        return len(limits)
