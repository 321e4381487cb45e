"""A deferred settle's own work (the usage record's encoding, the provider's limits as JSON, the
limits it reported) is done in the settle's job, after the answer returned, not on the answer's
path (issue 18: the router's CPU per call one at a time); inline mode does it before the answer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kernel.settings import Settings
from kernel.usage_record import UsageRecord
from router.request_router import RequestRouter
from tests.router.pool import PoolKey, sim_router

MODEL = "gpt-4o-mini"


def count_encodings(router: RequestRouter) -> list[UsageRecord]:
    """The records whose settle arguments were made so far (in order)."""
    made: list[UsageRecord] = []
    encode = router.usage.args

    def args(record: UsageRecord, cost_nanos: int | None) -> Any:
        made.append(record)
        return encode(record, cost_nanos)

    router.usage.args = args  # type: ignore[method-assign]
    return made


@pytest.mark.parametrize("mode", ["deferred", "inline"])
async def test_the_settles_arguments_are_made_after_the_answer(tmp_path: Path, mode: str) -> None:
    settings = Settings.from_env({}, SETTLE_MODE=mode)
    async with sim_router(settings, tmp_path, [PoolKey("k1")]) as (router, _sim):
        made = count_encodings(router)
        first = await router.complete([{"role": "user", "content": "one"}], MODEL)
        assert first["success"]
        assert len(made) == 1  # a key's first answer waits for its settle (learned limits)
        second = await router.complete([{"role": "user", "content": "two"}], MODEL)
        assert second["success"]
        # deferred: nothing of the second settle ran yet (no await since the answer)
        assert len(made) == (1 if mode == "deferred" else 2)
        await router.flush()
        assert len(made) == 2
        assert made[1].request_id == second["request_id"]
