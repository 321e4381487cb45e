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

Time always comes from the store (``redis.call('TIME')``). Tests may pass a ``clock`` (a callable
returning unix seconds) that the scripts then use instead: the only way a client clock gets in.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, cast
from zoneinfo import ZoneInfo

import lua
from kernel.errors import (
    AllKeysExhaustedError,
    ConfigError,
    KeyUnavailability,
    RequestTooLargeError,
)
from kernel.lru import LRU
from kernel.redis_keys import RedisKeys
from kernel.settings import STRATEGIES
from kernel.store import Store
from keys.models import (
    APIKey,
    ModelBinding,
    index_bindings,
    index_label,
    is_pattern_index,
    model_index,
)
from keys.outcomes import OutcomeKind
from keys.records import decode_text, tags_record, tags_wanted

#: What extending a reservation found: still held (now for another TTL), already settled or
#: released (left as it is), or gone (expired, or the store lost it).
Extended = Literal["extended", "settled", "released", "expired"]

#: Position of the reservation's own key among the reserve script's KEYS.
RESERVATION_KEY = 6
#: Requested names whose index and serving keys are remembered at once (least recently used
#: first out): names are client input, so these caches are bounded (see kernel/lru.py).
SERVING_CACHE_MODELS = 1024

_RESERVE = lua.load("reserve")
_SETTLE = lua.load("settle")
_RELEASE = lua.load("release")
_EXTEND = lua.load("extend_reservation")
_SET_HEALTH = lua.load("set_health")
_SYNC = lua.load("sync_model")


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

    @property
    def changed(self) -> bool:
        return self.settled and self.state != self.previous_state


@dataclass
class _ModelLayout:
    """Which keys serve a model, at which tier, as last synced by this process."""

    tiers: list[int]
    tier_of: dict[str, int]
    #: key id -> its bucket (``<group>|<model>``, or ``<group>|<pattern>`` for a pattern binding)
    buckets: dict[str, str] = field(default_factory=dict)
    #: The reserve script's KEYS except the reservation's own, and its tiers argument: built once
    #: per sync instead of on every call.
    reserve_keys: list[str] = field(default_factory=list)
    tiers_arg: str = ""


@dataclass
class _ZoneCache:
    offsets: str = ""
    computed_at: float = -1.0


