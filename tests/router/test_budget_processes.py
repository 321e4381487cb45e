"""Budgets under concurrency: 4 router processes, 64 concurrent calls for one user whose daily
budget is worth about 20 calls at their worst case. Spend never passes the budget by more than one
call's estimate error, every reservation is given back or settled, and the spend equals the cost
of the calls that were served, to the nano-dollar."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import time
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from kernel.prices import default_table
from kernel.redis_keys import RedisKeys
from kernel.tokens import count_message_tokens
from kernel.usage_record import UsageRecord
from lua.usage_records import NANOS, SpendRecord, budget_field
from router.simulator import FaultConfig, ProviderSimulator, SimulatorConfig
from tests.conftest import unique_prefix
from tests.router.budget_workers import drive
from tests.router.pool import PoolKey, pool_files

PROCESSES = 4
CALLS = 16  # per process
MODEL = "gpt-4o-mini"
MAX_TOKENS = 64


def _worst_case() -> int:
    prompt = count_message_tokens([{"role": "user", "content": "budget call 10"}], MODEL)
    estimate = default_table().worst_case_nanos(MODEL, prompt, MAX_TOKENS)
    assert estimate is not None and estimate > 0
    return estimate


@pytest.mark.integration
@pytest.mark.parametrize("shards", [1, 3])
async def test_four_processes_never_spend_past_a_budget(
    redis_url: str, tmp_path: Path, shards: int
) -> None:
    estimate = _worst_case()
    limit = 20 * estimate
    budgets = json.dumps({"user:alice": {"limit_usd": limit / NANOS, "period": "day"}})
    keys = [PoolKey(f"k{i}", rpm=10_000, tpm=10_000_000) for i in range(2)]  # shards 0 and 1
    prefix = unique_prefix()
    async with ProviderSimulator(
        SimulatorConfig(
            keys=[k.sim_key() for k in keys],
            completion_tokens=8,
            faults=FaultConfig(latency_ms=300),  # every call reserves before the first settles
        )
    ) as sim:
        path, env = pool_files(tmp_path, sim, keys)
        start_at = time.time() + 8.0  # every process started and warm by then
        args = (redis_url, prefix, str(path), env, budgets, CALLS, start_at, MODEL, shards)
        with multiprocessing.get_context("spawn").Pool(PROCESSES) as pool:
            pending = [pool.apply_async(drive, args) for _ in range(PROCESSES)]
            loop = asyncio.get_running_loop()
            results = [await loop.run_in_executor(None, p.get, 120) for p in pending]
    answers = [a for result in results for a in result]
    names = RedisKeys(prefix, shards=shards)
    client = aioredis.from_url(redis_url)
    try:
        raw = await client.hget(names.budget_spend, budget_field("user", "alice"))
        entries = [e for v in names.usage_views() for e in await client.xrange(v.usage_stream)]
    finally:
        await client.aclose()
    spend = SpendRecord.decode(raw.decode() if raw else None)
    records = [UsageRecord.from_json(fields[b"r"]) for _, fields in entries]

    served = [a for a in answers if a["success"]]
    refused = [a for a in answers if not a["success"]]
    assert len(answers) == PROCESSES * CALLS
    assert {a["error_type"] for a in refused} <= {"budget_exceeded"}, refused[:3]
    assert 20 <= len(served) < len(answers), len(served)
    assert all(a["retry_after"] and a["retry_after"] > 0 for a in refused)
    # every reservation settled or given back; spend is exactly what the served calls cost
    assert spend.reserved == 0
    assert spend.spent == sum(round(a["cost"] * NANOS) for a in served)
    worst_error = max(0, max(round(a["cost"] * NANOS) - estimate for a in served))
    assert spend.spent <= limit + worst_error
    # one record per call, the refusals included
    assert len(records) == len(answers)
    assert sum(1 for r in records if r.error_type == "budget_exceeded") == len(refused)
    assert {r.user for r in records} == {"alice"}
