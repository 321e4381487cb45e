"""The blocking facade's lease and execute_with_retry (router/sync.py), with the blocking openai
client, against the provider simulator in a thread."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openai
import pytest

from kernel.errors import RateLimitedError
from keys.manager import KeyManager
from router.lease import Lease
from router.request_router import RequestRouter
from router.simulator import SimulatorConfig, run_in_thread
from router.sync import SyncRequestRouter
from tests.conftest import settings_for
from tests.router.pool import MODELS, PoolKey, pool_files

MODEL = MODELS["openai"]
HELLO = [{"role": "user", "content": "Say hello"}]


def test_a_blocking_lease_raises_the_sdk_error_and_execute_with_retry_rotates(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    keys = [
        PoolKey("a", faults={"spurious_429_rate": 1.0}),
        PoolKey("b", extra={"models": [{"model": MODEL, "priority": 2}]}),
    ]
    config = settings_for("redis", request, RESERVE_WAIT_SECONDS=0)
    used: list[str] = []

    def call(lease: Lease) -> Any:
        used.append(lease.key_id)
        return lease.client().chat.completions.create(model=lease.model, messages=HELLO)

    with run_in_thread(SimulatorConfig(keys=[k.sim_key() for k in keys])) as sim:
        path, env = pool_files(tmp_path, sim, keys)
        manager = KeyManager(key_store_path=path, settings=config, environ=env)
        with SyncRequestRouter(RequestRouter(manager, settings=config)) as router:
            with pytest.raises(openai.RateLimitError), router.lease(MODEL, tokens=100) as lease:
                assert isinstance(lease.client(), openai.OpenAI)
                call(lease)
            answer = router.execute_with_retry(call, model=MODEL, tokens=100)
    assert used == ["a", "b"]  # "a" cools down after its 429: the retry starts on "b"
    assert isinstance(lease.error, RateLimitedError)
    assert answer.choices[0].message.content