def _divided(limit: int | None, divisor: int) -> int:
    """A limit's share of one of ``divisor`` processes: rounded down, at least 1 when set."""
    return max(1, limit // divisor) if limit else 0


def _limits_record(key: APIKey, divisor: int = 1) -> str:
    """The bucket's limits; ``divisor`` > 1 on degraded mode's local store (ROUTER_PROCESSES)."""
    values = [
        _divided(key.rpm, divisor),
        _divided(key.tpm, divisor),
        _divided(key.rpd, divisor),
        _divided(key.rpm_burst or key.rpm, divisor),
        _divided(key.tpm_burst or key.tpm, divisor),
        1 if key.strict else 0,
        key.reset_tz,
    ]
    return "\t".join(str(v) for v in values)


def _weight_record(binding: ModelBinding) -> str:
    """``w:<key>|<index>``: the weight, and for a pattern binding the pattern its bucket is under."""
    weight = repr(float(binding.weight))
    return f"{weight}\t{binding.model}" if binding.is_pattern else weight


def _tags_record(key: APIKey) -> str:
    return tags_record(key.tags)


_NO_KEYS = "no active key serves this model"


def _f(value: str) -> float:
    return float("inf") if value == "inf" else float(value)


class CapacityEngine:
    """Python side of the key-pool scripts for one store."""

    def __init__(
        self,
        store: Store,
        *,
        reservation_ttl: int = 600,
        probe_ttl: float = 60.0,
        policy: HealthPolicy | None = None,
        clock: Callable[[], float] | None = None,
        margin: float = 0.0,
    ) -> None:
        self.store = store
        #: Seconds past a rate limit's exact room a request is admitted (see lua/lib_pool.lua).
        self.margin = margin
        self.names: RedisKeys = store.keys
        self.reservation_ttl = reservation_ttl
        self.probe_ttl = probe_ttl
        self.policy = policy or HealthPolicy()
        self._clock = clock
        self._keys: dict[str, APIKey] = {}
        #: serving(model) and index_of(model) per requested name, rebuilt after every change of the
        #: key list: the request path asks for them on every call and must not walk the pool each
        #: time. Keyed by client input, so bounded; layouts are per index (bounded by the config).
        self._serving: LRU[str, list[tuple[APIKey, int, float]]] = LRU(SERVING_CACHE_MODELS)
        self._index: LRU[str, str] = LRU(SERVING_CACHE_MODELS)
        self._bindings: LRU[str, list[tuple[APIKey, ModelBinding]]] = LRU(SERVING_CACHE_MODELS)
        self._layouts: dict[str, _ModelLayout] = {}
        self._zones = _ZoneCache()
        self._random = random.Random()

    # -- configuration ---------------------------------------------------------------------------
    @property
    def keys(self) -> dict[str, APIKey]:
        return dict(self._keys)

    def key(self, key_id: str) -> APIKey | None:
        """One configured key (no copy of the pool, unlike ``keys``)."""
        return self._keys.get(key_id)

    async def configure(self, keys: Iterable[APIKey]) -> None:
        """Adopt a key list: check quota groups, then sync every model already indexed or named.

        Models reached only through patterns (``*``, ``gpt-4o*``) are synced on first use, under
        their pattern index. An index no key serves any more is removed from the store.
        """
        new = {key.key_id: key for key in keys}
        _check_groups(new.values())
        self._keys = new
        self._forget_serving()
        models = {b.model for key in new.values() for b in key.bindings if not b.is_pattern}
        models.update(self._layouts)
        models.update(await self.store.call(lambda c: c.smembers(self.names.pool_models)))
        self._layouts = {}
        for index in sorted(models):
            await self._sync_index(index)

    def _forget_serving(self) -> None:
        self._serving.clear()
        self._index.clear()
        self._bindings.clear()

    async def upsert_keys(self, keys: Iterable[APIKey]) -> None:
        """Add or change keys; only the models they serve (or served) are re-synced."""
        changed = {key.key_id: key for key in keys}
        merged = {**self._keys, **changed}
        _check_groups(merged.values())
        touched = self._models_of(changed, before=self._keys)
        self._keys = merged
        self._forget_serving()
        touched |= self._models_of(changed)
        for model in sorted(touched):
            await self._sync_index(model)

    async def remove_keys(self, key_ids: Iterable[str]) -> None:
        """Remove keys: no new reservation lands on them; reservations in flight still settle."""
        gone = {key_id: self._keys[key_id] for key_id in key_ids if key_id in self._keys}
        touched = self._models_of(gone)
        for key_id in gone:
            del self._keys[key_id]
        self._forget_serving()
        for model in sorted(touched):
            await self._sync_index(model)
        for key_id, key in gone.items():
            # other processes may still index it until they reload: mark the record inactive
            field, record = f"k:{key_id}", f"{key.group}\t0\t{_tags_record(key)}"
            await self.store.call(lambda c, f=field, r=record: c.hset(self.names.pool_config, f, r))

    def _models_of(
        self, keys: dict[str, APIKey], before: dict[str, APIKey] | None = None
    ) -> set[str]:
        """Indexes ``keys`` are (or, with ``before``, were) part of."""
        source = before if before is not None else keys
        models: set[str] = set()
        for key_id in keys:
            key = source.get(key_id)
            if key is None:
                continue
            models.update(b.model for b in key.bindings if not b.is_pattern)
            models.update(
                m
                for m in self._layouts
                if any(k.key_id == key_id for k, _ in self._index_bindings(m))
            )
        models.update(
            m for m, layout in self._layouts.items() if any(k in layout.tier_of for k in keys)
        )
        return models

    def serving(self, model: str) -> list[tuple[APIKey, int, float]]:
        """(key, tier, weight) of every configured key that serves ``model``, in config order.

        Computed once per model and key list (the answer is shared: do not modify it).
        """
        cached = self._serving.get(model)
        if cached is None:
            bindings = self._index_bindings(self.index_of(model))
            cached = [(key, b.priority, b.weight) for key, b in bindings]
            self._serving.put(model, cached)
        return cached

    def index_of(self, model: str) -> str:
        """The index ``model`` is served from: itself, or its pattern index (model_index)."""
        cached = self._index.get(model)
        if cached is None:
            cached = model_index(self._keys.values(), model)
            self._index.put(model, cached)
        return cached

    def model_label(self, model: str) -> str:
        """A bounded name for metrics: a model some key names, else the patterns that serve it,
        else ``other``."""
        index = self.index_of(model)
        if is_pattern_index(index):
            return index_label(index)
        return model if self._index_bindings(index) else "other"

    def _index_bindings(self, index: str) -> list[tuple[APIKey, ModelBinding]]:
        cached = self._bindings.get(index)
        if cached is None:
            cached = index_bindings(self._keys.values(), index)
            self._bindings.put(index, cached)
        return cached

    async def sync_model(self, model: str) -> _ModelLayout:
        """Write the records and indexes ``model`` is served from (idempotent; usage untouched)."""
        return await self._sync_index(self.index_of(model))

    async def _sync_index(self, model: str) -> _ModelLayout:
        """Write the records and sets of one index; one no key serves is removed from the store."""
        bindings = self._index_bindings(model)
        serving = [(key, b.priority, b.weight) for key, b in bindings]
        tiers = sorted({tier for _, tier, _ in serving})
        previous = await self.store.call(lambda c: c.hget(self.names.pool_config, f"m:{model}"))
        old_tiers = [int(t) for t in previous.split("\t")[1].split(",") if t] if previous else []
        all_tiers = sorted(set(tiers) | set(old_tiers))
        keys = [
            self.names.pool_config,
            self.names.pool_health,
            self.names.pool_models,
            self.names.pool_state,
        ]
        for tier in all_tiers:
            keys += [
                self.names.ready(model, tier),
                self.names.order(model, tier),
                self.names.share(model, tier),
            ]
        args: list[Any] = [
            model,
            _max_burst(serving, 1),
            ",".join(map(str, tiers)),
            ",".join(map(str, all_tiers)),
            len(serving),
        ]
        for key, binding in bindings:
            args += [
                key.key_id,
                binding.priority,
                key.group,
                _weight_record(binding),
                _tags_record(key),
                1 if key.active else 0,
            ]
        local_args = None
        if self.store.failover is not None:  # degraded mode's local store: divided limits
            divisor = self.store.local_divisor
            local_args = [*args, *_bucket_args(bindings, divisor), self._now_arg()]
            local_args[1] = _max_burst(serving, divisor)
        args += [*_bucket_args(bindings, 1), self._now_arg()]
        await self.store.run(_SYNC, keys, args, local_args=local_args)
        layout = _ModelLayout(
            tiers=tiers,
            tier_of={key.key_id: tier for key, tier, _ in serving},
            buckets={key.key_id: f"{key.group}|{b.model}" for key, b in bindings},
            reserve_keys=self._reserve_keys(model, tiers),
            tiers_arg=",".join(map(str, tiers)),
        )
        if bindings:
            self._layouts[model] = layout
        else:
            self._layouts.pop(model, None)
        return layout

    # -- time ------------------------------------------------------------------------------------
    def _now_arg(self) -> str:
        return "" if self._clock is None else repr(float(self._clock()))

    def _offsets(self) -> str:
        """Seconds east of UTC of every day-reset calendar in use, recomputed once a minute."""
        wall = time.time() if self._clock is None else self._clock()
        if abs(wall - self._zones.computed_at) < 60 and self._zones.offsets:
            return self._zones.offsets
        zones = {key.reset_tz for key in self._keys.values()} | {"UTC"}
        moment = datetime.fromtimestamp(wall, tz=ZoneInfo("UTC"))
        parts = []
        for name in sorted(zones):
            offset = moment.astimezone(ZoneInfo(name)).utcoffset()
            parts.append(f"{name}={int(offset.total_seconds()) if offset else 0}")
        self._zones = _ZoneCache(";".join(parts), wall)
        return self._zones.offsets

    # -- the hot path ----------------------------------------------------------------------------
    async def reserve(
        self,
        model: str,
        tokens: int,
        *,
        strategy: str = "capacity",
        reservation_id: str | None = None,
        exclude: Sequence[str] = (),
        tags: dict[str, str] | None = None,
        margin: float | None = None,
    ) -> Reservation:
        """Reserve 1 request and ``tokens`` tokens on a key of ``model``.

        ``margin`` (default: the engine's): seconds a limit-bound request waits past the instant
        its limit has room (lua/lib_pool.lua, GCRA_MARGIN).

        Raises AllKeysExhaustedError (with the earliest retry time and why) when no key has room,
        RequestTooLargeError when no key could ever fit the request.
        """
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {strategy!r}; one of {', '.join(STRATEGIES)}")
        if tokens < 0:
            raise ValueError("tokens must be >= 0")
        index = self.index_of(model)
        layout = self._layouts.get(index)
        if layout is None:
            if not self._index_bindings(index):
                # nothing to index: no store record is made for a name nobody serves
                raise AllKeysExhaustedError(
                    model, retry_at=None, now=await self.now(), reason=_NO_KEYS
                )
            layout = await self._sync_index(index)
        rid = reservation_id or os.urandom(16).hex()
        args = [
            index,
            int(tokens),
            strategy,
            rid,
            self.reservation_ttl,
            self._now_arg(),
            self._offsets(),
            repr(self._random.random()),
            ",".join(exclude),
            tags_wanted(tags) if tags else "",
            layout.tiers_arg,
            self.probe_ttl,
            self.margin if margin is None else margin,
        ]
        keys = layout.reserve_keys.copy()
        keys[RESERVATION_KEY] = self.names.reservation(rid)
        reply, local = await self.store.run_where(_RESERVE, keys, args)
        if reply[0] == "no_keys" and layout.tier_of:
            # The store lost the pool's records (restart without persistence, flush, degraded
            # mode's fresh local store): rebuild them.
            layout = await self._sync_index(index)
            args[10] = layout.tiers_arg
            keys = layout.reserve_keys.copy()
            keys[RESERVATION_KEY] = self.names.reservation(rid)
            reply, local = await self.store.run_where(_RESERVE, keys, args)
        status = reply[0]
        if status == "ok":
            return Reservation(
                reservation_id=rid,
                key_id=reply[1],
                model=model,
                tokens=int(reply[2]),
                tier=int(reply[4]),
                bucket=reply[6],
                reserved_at=float(reply[3]),
                probe=reply[5] == "probe",
                duplicate=reply[5] == "dup",
                index="" if index == model else index,
                degraded=local,
            )
        if status == "too_large":
            raise RequestTooLargeError(model, int(tokens), int(reply[2]))
        now = float(reply[1]) if status == "no_keys" else float(reply[3])
        if status == "no_keys":
            raise AllKeysExhaustedError(model, retry_at=None, now=now, reason=_NO_KEYS)
        notes = []
        for entry in reply[4:]:
            key_id, why, until = entry.split("|")
            notes.append(
                KeyUnavailability(
                    key_id, decode_text(why), None if until == "inf" else float(until)
                )
            )
        retry_at = _f(reply[1])
        raise AllKeysExhaustedError(
            model,
            retry_at=None if retry_at == float("inf") else retry_at,
            now=now,
            reason=reply[2],
            keys=notes,
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
        keys = layout.reserve_keys.copy()
        keys[RESERVATION_KEY] = self.names.reservation(reservation.reservation_id)
        args = [
            reservation.index_name,
            reservation.tokens,
            strategy,
            reservation.reservation_id,
            self.reservation_ttl,
            self._now_arg(),
            self._offsets(),
            repr(self._random.random()),
            ",".join(others),
            "",
            layout.tiers_arg,
            self.probe_ttl,
            self.margin if margin is None else margin,
        ]
        reply = await failover.local.run(_RESERVE, keys, args)
        if reply[0] in ("ok", "no_keys", "too_large"):  # no_keys: nothing counted locally
            return None
        retry_at = _f(reply[1])
        return KeyUnavailability(
            reservation.key_id,
            f"local limit after degraded mode: {reply[2]}",
            None if retry_at == float("inf") else retry_at,
        )

    def _reserve_keys(self, model: str, tiers: list[int]) -> list[str]:
        """The reserve script's KEYS (lua/reserve.lua), the reservation's own left blank."""
        n = self.names
        keys = [n.pool_config, n.pool_state, n.pool_windows, n.pool_health, n.pool_stats]
        keys += [n.pool_cursor, ""]
        for tier in tiers:
            keys += [n.ready(model, tier), n.order(model, tier), n.share(model, tier)]
        return keys

    def _ready_sets(self, key_id: str, first: tuple[str, int] | None = None) -> list[str]:
        """Ready sets the key is in (as this process knows them); ``first`` goes first."""
        sets = []
        if first is not None:
            sets.append(self.names.ready(*first))
        for model, layout in self._layouts.items():
            tier = layout.tier_of.get(key_id)
            if tier is not None and (model, tier) != first:
                sets.append(self.names.ready(model, tier))
        return sets

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
    ) -> SettleResult:
        """Charge the actual tokens (refund or extra) and record the outcome; idempotent.

        Outcomes (keys/outcomes.py): ``unreachable`` gives everything back like ``release`` and
        cools the key down (counting toward the breaker); ``cancelled`` keeps the charge, leaves the
        key's health alone and frees a probe's slot.

        ``provider_limits``: the provider's latest rate-limit headers as JSON, kept for status.
        On a success, what those headers said of the provider's own buckets: ``hold``, seconds
        until another such call fits them (the bucket admits nothing before then, without a
        429's backoff), and ``provider_room``, the requests and tokens they will have room for
        then; the bucket is brought down to it when it thinks it has more than
        ``provider_tolerance`` (units the reports may be off by, for requests and tokens) more.
        """
        p = self.policy
        keys = [
            self.names.reservation(reservation.reservation_id),
            self.names.pool_config,
            self.names.pool_state,
            self.names.pool_windows,
            self.names.pool_health,
            self.names.pool_stats,
            *self._ready_sets(reservation.key_id, (reservation.index_name, reservation.tier)),
        ]
        args = [
            "" if actual_tokens is None else int(actual_tokens),
            outcome,
            "" if retry_after is None else repr(float(max(0.0, retry_after))),
            scope,
            p.cooldown_seconds,
            p.cooldown_factor,
            p.cooldown_max_seconds,
            p.breaker_threshold,
            p.breaker_timeout_seconds,
            error_class or outcome,
            self._now_arg(),
            self._offsets(),
            provider_limits,
            repr(float(hold)) if hold > 0 else "",
            *("" if room is None else repr(float(room)) for room in provider_room),
            *(repr(float(tolerance)) for tolerance in provider_tolerance),
            "1" if reservation.probe else "",
            p.unreachable_seconds,
            p.unreachable_max_seconds,
        ]
        reply = await self.store.run(_SETTLE, keys, args)
        if reply[0] == "settled":
            return SettleResult(
                True,
                reply[1],
                int(reply[2]),
                reply[3],
                float(reply[4]),
                charged=float(reply[5]),
                previous_state=reply[6],
                now=float(reply[7]),
            )
        return SettleResult(False, reservation.key_id, note=reply[-1])

    async def release(self, reservation: Reservation) -> bool:
        """Give back a reservation whose call never reached the provider; idempotent."""
        keys = [
            self.names.reservation(reservation.reservation_id),
            self.names.pool_config,
            self.names.pool_state,
            self.names.pool_windows,
            self.names.pool_stats,
            self.names.ready(reservation.index_name, reservation.tier),
        ]
        reply = await self.store.run(_RELEASE, keys, [self._now_arg(), self._offsets()])
        return bool(reply[0] == "released")

    async def extend(self, reservation: Reservation, ttl: int | None = None) -> Extended:
        """Keep a reservation held for another ``ttl`` seconds (default: the engine's
        ``reservation_ttl``) while its call runs; idempotent. Only a reservation still held is
        extended: one already settled or released, or expired, is left as it is."""
        seconds = self.reservation_ttl if ttl is None else ttl
        if seconds < 1:
            raise ValueError("ttl must be >= 1 second")
        keys = [self.names.reservation(reservation.reservation_id)]
        reply = await self.store.run(_EXTEND, keys, [int(seconds)])
        if reply[0] == "extended":
            return "extended"
        if reply[0] == "noop" and reply[1] in ("settled", "released"):
            return cast(Extended, reply[1])
        return "expired"

    # -- health actions --------------------------------------------------------------------------
    async def _set_health(
        self, key_id: str, action: str, seconds: float = 0, reason: str = ""
    ) -> dict[str, Any]:
        buckets = []
        if key_id in self._keys:
            buckets = sorted(
                {
                    layout.buckets[key_id]
                    for layout in self._layouts.values()
                    if key_id in layout.buckets
                }
            )
        keys = [
            self.names.pool_config,
            self.names.pool_state,
            self.names.pool_health,
            *self._ready_sets(key_id),
        ]
        args = [key_id, action, repr(float(seconds)), reason, self._now_arg(), ",".join(buckets)]
        state, until, why = await self.store.run(_SET_HEALTH, keys, args)
        return {"state": state, "until": float(until), "reason": why}

    async def cooldown(self, key_id: str, seconds: float, reason: str = "manual") -> dict[str, Any]:
        return await self._set_health(key_id, "cooldown", seconds, reason)

    async def clear_cooldown(self, key_id: str) -> dict[str, Any]:
        return await self._set_health(key_id, "clear")

    async def disable(self, key_id: str, reason: str = "manual") -> dict[str, Any]:
        return await self._set_health(key_id, "disable", 0, reason)

    async def enable(self, key_id: str) -> dict[str, Any]:
        """Revive a disabled key (an auth-disabled key comes back only this way) and re-index it."""
        result = await self._set_health(key_id, "enable")
        for model, layout in list(self._layouts.items()):
            if key_id in layout.tier_of:
                await self._sync_index(model)
        return result

    # -- reading state ---------------------------------------------------------------------------
    async def now(self) -> float:
        return float(self._clock()) if self._clock is not None else await self.store.server_time()

    async def bucket_usage(
        self, bucket: str, key: APIKey, now: float | None = None
    ) -> dict[str, Any]:
        """Usage of one bucket: sliding-minute requests/tokens, the day's, room left, blocks."""
        now = await self.now() if now is None else now
        raw = await self.store.call(self.store.client.hget(self.names.pool_state, bucket))
        return _usage_from_state(raw, key, now)

    async def health(self, key_id: str) -> dict[str, Any]:
        raw = await self.store.call(self.store.client.hget(self.names.pool_health, key_id))
        return _parse_health(raw)

    async def stats(self, key_id: str) -> dict[str, Any]:
        return (
            (await self.snapshot([key_id]))[key_id]["stats"]
            if key_id in self._keys
            else _parse_stats({})
        )

    async def layout_models(self) -> list[str]:
        return sorted(self._layouts)

    def models_of_key(self, key_id: str) -> list[str]:
        """The models and patterns the key has a bucket under: its bindings (bounded by the
        configuration, the same in every process whatever names were requested)."""
        key = self._keys.get(key_id)
        return [b.model for b in key.bindings] if key is not None else []

    async def snapshot(self, key_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Health, counters and per-model usage of many keys in three reads, whatever their number."""
        if not key_ids:
            return {}
        now = await self.now()
        stat_fields = [
            "requests",
            "successes",
            "failures",
            "rate_limited",
            "released",
            "tokens",
            "last_used",
            "last_error",
            "last_error_at",
            "provider_limits",
        ]
        buckets: list[tuple[str, str, str]] = []
        for key_id in key_ids:
            key = self._keys.get(key_id)
            models = self.models_of_key(key_id) or ([key.model_name] if key else [])
            buckets.extend((key_id, model, f"{key.group}|{model}") for model in models if key)
        client = self.store.client
        health_raw = await self.store.call(client.hmget(self.names.pool_health, list(key_ids)))
        stats_raw = await self.store.call(
            client.hmget(self.names.pool_stats, [f"{k}:{f}" for k in key_ids for f in stat_fields])
        )
        state_raw = (
            await self.store.call(client.hmget(self.names.pool_state, [b for _, _, b in buckets]))
            if buckets
            else []
        )
        out: dict[str, dict[str, Any]] = {}
        for i, key_id in enumerate(key_ids):
            values = stats_raw[i * len(stat_fields) : (i + 1) * len(stat_fields)]
            out[key_id] = {
                "health": _parse_health(health_raw[i]),
                "stats": _parse_stats(dict(zip(stat_fields, values, strict=True))),
                "usage": {},
            }
        for (key_id, model, _), raw in zip(buckets, state_raw, strict=True):
            out[key_id]["usage"][model] = _usage_from_state(raw, self._keys[key_id], now)
        for entry in out.values():
            entry["now"] = now
        return out

    async def reset_breakers(self, key_ids: Iterable[str]) -> list[str]:
        """Close open circuits of these keys (an operator's action: the router no longer resets
        them on its own, see RESET_BREAKERS_WHEN_ALL_UNHEALTHY); auth failures stay."""
        reset = []
        for key_id in key_ids:
            health = await self.health(key_id)
            if health["state"] in ("open", "probing"):
                await self._set_health(key_id, "reset")
                reset.append(key_id)
        return reset


def _max_burst(serving: list[tuple[APIKey, int, float]], divisor: int) -> int:
    """The largest token burst of the model's keys; -1 when one has no token limit."""
    bursts = [key.tpm_burst or key.tpm for key, _, _ in serving]
    if not bursts or any(b is None for b in bursts):
        return -1
    return max(_divided(b, divisor) for b in bursts if b)


def _bucket_args(bindings: list[tuple[APIKey, ModelBinding]], divisor: int) -> list[Any]:
    """The sync script's bucket count, then (bucket name, limits record) pairs."""
    buckets = {f"{key.group}|{b.model}": _limits_record(key, divisor) for key, b in bindings}
    out: list[Any] = [len(buckets)]
    for name, record in buckets.items():
        out += [name, record]
    return out


def _check_groups(keys: Iterable[APIKey]) -> None:
    """Keys of one quota group share one budget: their limits must agree."""
    first: dict[str, APIKey] = {}
    for key in keys:
        other = first.setdefault(key.group, key)
        if other is not key and _limits_record(other) != _limits_record(key):
            raise ConfigError(
                f"keys {other.key_id!r} and {key.key_id!r} share quota group {key.group!r} "
                "but have different limits (rpm, tpm, rpd, bursts, strict, day_reset_tz must match)",
                entry=key.key_id,
                field="quota_group",
            )


@dataclass
class _State:
    tat_r: float = 0.0
    tat_t: float = 0.0
    day: int = -1
    day_req: int = 0
    day_tok: int = 0
    minute: int = -1
    min_req: int = 0
    min_tok: int = 0
    prev_req: int = 0
    prev_tok: int = 0
    blocked: float = 0.0
    level: int = 0
    extra: list[str] = field(default_factory=list)


def _parse_state(raw: str | None) -> _State:
    if not raw:
        return _State()
    p = raw.split("\t")
    return _State(
        float(p[0]),
        float(p[1]),
        int(p[2]),
        int(p[3]),
        int(p[4]),
        int(p[5]),
        int(p[6]),
        int(p[7]),
        int(p[8]),
        int(p[9]),
        float(p[10]),
        int(p[11]),
    )


def _usage_from_state(raw: str | None, key: APIKey, now: float) -> dict[str, Any]:
    s = _parse_state(raw)
    minute = int(now // 60)
    if s.minute == minute:
        cur_req, cur_tok, prev_req, prev_tok = s.min_req, s.min_tok, s.prev_req, s.prev_tok
    elif s.minute == minute - 1:
        cur_req, cur_tok, prev_req, prev_tok = 0, 0, s.min_req, s.min_tok
    else:
        cur_req = cur_tok = prev_req = prev_tok = 0
    weight = 1.0 - (now % 60) / 60.0  # share of the previous minute inside the sliding minute
    offset = datetime.fromtimestamp(now, tz=ZoneInfo(key.reset_tz)).utcoffset()
    day = int((now + (offset.total_seconds() if offset else 0)) // 86400)
    same_day = s.day == day

    def room(tat: float, limit: int | None, burst: int | None) -> float | None:
        if not limit:
            return None
        interval = 60.0 / limit
        return max(0.0, (burst or limit) - max(0.0, tat - now) / interval)

    return {
        "rpm": {
            "count": round(prev_req * weight + cur_req),
            "limit": key.rpm,
            "available": room(s.tat_r, key.rpm, key.rpm_burst),
        },
        "tpm": {
            "used": round(prev_tok * weight + cur_tok),
            "limit": key.tpm,
            "available": room(s.tat_t, key.tpm, key.tpm_burst),
        },
        "rpd": {
            "count": s.day_req if same_day else 0,
            "limit": key.rpd,
            "tokens": s.day_tok if same_day else 0,
        },
        "blocked_until": s.blocked if s.blocked > now else None,
        "backoff_level": s.level,
    }


def _parse_stats(raw: dict[str, str | None]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in ("requests", "successes", "failures", "rate_limited", "released", "tokens"):
        out[name] = int(raw.get(name) or 0)
    for name in ("last_used", "last_error_at"):
        value = raw.get(name)
        out[name] = float(value) if value else None
    out["last_error"] = raw.get("last_error") or None
    out["provider_limits"] = raw.get("provider_limits") or None
    return out


def _parse_health(raw: str | None) -> dict[str, Any]:
    """A health record as lib_pool.lua's read_health reads it (an unreadable one is a healthy key,
    as the scripts treat it: an old record written before reasons were encoded)."""
    if not raw:
        return {"state": "ok", "until": 0.0, "reason": "", "level": 0, "fails": 0}
    p = raw.split("\t")
    try:
        if len(p) != 5:
            raise ValueError(raw)
        return {
            "state": p[0],
            "until": float(p[1]),
            "reason": decode_text(p[2]),
            "level": int(p[3]),
            "fails": int(p[4]),
        }
    except ValueError:
        return {"state": "ok", "until": 0.0, "reason": "unreadable_record", "level": 0, "fails": 0}
