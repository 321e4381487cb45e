"""Worker processes for multi-process engine tests (spawned: they import only what they need)."""

from __future__ import annotations

import asyncio

from kernel.errors import AllKeysExhaustedError
from kernel.settings import Settings
from kernel.store import create_store
from keys.shards import create_engine
from tests.keys.engine_helpers import ManualClock, make_key


async def _attempts(
    url: str,
    cluster: bool,
    prefix: str,
    fixed_time: float | None,
    attempts: int,
    concurrency: int,
    rpm: int,
    shards: int = 1,
) -> int:
    store = create_store(
        Settings.from_env(
            {}, REDIS_URL=url, REDIS_CLUSTER=cluster, REDIS_KEY_PREFIX=prefix, POOL_SHARDS=shards
        )
    )
    clock = ManualClock(fixed_time) if fixed_time is not None else None
    engine = create_engine(store, shards, clock=clock)
    # every process configures the same pool at the same time, as replicas starting together do
    await engine.configure([make_key(f"k{i}", rpm=rpm, tpm=1_000_000, rpd=100) for i in range(5)])
    sem = asyncio.Semaphore(concurrency)

    async def one() -> int:
        async with sem:
            try:
                await engine.reserve("gpt-4o", 10)
                return 1
            except AllKeysExhaustedError:
                return 0

    try:
        return sum(await asyncio.gather(*(one() for _ in range(attempts))))
    finally:
        await store.close()


def reserve_many(
    url: str,
    cluster: bool,
    prefix: str,
    fixed_time: float | None,
    attempts: int,
    concurrency: int,
    rpm: int,
    shards: int = 1,
) -> int:
    """Admitted reservations out of ``attempts`` made by this process (5 keys, rpd 100 each;
    ``shards``: POOL_SHARDS)."""
    return asyncio.run(
        _attempts(url, cluster, prefix, fixed_time, attempts, concurrency, rpm, shards)
    )
