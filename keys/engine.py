"""The capacity engine: atomic select-and-reserve of RPM/TPM/RPD across processes (Lua in Redis).

Every call is one script run (EVALSHA), so any number of processes sharing one Redis never push a
quota group and model past its limits. The unit of limits is a *bucket*: a quota group and a model.
Keys are indexed per model and priority tier in sorted sets; a reservation looks at a bounded number
of candidates, so its cost does not grow with the pool (see lua/reserve.lua).

    engine = CapacityEngine(store)
    await engine.configure(keys)                        # APIKey list (idempotent, every process)
    r = await engine.reserve("gpt-4o", tokens=1200)     # Reservation, or AllKeysExhaustedError
    await engine.extend(r)                              # a long stream: held for another TTL
    await engine.settle(r, actual_tokens=830)           # refund 370 tokens, record success
    await engine.release(r)                             # the call never left: everything back

Budgets (lua/lib_usage.lua): ``reserve(..., budgets=[fields], cost_nanos=worst case)`` reserves
the cost on every budget that applies, atomically with the key (BudgetExceededError when one
would be passed); ``settle(..., cost_nanos=actual, usage=UsageArgs)`` settles them to the real
cost and writes the call's usage record in the same script run.

Time always comes from the store (``redis.call('TIME')``). Tests may pass a ``clock`` (a callable
returning unix seconds) that the scripts then use instead: the only way a client clock gets in.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kernel.errors import AllKeysExhaustedError, KeyUnavailability
from kernel.redis_keys import RedisKeys
from kernel.settings import STRATEGIES
from kernel.store import Store
from keys import admission
from keys.layout import SERVING_CACHE_MODELS, ModelLayout, PoolLayout
from keys.learned import divided_figures
from keys.outcomes import OutcomeKind
from keys.pool_health import PoolHealth
from keys.refusals import NO_KEYS, refusal
from keys.reserve_options import ReserveOptions
from lua import extend_reservation as lua_extend
from lua import release as lua_release
from lua import reserve as lua_reserve
from lua import settle as lua_settle
from lua.extend_reservation import Extended
from lua.records import tags_wanted
from lua.usage_records import UsageArgs

__all__ = [
    "SERVING_CACHE_MODELS",
    "STRATEGIES",
    "CapacityEngine",
    "Extended",
    "HealthPolicy",
    "ModelLayout",
    "PoolLayout",
    "Reservation",
    "SettleResult",
]


@dataclass(frozen=True)
class HealthPolicy:
    """How failures turn into cooldowns and open circuits (documents 001 and 003 defaults)."""

    cooldown_seconds: float = 60.0
    cooldown_factor: float = 2.0
    cooldown_max_seconds: float = 900.0
    breaker_threshold: int = 3
    breaker_timeout_seconds: float = 300.0
    #: A connection that never reached the provider cools the key this long, growing by
    #: ``cooldown_factor`` on repeats up to ``unreachable_max_seconds`` (and counts toward the breaker).
    unreachable_seconds: float = 5.0
    unreachable_max_seconds: float = 60.0


@dataclass(frozen=True)
class Reservation:
    """Capacity held on one key for one call; settle or release it exactly once (both idempotent)."""

    reservation_id: str
    key_id: str
    model: str
    tokens: int
    tier: int
    bucket: str
    reserved_at: float
    probe: bool = False
    duplicate: bool = False
    #: The index the key was chosen from (``model`` itself, or the pattern index of a name only
    #: a pattern binding serves: see keys.models.model_index); "" = ``model``.
    index: str = ""
    #: Made on the local store of degraded mode (kernel/failover.py), not the shared one.
    degraded: bool = False
    #: Budget fields whose alert share this reservation crossed (once per budget and period).
    alerts: tuple[str, ...] = ()
    #: The pool shard the key lives in (POOL_SHARDS > 1: keys/shards.py); 0 when not sharded.
    shard: int = 0
    #: Its budgets are held in their own slot (lua/budget_hold.lua): a sharded pool's call
    #: under a budget; settled or refunded with it.
    budget_hold: bool = False

    @property
    def index_name(self) -> str:
        return self.index or self.model


@dataclass(frozen=True)
class SettleResult:
    settled: bool
    key_id: str = ""
    tokens: int = 0
    state: str = ""
    until: float = 0.0
    note: str = ""
    #: Tokens the reservation still holds after this settle (>= actual: refunds are conservative).
    charged: float = 0.0
    #: The key's health state before this settle ("ok" when a cooldown had already expired).
    previous_state: str = ""
    #: The store's time of the settle: ``until - now`` is the pause, whatever the host's clock.
    now: float = 0.0
    #: Limits configured above what the provider just reported, newly (``rpm=120>60;...``).
    above: str = ""

    @property
    def changed(self) -> bool:
        return self.settled and self.state != self.previous_state


class CapacityEngine(PoolHealth):
    """Python side of the key-pool scripts for one store: reserve, settle, release and extend
    here; layouts and syncing in keys/layout.py, status reads in keys/usage.py, health actions in
    keys/pool_health.py (each a layer of this class)."""

    def __init__(
        self,
        store: Store,
        *,
        reservation_ttl: int = 600,
        probe_ttl: float = 60.0,
        policy: HealthPolicy | None = None,
        clock: Callable[[], float] | None = None,
        margin: float = 0.0,
        names: RedisKeys | None = None,
    ) -> None:
        super().__init__(store, clock=clock, names=names)
        #: Seconds past a rate limit's exact room a request is admitted (see lua/lib_pool.lua).
        self.margin = margin
        self.reservation_ttl = reservation_ttl
        self.probe_ttl = probe_ttl
        self.policy = policy or HealthPolicy()
        self._random = random.Random()

    # -- the hot path ----------------------------------------------------------------------------
    async def reserve(
        self, model: str, tokens: int, options: ReserveOptions | None = None, **given: Any
    ) -> Reservation:
        """Reserve 1 request and ``tokens`` tokens on a key of ``model``, as ``options`` say
        (keys/reserve_options.py; its fields may be given as keywords too): strategy, excluded
        keys, tags, margin, budgets and worst-case cost, completion tokens, the gateway's limits.

        Raises AllKeysExhaustedError (with the earliest retry time and why) when no key has room,
        RequestTooLargeError when no key could ever fit the request, BudgetExceededError when a
        budget would be passed, AdmissionRefusedError when the gateway's limits refuse (nothing
        is charged then).
        """
        o = ReserveOptions.of(options, given)
        if o.strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {o.strategy!r}; one of {', '.join(STRATEGIES)}")
        if tokens < 0:
            raise ValueError("tokens must be >= 0")
        index = self.index_of(model)
        layout = await self._layout_of(model, index)
        rid = o.reservation_id or os.urandom(16).hex()
        args = self._reserve_args(index, int(tokens), rid, o)
        name = self.names.reservation(rid)
        reply, local = await admission.reserve(self.store, layout.reserve, name, args, o.admission)
        if isinstance(reply, lua_reserve.NoKeys) and layout.tier_of:
            # The store lost the pool's records (restart without persistence, flush, degraded
            # mode's fresh local store): rebuild them.
            layout = await self._sync_index(index)
            reply, local = await lua_reserve.run_where(self.store, layout.reserve, name, args)
        if isinstance(reply, lua_reserve.Reserved):
            return _reservation(reply, rid, model, "" if index == model else index, local)
        raise refusal(model, int(tokens), reply)

    async def _layout_of(self, model: str, index: str) -> ModelLayout:
        layout = self._layouts.get(index)
        if layout is not None:
            return layout
        if not self._index_bindings(index):
            # nothing to index: no store record is made for a name nobody serves
            raise AllKeysExhaustedError(model, retry_at=None, now=await self.now(), reason=NO_KEYS)
        return await self._sync_index(index)

    def _reserve_args(
        self, index: str, tokens: int, rid: str, o: ReserveOptions
    ) -> lua_reserve.ReserveArgs:
        return lua_reserve.ReserveArgs(
            index,
            tokens,
            o.strategy,
            rid,
            self.reservation_ttl,
            self._now_arg(),
            self._offsets(),
            self._random.random(),
            o.exclude,
            tags_wanted(o.tags) if o.tags else "",
            self.probe_ttl,
            self.margin if o.margin is None else o.margin,
            o.budgets,
            o.cost_nanos,
            o.output,
        )

    async def hold_locally(
        self,
        reservation: Reservation,
        *,
        strategy: str = "capacity",
        margin: float | None = None,
    ) -> KeyUnavailability | None:
        """Degraded mode's holdover (kernel/failover.py): a reservation made on the shared store
        right after an outage must also fit this process's local limits, which alone know what
        it sent meanwhile. None when it does (it is charged there too, until its TTL); else why
        not, and when the key has local room again."""
        failover = self.store.failover
        layout = self._layouts.get(reservation.index_name)
        if failover is None or layout is None:
            return None
        others = [key_id for key_id in layout.tier_of if key_id != reservation.key_id]
        options = ReserveOptions(strategy, exclude=others, margin=margin)
        rid = reservation.reservation_id
        args = self._reserve_args(reservation.index_name, reservation.tokens, rid, options)
        name = self.names.reservation(reservation.reservation_id)
        reply = await lua_reserve.run(failover.local, layout.reserve, name, args)
        if not isinstance(reply, lua_reserve.NoRoom):  # no_keys: nothing counted locally
            return None
        return KeyUnavailability(
            reservation.key_id, f"local limit after degraded mode: {reply.reason}", reply.earliest
        )

    # size: one documented keyword per argument of the settle script, passed through in order
    async def settle(
        self,
        reservation: Reservation,
        actual_tokens: int | None = None,
        outcome: OutcomeKind = "success",
        *,
        retry_after: float | None = None,
        scope: str = "minute",
        error_class: str = "",
        provider_limits: str = "",
        hold: float = 0.0,
        provider_room: tuple[float | None, float | None] = (None, None),
        provider_tolerance: tuple[float, float] = (1.0, 1.0),
        cost_nanos: int | None = None,
        usage: UsageArgs | None = None,
        said: str = "",
        split: tuple[int | None, int | None] = (None, None),
    ) -> SettleResult:
        """Charge the actual tokens (refund or extra) and record the outcome; idempotent.

        Outcomes (keys/outcomes.py): ``unreachable`` gives everything back like ``release`` and
        cools the key down (counting toward the breaker); ``cancelled`` keeps the charge, leaves the
        key's health alone and frees a probe's slot.

        ``provider_limits``: the provider's latest rate-limit headers as JSON, for status. On a
        success, what they said of its own buckets: ``hold`` (seconds until another such call
        fits), ``provider_room`` (requests and tokens then; ``provider_tolerance``: what the
        reports may be off by). ``cost_nanos`` (None: the estimate), ``usage``: the budgets and
        usage record. ``said``: the limits the provider reported (keys/learned.py), adopted by
        every process; ``split``: the call's actual input and output tokens (None: not known).
        """
        args = lua_settle.SettleArgs(
            actual_tokens,
            outcome,
            self.policy,
            self._now_arg(),
            self._offsets(),
            retry_after,
            scope,
            error_class,
            provider_limits,
            hold,
            *provider_room,
            *provider_tolerance,
            reservation.probe,
            cost_nanos,
            usage,
            # degraded mode's local store: this process's share of what the provider said
            divided_figures(said, self.store.local_divisor) if reservation.degraded else said,
            *split,
        )
        keys = self._settle_keys(reservation, None if usage is None else usage.minute)
        reply = await lua_settle.run(self.store, keys, args)
        if isinstance(reply, lua_settle.Settled):
            return _settled(reply)
        return SettleResult(False, reservation.key_id, note=reply.state)

    def _settle_keys(
        self, reservation: Reservation, minute: int | None = None
    ) -> lua_settle.SettleKeys:
        n = self.names
        return lua_settle.SettleKeys(
            n.reservation(reservation.reservation_id),
            n.pool_config,
            n.pool_state,
            n.pool_windows,
            n.pool_health,
            n.pool_stats,
            n.budget_spend,
            n.usage_stream,
            self.rollup_key() if minute is None else n.usage_rollup(minute),
            self._ready_sets(reservation.key_id, (reservation.index_name, reservation.tier)),
        )

    async def release(self, reservation: Reservation) -> bool:
        """Give back a reservation whose call never reached the provider; idempotent."""
        n = self.names
        keys = lua_release.ReleaseKeys(
            n.reservation(reservation.reservation_id),
            n.pool_config,
            n.pool_state,
            n.pool_windows,
            n.pool_stats,
            n.ready(reservation.index_name, reservation.tier),
            n.budget_spend,
        )
        args = lua_release.ReleaseArgs(self._now_arg(), self._offsets())
        return (await lua_release.run(self.store, keys, args)).released

    async def extend(self, reservation: Reservation, ttl: int | None = None) -> Extended:
        """Keep a reservation held for another ``ttl`` seconds (default: the engine's
        ``reservation_ttl``) while its call runs; idempotent. Only a reservation still held is
        extended: one already settled or released, or expired, is left as it is."""
        seconds = self.reservation_ttl if ttl is None else ttl
        if seconds < 1:
            raise ValueError("ttl must be >= 1 second")
        keys = lua_extend.ExtendKeys(self.names.reservation(reservation.reservation_id))
        args = lua_extend.ExtendArgs(int(seconds))
        return (await lua_extend.run(self.store, keys, args)).found


def _reservation(
    reply: lua_reserve.Reserved, rid: str, model: str, index: str, degraded: bool
) -> Reservation:
    return Reservation(
        reservation_id=rid,
        key_id=reply.key_id,
        model=model,
        tokens=reply.tokens,
        tier=reply.tier,
        bucket=reply.bucket,
        reserved_at=reply.at,
        probe=reply.kind == "probe",
        duplicate=reply.kind == "dup",
        index=index,
        degraded=degraded,
        alerts=reply.alerts,
    )


def _settled(reply: lua_settle.Settled) -> SettleResult:
    return SettleResult(
        True,
        reply.key_id,
        reply.tokens,
        reply.state,
        reply.until,
        charged=reply.charged,
        previous_state=reply.previous_state,
        now=reply.now,
        above=reply.above,
    )
