"""kernel/lru.py: a full cache drops its least recently used entry, never everything."""

from __future__ import annotations

import pytest

from kernel.lru import LRU


def test_a_full_cache_drops_the_least_recently_used_entry_only() -> None:
    cache: LRU[str, int] = LRU(3)
    for i, name in enumerate("abc"):
        cache.put(name, i)
    assert cache.get("a") == 0  # "a" is now the most recently used
    cache.put("d", 3)
    assert len(cache) == 3 and "b" not in cache
    assert [cache.get(n) for n in "acd"] == [0, 2, 3]


def test_thousands_of_new_keys_keep_the_bound_and_the_hot_entry() -> None:
    cache: LRU[str, int] = LRU(100)
    for i in range(5000):
        cache.put(f"name-{i}", i)
        cache.put("hot", -1)
    assert len(cache) == 100 and cache.get("hot") == -1


def test_the_bound_must_be_positive() -> None:
    with pytest.raises(ValueError, match="maxsize"):
        LRU(0)
