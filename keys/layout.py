"""The capacity engine's layouts: which keys serve an index, at which tier, and syncing that to
the store (lua/sync_model.lua through its binding).

:class:`PoolLayout` is the engine's first layer (keys/engine.py builds on it): the configured keys,
the per-index layouts with the reserve script's KEYS built once per sync, the caches the request
path asks on every call, and the store's clock and calendars as the scripts take them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from kernel.errors import ConfigError
from kernel.lru import LRU
from kernel.redis_keys import RedisKeys
from kernel.store import Store
from keys.models import (
    APIKey,
    ModelBinding,
    index_bindings,
    index_label,
    is_pattern_index,
    model_index,
)
from lua import sync_model as sync_script
from lua.records import (
    KeyRecord,
    Limits,
    ModelRecord,
    WeightRecord,
    bucket_name,
    key_field,
    model_field,
    tags_record,
)
from lua.reserve import ReserveKeys, TierSets

#: Requested names whose index and serving keys are remembered at once (least recently used
#: first out): names are client input, so these caches are bounded (see kernel/lru.py).
SERVING_CACHE_MODELS = 1024


@dataclass
class ModelLayout:
    """Which keys serve an index, at which tier, as last synced by this process."""

    tiers: list[int]
    tier_of: dict[str, int]
    #: The reserve script's KEYS (but the reservation's own) and tiers: built once per sync.
    reserve: ReserveKeys
    #: key id -> its bucket (``<group>|<model>``, or ``<group>|<pattern>`` for a pattern binding)
    buckets: dict[str, str] = field(default_factory=dict)


@dataclass
class _ZoneCache:
    offsets: str = ""
    computed_at: float = -1.0


def divided(limit: int | None, divisor: int) -> int:
    """A limit's share of one of ``divisor`` processes: rounded down, at least 1 when set."""
    return max(1, limit // divisor) if limit else 0


def limits_of(key: APIKey, divisor: int = 1) -> Limits:
    """The bucket's limits; ``divisor`` > 1 on degraded mode's local store (ROUTER_PROCESSES)."""
    return Limits(
        rpm=divided(key.rpm, divisor),
        tpm=divided(key.tpm, divisor),
        rpd=divided(key.rpd, divisor),
        rpm_burst=divided(key.rpm_burst or key.rpm, divisor),
        tpm_burst=divided(key.tpm_burst or key.tpm, divisor),
        strict=key.strict,
        tz=key.reset_tz,
        itpm=divided(key.itpm, divisor),
        otpm=divided(key.otpm, divisor),
        itpm_burst=divided(key.itpm, divisor),
        otpm_burst=divided(key.otpm, divisor),
        learn=key.learn_limits,
    )


def bucket_of(key: APIKey, binding: ModelBinding) -> str:
    return bucket_name(key.group, binding.model)


def _max_burst(serving: list[tuple[APIKey, ModelBinding]], divisor: int) -> int:
    """The largest token burst of the index's keys; -1 when one has no token limit."""
    bursts = [key.tpm_burst or key.tpm for key, _ in serving]
    if not bursts or any(b is None for b in bursts):
        return -1
    return max(divided(b, divisor) for b in bursts if b)


def _check_groups(keys: Iterable[APIKey]) -> None:
    """Keys of one quota group share one budget: their limits must agree."""
    first: dict[str, APIKey] = {}
    for key in keys:
        other = first.setdefault(key.group, key)
        if other is not key and limits_of(other) != limits_of(key):
            raise ConfigError(
                f"keys {other.key_id!r} and {key.key_id!r} share quota group {key.group!r} "
                "but have different limits (rpm, tpm, rpd, itpm, otpm, bursts, strict, day_reset_tz, "
                "learn_limits must match)",
                entry=key.key_id,
                field="quota_group",
            )


class PoolLayout:
    """The configured keys and the per-index layouts of one store."""

    def __init__(
        self,
        store: Store,
        *,
        clock: Callable[[], float] | None = None,
        names: RedisKeys | None = None,
    ) -> None:
        self.store = store
        #: The pool's key names: the store's, or one shard's (keys/shards.py).
        self.names: RedisKeys = names or store.keys
        self._clock = clock
        self._keys: dict[str, APIKey] = {}
        #: serving(model) and index_of(model) per requested name, rebuilt after every change of the
        #: key list: the request path asks for them on every call and must not walk the pool each
        #: time. Keyed by client input, so bounded; layouts are per index (bounded by the config).
        self._serving: LRU[str, list[tuple[APIKey, int, float]]] = LRU(SERVING_CACHE_MODELS)
        self._index: LRU[str, str] = LRU(SERVING_CACHE_MODELS)
        self._bindings: LRU[str, list[tuple[APIKey, ModelBinding]]] = LRU(SERVING_CACHE_MODELS)
        self._layouts: dict[str, ModelLayout] = {}
        self._zones = _ZoneCache()
        #: Calendars the scripts need besides the keys' day resets (budgets' time zones).
        self._extra_zones: frozenset[str] = frozenset()

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
            name, record = key_field(key_id), KeyRecord(key.group, False, key.tags).encode()
            await self.store.call(lambda c, f=name, r=record: c.hset(self.names.pool_config, f, r))

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

    def models_of_key(self, key_id: str) -> list[str]:
        """The models and patterns the key has a bucket under: its bindings (bounded by the
        configuration, the same in every process whatever names were requested)."""
        key = self._keys.get(key_id)
        return [b.model for b in key.bindings] if key is not None else []

    # -- syncing ---------------------------------------------------------------------------------
    async def sync_model(self, model: str) -> ModelLayout:
        """Write the records and indexes ``model`` is served from (idempotent; usage untouched)."""
        return await self._sync_index(self.index_of(model))

    async def _sync_index(self, model: str) -> ModelLayout:
        """Write the records and sets of one index; one no key serves is removed from the store."""
        bindings = self._index_bindings(model)
        tiers = sorted({b.priority for _, b in bindings})
        previous = await self.store.call(
            lambda c: c.hget(self.names.pool_config, model_field(model))
        )
        old_tiers = ModelRecord.decode(previous).tiers if previous else ()
        keys = sync_script.SyncKeys(
            self.names.pool_config,
            self.names.pool_health,
            self.names.pool_models,
            self.names.pool_state,
            self._tier_sets(model, sorted(set(tiers) | set(old_tiers))),
        )
        await sync_script.run(
            self.store,
            keys,
            self._sync_args(model, tiers, bindings, 1),
            local_args=self._local_sync(model, tiers, bindings),
        )
        layout = ModelLayout(
            tiers=tiers,
            tier_of={key.key_id: b.priority for key, b in bindings},
            reserve=self._reserve_keys(model, tiers),
            buckets={key.key_id: bucket_of(key, b) for key, b in bindings},
        )
        if bindings:
            self._layouts[model] = layout
        else:
            self._layouts.pop(model, None)
        return layout

    def _local_sync(
        self, model: str, tiers: list[int], bindings: list[tuple[APIKey, ModelBinding]]
    ) -> sync_script.SyncArgs | None:
        """Degraded mode's local store gets divided limits (ROUTER_PROCESSES)."""
        if self.store.failover is None:
            return None
        return self._sync_args(model, tiers, bindings, self.store.local_divisor)

    def _sync_args(
        self,
        model: str,
        tiers: list[int],
        bindings: list[tuple[APIKey, ModelBinding]],
        divisor: int,
    ) -> sync_script.SyncArgs:
        keys = [
            sync_script.SyncKey(
                key.key_id,
                b.priority,
                key.group,
                WeightRecord(b.weight, b.model if b.is_pattern else ""),
                tags_record(key.tags),
                key.active,
            )
            for key, b in bindings
        ]
        buckets = {bucket_of(key, b): limits_of(key, divisor) for key, b in bindings}
        return sync_script.SyncArgs(
            model, _max_burst(bindings, divisor), tiers, keys, buckets, self._now_arg()
        )

    def _tier_sets(self, model: str, tiers: Iterable[int]) -> tuple[TierSets, ...]:
        n = self.names
        return tuple(
            TierSets(t, n.ready(model, t), n.order(model, t), n.share(model, t)) for t in tiers
        )

    def _reserve_keys(self, model: str, tiers: list[int]) -> ReserveKeys:
        """The reserve script's KEYS (lua/reserve.lua), but the reservation's own."""
        n = self.names
        return ReserveKeys(
            n.pool_config,
            n.pool_state,
            n.pool_windows,
            n.pool_health,
            n.pool_stats,
            n.pool_cursor,
            n.budgets,
            n.budget_spend,
            self._tier_sets(model, tiers),
        )

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

    # -- time ------------------------------------------------------------------------------------
    def use_zones(self, zones: Iterable[str]) -> None:
        """Also pass these time zones' offsets to the scripts (budgets' calendars: a budget
        whose zone is missing counts its periods in UTC)."""
        self._extra_zones = frozenset(zones)
        self._zones = _ZoneCache()

    def rollup_key(self) -> str:
        """This minute's usage rollup (kernel.redis_keys.usage_rollup), by the injected clock
        when there is one, else the host's."""
        wall = time.time() if self._clock is None else self._clock()
        return self.names.usage_rollup(int(wall // 60))

    def _now_arg(self) -> str:
        return "" if self._clock is None else repr(float(self._clock()))

    def day_offsets(self) -> str:
        """The day offsets the scripts take (``UTC=0;...``: reserve's, record_usage's)."""
        return self._offsets()

    def _offsets(self) -> str:
        """Seconds east of UTC of every day-reset calendar in use, recomputed once a minute."""
        wall = time.time() if self._clock is None else self._clock()
        if abs(wall - self._zones.computed_at) < 60 and self._zones.offsets:
            return self._zones.offsets
        zones = {key.reset_tz for key in self._keys.values()} | {"UTC"} | self._extra_zones
        moment = datetime.fromtimestamp(wall, tz=ZoneInfo("UTC"))
        parts = []
        for name in sorted(zones):
            offset = moment.astimezone(ZoneInfo(name)).utcoffset()
            parts.append(f"{name}={int(offset.total_seconds()) if offset else 0}")
        self._zones = _ZoneCache(";".join(parts), wall)
        return self._zones.offsets

    async def now(self) -> float:
        return float(self._clock()) if self._clock is not None else await self.store.server_time()
