"""The planner's model against the real thing: the router on real Redis and the provider simulator
at the same load, for a pool that the load overruns (2 keys, 1.25 times their rate, with bursts).

The real run sends at the planner's arrival times; a loaded machine sends some late, so the model
replays the times the requests really left. Goodput must match within 5 percentage points
(measured here: 0.867-0.888 real against 0.888 modelled, over five runs).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kernel.settings import Settings
from router.planner import KeyLimits, Load, simulate
from tests.conftest import unique_prefix
from tests.router.planner.real_run import real_run

POOL = [KeyLimits(rpm=120, rpm_burst=4)] * 2  # 4 requests/s in all, bursts of 4 per key
LOAD = Load(
    peak_rpm=300,  # 5 requests/s, 7.5/s during the first 8 s
    tokens_per_request=30,
    duration=20,
    warmup=0,
    burst=1.5,
    burst_seconds=8,
    seed=3,
    fresh=True,  # a real run starts with full keys
)


@pytest.mark.integration
async def test_modelled_goodput_matches_a_real_run(redis_url: str, tmp_path: Path) -> None:
    settings = Settings.from_env({}, REDIS_URL=redis_url, REDIS_KEY_PREFIX=unique_prefix())
    real, sent = await real_run(settings, tmp_path, POOL, LOAD)
    model = simulate(POOL, LOAD, times=sent)
    assert model.offered == real.offered == len(sent)
    assert real.rate_limited > 0, real.as_dict()  # the load needs more than these keys
    assert real.provider_429 == model.provider_429 == 0
    assert abs(model.goodput - real.goodput) <= 0.05, (model.as_dict(), real.as_dict())
    assert real.served + real.rate_limited == real.offered  # nothing failed otherwise
