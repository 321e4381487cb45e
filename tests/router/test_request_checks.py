"""The Python API refuses completion-token counts no provider would take, with an answer (never a
call): error_type invalid_request_error naming the parameter, or ClientRequestError when raising."""

from __future__ import annotations

from pathlib import Path

import pytest

from kernel.errors import ClientRequestError
from tests.conftest import settings_for
from tests.router.pool import PoolKey, sim_router

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("options", "param"),
    [
        ({"max_tokens": 16_385}, "max_tokens"),  # gpt-4o-mini writes at most 16,384
        ({"max_tokens": -1}, "max_tokens"),
        ({"max_tokens": 2.5}, "max_tokens"),
        ({"max_tokens": 10**30}, "max_tokens"),
        ({"expected_completion_tokens": 10**9}, "expected_completion_tokens"),
    ],
)
async def test_out_of_range_completion_tokens_are_refused_before_any_call(
    request: pytest.FixtureRequest, tmp_path: Path, options: dict[str, object], param: str
) -> None:
    settings = settings_for("redis", request, RESERVE_WAIT_SECONDS=0)
    async with sim_router(settings, tmp_path, [PoolKey("a", rpm=60)]) as (router, sim):
        answer = await router.send_one_shot("hi", "gpt-4o-mini", **options)  # type: ignore[arg-type]
        assert answer["success"] is False and answer["error_type"] == "invalid_request_error"
        assert param in answer["error"], answer
        events = [
            e
            async for e in router.stream_complete(
                [{"role": "user", "content": "hi"}], "gpt-4o-mini", **options
            )
        ]
        assert events[-1]["error_type"] == "invalid_request_error"
        with pytest.raises(ClientRequestError) as caught:
            await router.send_one_shot("hi", "gpt-4o-mini", raise_on_error=True, **options)  # type: ignore[arg-type]
        assert caught.value.param == param
        assert sim.requests() == []


async def test_the_output_limit_itself_is_accepted(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    settings = settings_for("redis", request, RESERVE_WAIT_SECONDS=0)
    async with sim_router(settings, tmp_path, [PoolKey("a", rpm=60)]) as (router, _sim):
        answer = await router.send_one_shot("hi", "gpt-4o-mini", max_tokens=16_384)
        assert answer["success"] is True, answer
