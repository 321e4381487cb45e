"""Helpers for the key-pool script tests: a pool set up and used through the scripts' bindings
only (lua/sync_model.py, lua/reserve.py, lua/settle.py ...), with a manual clock."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from kernel.store import Store
from keys.engine import HealthPolicy
from lua import release, reserve, set_health, settle, sync_model
from lua.records import Health, Limits, State, WeightRecord, bucket_name, tags_record
from lua.reserve import TierSets
from lua.usage_records import BudgetRecord, SpendRecord

T0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z
MODEL = "gpt-4o"
GROUP = "grp"
POLICY = HealthPolicy()


def limits(rpm: int = 0, tpm: int = 0, rpd: int = 0, *, strict: bool = False) -> Limits:
    return Limits(rpm, tpm, rpd, rpm, tpm, strict, "UTC")


@dataclass(frozen=True)
class Key:
    key_id: str
    group: str = GROUP
    tier: int = 0
    weight: float = 1.0
    tags: dict[str, str] = field(default_factory=dict)
    active: bool = True


def tier_sets(store: Store, index: str, tiers: Sequence[int]) -> tuple[TierSets, ...]:
    n = store.keys
    return tuple(
        TierSets(t, n.ready(index, t), n.order(index, t), n.share(index, t)) for t in tiers
    )


async def sync(
    store: Store,
    keys: Sequence[Key],
    buckets: dict[str, Limits],
    *,
    index: str = MODEL,
    tiers: Sequence[int] = (0,),
    max_burst: int = -1,
    now: float = T0,
) -> sync_model.SyncReply:
    """Sync ``index`` to ``keys``; ``buckets``: limits per quota group."""
    n = store.keys
    used = sorted({k.tier for k in keys})
    sync_keys = sync_model.SyncKeys(
        n.pool_config, n.pool_health, n.pool_models, n.pool_state, tier_sets(store, index, tiers)
    )
    args = sync_model.SyncArgs(
        index,
        max_burst,
        used,
        [
            sync_model.SyncKey(
                k.key_id, k.tier, k.group, WeightRecord(k.weight), tags_record(k.tags), k.active
            )
            for k in keys
        ],
        {bucket_name(group, index): lim for group, lim in buckets.items()},
        repr(now),
    )
    return await sync_model.run(store, sync_keys, args)


def reserve_keys(
    store: Store, index: str = MODEL, tiers: Sequence[int] = (0,)
) -> reserve.ReserveKeys:
    n = store.keys
    return reserve.ReserveKeys(
        n.pool_config,
        n.pool_state,
        n.pool_windows,
        n.pool_health,
        n.pool_stats,
        n.pool_cursor,
        n.budgets,
        n.budget_spend,
        tier_sets(store, index, tiers),
    )


async def reserve_one(
    store: Store,
    rid: str,
    tokens: int = 10,
    *,
    now: float = T0,
    index: str = MODEL,
    tiers: Sequence[int] = (0,),
    **options: Any,
) -> reserve.ReserveReply:
    args = reserve.ReserveArgs(
        index,
        tokens,
        options.pop("strategy", "capacity"),
        rid,
        600,
        repr(now),
        options.pop("offsets", "UTC=0"),
        0.5,
        **options,
    )
    return await reserve.run(
        store, reserve_keys(store, index, tiers), store.keys.reservation(rid), args
    )


async def settle_one(
    store: Store,
    rid: str,
    actual: int | None,
    outcome: str = "success",
    *,
    now: float = T0,
    ready: Sequence[str] = (),
    **options: Any,
) -> settle.SettleReply:
    n = store.keys
    keys = settle.SettleKeys(
        n.reservation(rid),
        n.pool_config,
        n.pool_state,
        n.pool_windows,
        n.pool_health,
        n.pool_stats,
        n.budget_spend,
        n.usage_stream,
        n.usage_rollup(int(now // 60)),
        list(ready) or [n.ready(MODEL, 0)],
    )
    args = settle.SettleArgs(actual, outcome, POLICY, repr(now), "UTC=0", **options)
    return await settle.run(store, keys, args)


async def release_one(store: Store, rid: str, *, now: float = T0) -> release.ReleaseReply:
    n = store.keys
    keys = release.ReleaseKeys(
        n.reservation(rid),
        n.pool_config,
        n.pool_state,
        n.pool_windows,
        n.pool_stats,
        n.ready(MODEL, 0),
        n.budget_spend,
    )
    return await release.run(store, keys, release.ReleaseArgs(repr(now), "UTC=0"))


async def health_action(
    store: Store,
    key_id: str,
    action: set_health.Action,
    *,
    seconds: float = 0.0,
    reason: str = "",
    now: float = T0,
    buckets: Sequence[str] = (),
) -> set_health.SetHealthReply:
    n = store.keys
    keys = set_health.SetHealthKeys(n.pool_config, n.pool_state, n.pool_health, [n.ready(MODEL, 0)])
    args = set_health.SetHealthArgs(key_id, action, seconds, reason, repr(now), buckets)
    return await set_health.run(store, keys, args)


async def state_of(store: Store, group: str = GROUP, index: str = MODEL) -> State:
    raw = await store.call(store.client.hget(store.keys.pool_state, bucket_name(group, index)))
    return State.decode(raw)


async def health_of(store: Store, key_id: str) -> Health:
    return Health.decode(await store.call(store.client.hget(store.keys.pool_health, key_id)))


async def put_health(store: Store, key_id: str, health: Health) -> None:
    await store.call(store.client.hset(store.keys.pool_health, key_id, health.encode()))


async def ready_score(store: Store, key_id: str, index: str = MODEL, tier: int = 0) -> float | None:
    score = await store.call(store.client.zscore(store.keys.ready(index, tier), key_id))
    return None if score is None else float(score)


async def stat(store: Store, key_id: str, name: str) -> int:
    raw = await store.call(store.client.hget(store.keys.pool_stats, f"{key_id}:{name}"))
    return int(raw or 0)


async def put_budget(store: Store, field: str, budget: BudgetRecord) -> None:
    await store.call(store.client.hset(store.keys.budgets, field, budget.encode()))


async def spend_of(store: Store, field: str) -> SpendRecord:
    return SpendRecord.decode(await store.call(store.client.hget(store.keys.budget_spend, field)))
