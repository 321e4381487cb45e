"""A key pool split into shards (``POOL_SHARDS`` > 1) so Redis Cluster spreads it over its masters.

Each quota group belongs to one shard (kernel.redis_keys.shard_of: a stable hash of the group), so
a bucket's limits live in one slot and stay exact. Each shard is a whole pool of its own under its
own hash tag (``{<prefix>:s<n>}``): a :class:`~keys.engine.CapacityEngine` over its keys, with
its records, indexes, health, reservations and usage records. :class:`ShardedEngine` is the
engine the rest of the product sees: it holds every key (for names, patterns and status), sends
reserve to one shard that serves the model and, when that shard has no room, to at most
``fallbacks`` others, answering no room with the earliest retry time over the shards it asked.
Settle, release, extend and health actions go to the reservation's (or the key's) shard.

Choosing the shard: round robin over the shards that serve the model (each process from a random
start), those that answered no room lately (until the retry time they gave) last. Never a round
trip of its own. Within a shard the strategy (capacity, round robin, ...) chooses the key, so
round robin and least used are exact per shard, not over the whole pool.

Budgets live in one slot (``{<prefix>}``), which no shard's reserve script can reach: a call
under a budget first holds its worst-case cost there (lua/budget_hold.lua, the same checks and
records as reserve's with one shard), then reserves a key on a shard (given back when no shard
has room), and its settle or release settles the hold: two more round trips for such a call,
none for a call without a budget.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import Any

from kernel.errors import (
    AllKeysExhaustedError,
    ConfigError,
    KeyUnavailability,
    RequestTooLargeError,
)
from kernel.redis_keys import shard_of
from kernel.store import Store
from keys.engine import CapacityEngine, HealthPolicy, Reservation, SettleResult
from keys.layout import ModelLayout, _check_groups
from keys.models import APIKey
from keys.outcomes import OutcomeKind
from keys.refusals import NO_KEYS, refusal
from keys.reserve_options import ReserveOptions
from lua import budget_hold, set_health
from lua.extend_reservation import Extended

#: How many other shards a reservation asks after the first one had no room (issue 18: one or two).
SHARD_FALLBACKS = 2


class ShardedEngine(CapacityEngine):
    """The capacity engine of a sharded pool: the same interface as CapacityEngine."""

    def __init__(
        self,
        store: Store,
        *,
        shards: int,
        fallbacks: int = SHARD_FALLBACKS,
        reservation_ttl: int = 600,
        probe_ttl: float = 60.0,
        policy: HealthPolicy | None = None,
        clock: Callable[[], float] | None = None,
        margin: float = 0.0,
    ) -> None:
        super().__init__(
            store,
            reservation_ttl=reservation_ttl,
            probe_ttl=probe_ttl,
            policy=policy,
            clock=clock,
            margin=margin,
        )
        self.fallbacks = fallbacks
        self.shards = [
            CapacityEngine(
                store,
                reservation_ttl=reservation_ttl,
                probe_ttl=probe_ttl,
                policy=policy,
                clock=clock,
                margin=margin,
                names=store.keys.shard_view(i),
            )
            for i in range(shards)
        ]
        #: (index, shard) -> the time (_hint_now) until which that shard said it had no room (a hint
        #: for the order shards are asked in; bounded by the configuration's indexes).
        self._busy: dict[tuple[str, int], float] = {}
        #: index -> this process's round-robin turn over the shards that serve it.
        self._turns: dict[str, int] = {}

    # -- which shard ---------------------------------------------------------------------------
    def shard_of_group(self, group: str) -> int:
        return shard_of(group, len(self.shards))

    def shard_of_key(self, key_id: str) -> int:
        """The key's shard (by its quota group; a key no longer configured: by its id, the
        group of a key without one)."""
        key = self._keys.get(key_id)
        return self.shard_of_group(key.group if key is not None else key_id)

    def _split(self, keys: Iterable[APIKey]) -> list[list[APIKey]]:
        parts: list[list[APIKey]] = [[] for _ in self.shards]
        for key in keys:
            parts[self.shard_of_group(key.group)].append(key)
        return parts

    def shards_serving(self, model: str) -> list[int]:
        """The shards with a key that serves ``model``."""
        index = self.index_of(model)
        return [i for i, shard in enumerate(self.shards) if shard._index_bindings(index)]

    def _order(self, index: str, candidates: list[int]) -> list[int]:
        """The shards to ask, in order: round robin over ``candidates`` (from a random start per
        process and index), those that answered no room lately last."""
        turn = self._turns.get(index)
        if turn is None:
            turn = self._random.randrange(len(candidates))
        self._turns[index] = turn + 1
        start = turn % len(candidates)
        rotated = candidates[start:] + candidates[:start]
        now = self._hint_now()
        return sorted(rotated, key=lambda i: self._busy.get((index, i), 0.0) > now)

    def _hint_now(self) -> float:
        """The clock of the busy hints: the injected clock when there is one, else monotonic."""
        return float(self._clock()) if self._clock is not None else time.monotonic()

    # -- configuration -------------------------------------------------------------------------
    async def configure(self, keys: Iterable[APIKey]) -> None:
        new = {key.key_id: key for key in keys}
        _check_groups(new.values())
        self._keys = new
        self._forget_serving()
        self._busy.clear()
        for shard, part in zip(self.shards, self._split(new.values()), strict=True):
            await shard.configure(part)

    async def upsert_keys(self, keys: Iterable[APIKey]) -> None:
        changed = {key.key_id: key for key in keys}
        _check_groups({**self._keys, **changed}.values())
        for key in changed.values():
            old = self._keys.get(key.key_id)
            if old is not None and self.shard_of_group(old.group) != self.shard_of_group(key.group):
                await self.shards[self.shard_of_group(old.group)].remove_keys([key.key_id])
        self._keys = {**self._keys, **changed}
        self._forget_serving()
        for shard, part in zip(self.shards, self._split(changed.values()), strict=True):
            if part:
                await shard.upsert_keys(part)

    async def remove_keys(self, key_ids: Iterable[str]) -> None:
        gone = [key_id for key_id in key_ids if key_id in self._keys]
        by_shard: dict[int, list[str]] = {}
        for key_id in gone:
            by_shard.setdefault(self.shard_of_key(key_id), []).append(key_id)
        for key_id in gone:
            del self._keys[key_id]
        self._forget_serving()
        for i, ids in sorted(by_shard.items()):
            await self.shards[i].remove_keys(ids)

    async def sync_model(self, model: str) -> ModelLayout:
        layouts = [await shard.sync_model(model) for shard in self.shards]
        return next((layout for layout in layouts if layout.tier_of), layouts[0])

    def use_zones(self, zones: Iterable[str]) -> None:
        zones = frozenset(zones)
        super().use_zones(zones)
        for shard in self.shards:
            shard.use_zones(zones)

    # -- the hot path --------------------------------------------------------------------------
    async def reserve(
        self, model: str, tokens: int, options: ReserveOptions | None = None, **given: Any
    ) -> Reservation:
        """CapacityEngine.reserve over the shards that serve ``model`` (see the module). The
        gateway's limits (``admission``) are charged in a round trip of their own first: no
        shard's script can reach their slot."""
        o = ReserveOptions.of(options, given)
        index = self.index_of(model)
        candidates = self.shards_serving(model)
        if not candidates:
            raise AllKeysExhaustedError(model, retry_at=None, now=await self.now(), reason=NO_KEYS)
        if o.admission is not None:
            await o.admission.charge(self.store)
        rid = o.reservation_id or os.urandom(16).hex()
        alerts = await self._hold_budgets(model, rid, o.budgets, o.cost_nanos)
        margin = self.margin if o.margin is None else o.margin
        o = replace(o, reservation_id=rid, margin=margin, budgets=(), cost_nanos=None)
        try:
            reservation = await self._reserve_on_shards(model, tokens, index, candidates, o)
        except BaseException:
            if alerts is not None:  # no key reserved: the budgets get their hold back
                await self._settle_budgets(rid, None, refund=True)
            raise
        return replace(reservation, alerts=alerts or (), budget_hold=alerts is not None)

    async def _reserve_on_shards(
        self, model: str, tokens: int, index: str, candidates: list[int], options: ReserveOptions
    ) -> Reservation:
        """The first shard asked with room (at most 1 + ``fallbacks`` asked), or the best
        refusal over those asked."""
        refusals: list[AllKeysExhaustedError | RequestTooLargeError] = []
        for i in self._order(index, candidates)[: 1 + self.fallbacks]:
            try:
                reservation = await self.shards[i].reserve(model, tokens, options)
            except AllKeysExhaustedError as exc:
                self._note_busy(index, i, exc)
                refusals.append(exc)
                continue
            except RequestTooLargeError as exc:
                refusals.append(exc)
                continue
            self._busy.pop((index, i), None)
            return replace(reservation, shard=i)
        raise _best_refusal(model, refusals)

    def _note_busy(self, index: str, shard: int, exc: AllKeysExhaustedError) -> None:
        wait = exc.retry_after if exc.retry_after is not None else 1.0
        self._busy[(index, shard)] = self._hint_now() + max(0.0, wait)

    async def _hold_budgets(
        self, model: str, rid: str, budgets: Sequence[str], cost_nanos: int | None
    ) -> tuple[str, ...] | None:
        """Hold the call's budgets in their slot; None when the call counts under none."""
        if not budgets:
            return None
        reply = await budget_hold.hold(
            self.store,
            self._hold_keys(rid),
            fields=budgets,
            cost_nanos=cost_nanos,
            ttl=self.reservation_ttl,
            now=self._now_arg(),
            offsets=self._offsets(),
        )
        if isinstance(reply, budget_hold.Held):
            return reply.alerts
        raise refusal(model, 0, reply)

    def _hold_keys(self, rid: str) -> budget_hold.HoldKeys:
        n = self.store.keys
        return budget_hold.HoldKeys(n.budgets, n.budget_spend, n.budget_hold(rid))

    async def _settle_budgets(self, rid: str, cost_nanos: int | None, *, refund: bool) -> None:
        await budget_hold.settle(
            self.store,
            self._hold_keys(rid),
            cost_nanos=cost_nanos,
            refund=refund,
            now=self._now_arg(),
            offsets=self._offsets(),
        )

    async def hold_locally(
        self, reservation: Reservation, *, strategy: str = "capacity", margin: float | None = None
    ) -> KeyUnavailability | None:
        shard = self.shards[reservation.shard]
        return await shard.hold_locally(reservation, strategy=strategy, margin=margin)

    async def settle(
        self,
        reservation: Reservation,
        actual_tokens: int | None = None,
        outcome: OutcomeKind = "success",
        **options: Any,
    ) -> SettleResult:
        """CapacityEngine.settle on the reservation's shard, then its budgets' hold."""
        result = await self.shards[reservation.shard].settle(
            reservation, actual_tokens, outcome, **options
        )
        if reservation.budget_hold:
            refund = outcome == "unreachable"
            await self._settle_budgets(
                reservation.reservation_id, options.get("cost_nanos"), refund=refund
            )
        return result

    async def release(self, reservation: Reservation) -> bool:
        released = await self.shards[reservation.shard].release(reservation)
        if reservation.budget_hold:
            await self._settle_budgets(reservation.reservation_id, None, refund=True)
        return released

    async def extend(self, reservation: Reservation, ttl: int | None = None) -> Extended:
        found = await self.shards[reservation.shard].extend(reservation, ttl)
        if reservation.budget_hold and found:
            seconds = int(self.reservation_ttl if ttl is None else ttl)
            hold = self.store.keys.budget_hold(reservation.reservation_id)
            await self.store.call(lambda c: c.expire(hold, seconds))
        return found

    # -- health and status: the key's shard ------------------------------------------------------
    async def _set_health(
        self, key_id: str, action: set_health.Action, seconds: float = 0, reason: str = ""
    ) -> dict[str, Any]:
        self._busy.clear()  # a key's health changed: its shard may have room again
        return await self.shards[self.shard_of_key(key_id)]._set_health(
            key_id, action, seconds, reason
        )

    async def enable(self, key_id: str) -> dict[str, Any]:
        self._busy.clear()
        return await self.shards[self.shard_of_key(key_id)].enable(key_id)

    async def health(self, key_id: str) -> dict[str, Any]:
        return await self.shards[self.shard_of_key(key_id)].health(key_id)

    async def bucket_usage(
        self, bucket: str, key: APIKey, now: float | None = None
    ) -> dict[str, Any]:
        return await self.shards[self.shard_of_group(key.group)].bucket_usage(bucket, key, now)

    async def snapshot(self, key_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        by_shard: dict[int, list[str]] = {}
        for key_id in key_ids:
            by_shard.setdefault(self.shard_of_key(key_id), []).append(key_id)
        parts: dict[str, dict[str, Any]] = {}
        for i, ids in sorted(by_shard.items()):
            parts.update(await self.shards[i].snapshot(ids))
        return {key_id: parts[key_id] for key_id in key_ids if key_id in parts}


def _best_refusal(
    model: str, refusals: list[AllKeysExhaustedError | RequestTooLargeError]
) -> Exception:
    """No shard asked had room: the earliest retry time over them (keys' reasons merged); too
    large only when every shard asked said so."""
    exhausted = [r for r in refusals if isinstance(r, AllKeysExhaustedError)]
    if not exhausted:
        return max(
            refusals, key=lambda r: r.max_tokens if isinstance(r, RequestTooLargeError) else 0
        )
    timed = [r for r in exhausted if r.retry_at is not None]
    best = min(timed, key=lambda r: r.retry_at or 0.0) if timed else exhausted[0]
    notes = [note for r in exhausted for note in r.keys][:10]
    return AllKeysExhaustedError(
        model,
        retry_at=best.retry_at,
        now=max(r.now for r in exhausted),
        reason=best.reason,
        keys=notes,
        upstream=best.upstream,
    )


async def check_pool_shards(store: Store, shards: int) -> None:
    """Refuse a POOL_SHARDS other than the pool's in the store: processes that split one pool
    differently would keep a key's limits in two places and together exceed them. The first
    process of a sharded pool records its value; a pool in one slot records nothing."""
    name = store.keys.pool_shards
    if shards > 1:
        await store.call(lambda c: c.set(name, shards, nx=True))
    raw = await store.call(lambda c: c.get(name))
    stored = int(raw) if raw else 1
    if stored != shards:
        raise ConfigError(
            f"POOL_SHARDS is {shards} but the pool in this Redis (prefix "
            f"{store.keys.prefix!r}) is split into {stored}: every process sharing a pool must "
            f"use the same value (to change it, stop them all and delete {name})",
            source="environment",
            field="POOL_SHARDS",
        )


def create_engine(store: Store, shards: int, **options: Any) -> CapacityEngine:
    """The pool's engine: one slot (CapacityEngine, today's keys) or ``shards`` of them."""
    if shards <= 1:
        return CapacityEngine(store, **options)
    return ShardedEngine(store, shards=shards, **options)
