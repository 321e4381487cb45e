"""Active expiry of the embedded store: keys with a TTL are removed when it passes, touched or not.

Redis removes expired keys lazily (when a command looks one up) and actively (a cycle sampling
keys with a TTL, ten times a second). Without the active half, keys written once with a TTL and
never read again (a limits call's answer, ``rl_call``; an unsettled reservation; a dashboard
session) would pile up for as long as the process runs.

Every TTL set (:meth:`Keyspace.set_expire`) pushes ``(deadline, key)`` onto a heap: one
``heappush``, the only cost on the command path. An entry is not removed when its key's TTL
changes (PEXPIRE again, PERSIST, SET without KEEPTTL, DEL, HDEL emptying a hash): when it comes
up, it counts only if the key's TTL is still the entry's deadline (lazy deletion), so a key
whose TTL was extended or removed is never removed early. The heap is rebuilt from the TTLs when
stale entries outnumber live ones (:func:`compact`), so it stays within twice the keys with a TTL.

The cycle runs where commands do (the store has no thread or timer of its own): after a script,
and every :data:`PLAIN_EVERY` other commands, when :data:`CYCLE_MS` of the store's clock have
passed since the last one. It removes at most :data:`BATCH` keys (through
:meth:`Keyspace.delete`, so Lua's tables and mirrors lose them too); when more are due, the next
command resumes it.
"""

from __future__ import annotations

from heapq import heapify, heappop
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kernel.embedded.keyspace import Keyspace

#: Milliseconds of the store's clock between two cycles (Redis: 100, ten a second).
CYCLE_MS = 100
#: At most this many keys removed by one cycle; the next command resumes a longer backlog.
BATCH = 200
#: Stale heap entries looked at by one cycle, at most (per key removed allowed).
LOOK_FACTOR = 4
#: Commands other than scripts run this many between two looks at the clock.
PLAIN_EVERY = 16
#: Stale entries tolerated past the live ones before the heap is rebuilt.
SLACK = 1024


def compact(expires: dict[bytes, int]) -> list[tuple[int, bytes]]:
    """A heap of the live TTLs only."""
    heap = [(at, key) for key, at in expires.items()]
    heapify(heap)
    return heap


def expire_cycle(ks: Keyspace, now: int) -> int:
    """Remove up to :data:`BATCH` keys whose TTL is at or before ``now``; how many went."""
    heap, expires = ks.deadlines, ks.expires
    removed = looked = 0
    limit = BATCH * LOOK_FACTOR
    while heap and heap[0][0] <= now and removed < BATCH and looked < limit:
        at, key = heappop(heap)
        looked += 1
        if expires.get(key) == at:  # else stale: the TTL changed after this entry was pushed
            ks.delete(key)
            removed += 1
    due = bool(heap) and heap[0][0] <= now
    ks.next_cycle_ms = now if due else now + CYCLE_MS
    return removed
