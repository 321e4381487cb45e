"""Model names clients make up (matching a ``*`` binding) leave no per-name state (issue 13, item 5).

Thousands of random names through the capacity engine on real Redis: the store's keys and the pool
hashes stay at their size after the first names, the process's caches stay within their bound,
and the reserve and settle scripts get the same KEYS whatever the number of names. A pattern's
keys share one bucket per key across every name (conservative: never above the key's limits).
"""

from __future__ import annotations

import gc
import secrets
import tracemalloc
from collections import Counter
from collections.abc import Sequence
from typing import Any

import pytest

from kernel.errors import AllKeysExhaustedError
from kernel.store import Store
from keys.engine import SERVING_CACHE_MODELS, CapacityEngine
from keys.models import APIKey
from lua import Script
from tests.keys.engine_helpers import ManualClock, engine_for, make_key


def pattern_keys(rpm: int = 1_000_000) -> list[APIKey]:
    return [
        make_key("a", "gpt-4o", rpm=rpm, models=[{"model": "gpt-4o"}, {"model": "gpt-4o*"}]),
        make_key("b", "gpt-4o", rpm=rpm, models=[{"model": "gpt-4o*", "priority": 2}]),
    ]


def random_name() -> str:
    return "gpt-4o-" + secrets.token_hex(6)


async def pool_footprint(engine: CapacityEngine) -> dict[str, int]:
    """Keys of the pool in the store (reservations, one per request, and usage rollups, one per
    minute, both expiring, left out) and the number of fields of each pool hash."""
    client, names = engine.store.client, engine.names
    keys = [k async for k in client.scan_iter(match=names.pool_tag + "*", count=1000)]
    out = {"keys": sum(1 for k in keys if ":res:" not in k and ":usage:m:" not in k)}
    for label in ("pool_config", "pool_state", "pool_stats", "pool_cursor", "pool_health"):
        out[label] = int(await client.hlen(getattr(names, label)))
    out["pool_models"] = int(await client.scard(names.pool_models))
    return out


def held_memory() -> int:
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


