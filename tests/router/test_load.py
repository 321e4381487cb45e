"""Load: 4 router processes on one Redis offer twice the pool's capacity for 60 s.

The simulator enforces the same limits (strict: no 60-second window over the limit). The pool must
cause zero 429s, keep every key's 60-second maximum within its limit, and still serve at least 95%
of its capacity.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from pathlib import Path

import pytest

from router.simulator import ProviderSimulator, SimulatorConfig
from tests.conftest import unique_prefix
from tests.router.load_workers import drive
from tests.router.pool import PoolKey, pool_files

PROCESSES = 4
SECONDS = 60.0
RPM = 60


@pytest.mark.slow
@pytest.mark.integration
async def test_four_processes_at_twice_capacity_cause_no_429_and_use_the_pool(
    redis_url: str, tmp_path: Path
) -> None:
    keys = [
        PoolKey(f"k{i}", rpm=RPM, tpm=1_000_000, strict=True, extra={"rpm_burst": 5})
        for i in range(4)
    ]
    capacity = len(keys) * RPM * SECONDS / 60
    rate = 2 * capacity / SECONDS / PROCESSES  # per process
    async with ProviderSimulator(
        SimulatorConfig(keys=[k.sim_key() for k in keys], completion_tokens=8)
    ) as sim:
        path, env = pool_files(tmp_path, sim, keys)
        prefix = unique_prefix()
        args = (redis_url, prefix, str(path), env, SECONDS, rate, "gpt-4o-mini")
        with multiprocessing.get_context("spawn").Pool(PROCESSES) as pool:
            pending = [pool.apply_async(drive, args) for _ in range(PROCESSES)]
            loop = asyncio.get_running_loop()
            results = [await loop.run_in_executor(None, p.get, SECONDS + 120) for p in pending]
        stats = sim.stats()["keys"]
    outcomes: dict[str, int] = {}
    for result in results:
        for name, count in result["outcomes"].items():
            outcomes[name] = outcomes.get(name, 0) + count
    per_key = {k.key_id: stats[k.key_id]["gpt-4o-mini"] for k in keys}
    assert set(outcomes) <= {"success", "rate_limited"}, outcomes
    assert sum(s["rate_limited"] for s in per_key.values()) == 0
    assert all(s["max_window_requests"] <= RPM for s in per_key.values()), per_key
    assert outcomes["success"] >= 0.95 * capacity, (outcomes, capacity)
    assert sum(r["offered"] for r in results) >= 1.9 * capacity
