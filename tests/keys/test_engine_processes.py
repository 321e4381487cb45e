"""Several OS processes share one Redis (or one Redis Cluster): the pool admits exactly its capacity."""

from __future__ import annotations

import multiprocessing
import uuid

import pytest

from tests.keys.engine_helpers import T0
from tests.keys.engine_workers import reserve_many

PROCESSES = 4


def run_processes(
    url: str, cluster: bool, fixed_time: float | None, attempts: int, rpm: int, shards: int = 1
) -> int:
    prefix = f"mp{uuid.uuid4().hex[:10]}"
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(PROCESSES) as pool:
        results = pool.starmap(
            reserve_many,
            [(url, cluster, prefix, fixed_time, attempts, 50, rpm, shards)] * PROCESSES,
        )
    return sum(results)


@pytest.mark.integration
@pytest.mark.parametrize("kind", ["redis", "cluster"])
@pytest.mark.parametrize("shards", [1, 3])
def test_processes_at_one_instant_admit_exactly_the_burst(
    kind: str, shards: int, request: pytest.FixtureRequest
) -> None:
    url = (
        request.getfixturevalue("redis_url")
        if kind == "redis"
        else request.getfixturevalue("cluster_instance").url
    )
    # 5 keys x burst 40 requests; 4 processes x 150 attempts = 600 > 200
    # with 3 shards each reservation asks at most every shard, so all 200 are found too
    assert run_processes(url, kind == "cluster", T0, 150, rpm=40, shards=shards) == 200


@pytest.mark.integration
def test_processes_in_real_time_admit_exactly_the_days_quota(redis_url: str) -> None:
    # real time, the store's clock: per-minute room refills while the test runs, the day's does not:
    # 5 keys x 100 requests per day (per-minute limits out of the way), 4 processes x 300 attempts
    assert run_processes(redis_url, False, None, 300, rpm=1_000_000) == 500