class ScriptKeys:
    """Observes the KEYS count of every script the engine runs (the calls go through unchanged)."""

    def __init__(self, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
        self.counts: dict[str, set[int]] = {}
        original, original_where = store.run, store.run_where

        async def run(script: Script, keys: Sequence[str], args: Sequence[Any], **kw: Any) -> Any:
            self.counts.setdefault(script.name, set()).add(len(keys))
            return await original(script, keys, args, **kw)

        async def run_where(
            script: Script, keys: Sequence[str], args: Sequence[Any], **kw: Any
        ) -> Any:
            self.counts.setdefault(script.name, set()).add(len(keys))
            return await original_where(script, keys, args, **kw)

        monkeypatch.setattr(store, "run", run)
        monkeypatch.setattr(store, "run_where", run_where)


async def reserve_and_settle(engine: CapacityEngine, names: list[str]) -> None:
    for name in names:
        reservation = await engine.reserve(name, 10)
        assert reservation.model == name
        await engine.settle(reservation, 8)


async def test_thousands_of_names_leave_the_store_and_caches_flat(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = engine_for(store)
    await engine.configure(pattern_keys())
    await reserve_and_settle(engine, ["gpt-4o", *(random_name() for _ in range(5))])
    first = await pool_footprint(engine)
    scripts = ScriptKeys(store, monkeypatch)

    tracemalloc.start()
    try:
        await reserve_and_settle(engine, [random_name() for _ in range(995)])
        at_1000 = held_memory()
        await reserve_and_settle(engine, [random_name() for _ in range(2000)])
        at_3000 = held_memory()
    finally:
        tracemalloc.stop()

    assert await pool_footprint(engine) == first
    assert sorted(engine._layouts) == ["gpt-4o", "gpt-4o*#openai"]
    assert scripts.counts == {"reserve": {9 + 3 * 2}, "settle": {9 + 2}}
    for cache in (engine._serving, engine._index, engine._bindings):
        assert len(cache) <= SERVING_CACHE_MODELS
    grown = at_3000 - at_1000
    assert grown < 256 * 1024, f"{grown} bytes more held after 2,000 more names"


async def test_a_patterns_bucket_is_shared_by_every_name_it_serves(store: Store) -> None:
    clock = ManualClock()
    engine = engine_for(store, clock)
    await engine.configure(
        [make_key("p", "gpt-4o", rpm=5, models=[{"model": "gpt-4o*"}, {"model": "gpt-*"}])]
    )
    used = [await engine.reserve(random_name(), 1) for _ in range(5)]
    assert {r.bucket for r in used} == {"p|gpt-4o*"}
    assert {r.index for r in used} == {"gpt-4o*#openai"}
    with pytest.raises(AllKeysExhaustedError):
        await engine.reserve(random_name(), 1)  # a sixth name: the key's 5 RPM are spent
    # a name only the other pattern reaches is limited under that pattern, on its own
    other = await engine.reserve("gpt-5-" + secrets.token_hex(4), 1)
    assert other.bucket == "p|gpt-*" and other.index == "gpt-*#openai"


async def test_keys_reached_through_different_patterns_keep_their_own_buckets(
    store: Store,
) -> None:
    engine = engine_for(store, ManualClock())
    await engine.configure(
        [
            make_key("wide", "gpt-4o", rpm=3, models=[{"model": "gpt-*"}]),
            make_key("narrow", "gpt-4o", rpm=2, models=[{"model": "gpt-4o*", "priority": 2}]),
        ]
    )
    # gpt-4o-* names: both keys; gpt-5-* names: only "wide", whose one bucket both share
    for _ in range(2):
        assert (await engine.reserve("gpt-5-" + secrets.token_hex(4), 1)).key_id == "wide"
    both = [await engine.reserve(random_name(), 1) for _ in range(3)]
    assert Counter(r.bucket for r in both) == {"wide|gpt-*": 1, "narrow|gpt-4o*": 2}
    assert {r.index for r in both} == {"gpt-*&gpt-4o*#openai"}
    with pytest.raises(AllKeysExhaustedError):
        await engine.reserve("gpt-5-" + secrets.token_hex(4), 1)


async def test_a_name_no_key_serves_writes_nothing(store: Store) -> None:
    engine = engine_for(store)
    await engine.configure(pattern_keys())
    first = await pool_footprint(engine)
    for _ in range(50):
        with pytest.raises(AllKeysExhaustedError, match="no active key serves"):
            await engine.reserve("claude-" + secrets.token_hex(6), 1)
    assert await pool_footprint(engine) == first


async def test_per_name_indexes_of_earlier_versions_are_removed_at_configure(
    store: Store,
) -> None:
    engine = engine_for(store)
    await engine.configure(pattern_keys())
    await reserve_and_settle(engine, ["gpt-4o", random_name()])
    first = await pool_footprint(engine)
    # what a version indexing every name on its own left behind for one name
    client, names, legacy = store.client, engine.names, random_name()
    await client.sadd(names.pool_models, legacy)
    await client.hset(names.pool_config, f"m:{legacy}", "-1\t1,2")
    for tier in (1, 2):
        for zset in (names.ready, names.order, names.share):
            await client.zadd(zset(legacy, tier), {"a": 0})
    await engine_for(store).configure(pattern_keys())
    assert await pool_footprint(engine) == first


async def test_a_named_model_is_also_served_by_pattern_keys_under_their_pattern(
    store: Store,
) -> None:
    engine = engine_for(store, ManualClock())
    await engine.configure(
        [
            make_key("named", "gpt-4o", rpm=1),
            make_key("wild", "gpt-4o", rpm=2, models=[{"model": "gpt-4o*", "priority": 2}]),
        ]
    )
    served = [await engine.reserve("gpt-4o", 1) for _ in range(2)]
    assert [(r.key_id, r.bucket, r.index) for r in served] == [
        ("named", "named|gpt-4o", ""),
        ("wild", "wild|gpt-4o*", ""),
    ]
    other = await engine.reserve(random_name(), 1)  # the pattern's second request of the minute
    assert (other.key_id, other.bucket) == ("wild", "wild|gpt-4o*")
    with pytest.raises(AllKeysExhaustedError):
        await engine.reserve(random_name(), 1)
