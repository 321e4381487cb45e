"""Separate input and output token limits (``itpm``/``otpm``, Anthropic's): a reservation charges
its prompt estimate to the input limit and its completion reservation to the output one, the
settle corrects each to what the call used (lua/reserve.lua, lua/settle.lua).

Property (hypothesis, real Redis and the embedded store): for random limits, sizes, arrival times
and settle/release orders, the calls admitted in any interval [t_i, t_j] never used more input
(or output) tokens than the limit's envelope ``limit + limit * (t_j - t_i) / 60``: neither bucket
is ever exceeded, refunds included (a late refund never hands out room that refilled meanwhile).
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from kernel.errors import AllKeysExhaustedError, CapacityError
from kernel.settings import Settings
from kernel.store import Store, create_store
from keys.engine import CapacityEngine, Reservation
from tests.helpers import all_stores, both_pool_shards
from tests.keys.engine_helpers import ManualClock, engine_for, make_key

EPS = 1e-6


@dataclass
class Op:
    wait: float
    prompt: int
    completion: int
    fate: str  # settle_now | settle_later | release | keep
    used: float  # share of each reservation the call really used
    settle_oldest: bool


@dataclass
class Call:
    at: float
    prompt: int
    completion: int
    used: tuple[int, int] | None = None  # None: never settled (charged as reserved)
    released: bool = False


ops = st.builds(
    Op,
    wait=st.sampled_from([0.0, 0.0, 0.001, 0.5, 2.0, 7.5, 30.0, 61.0]),
    prompt=st.integers(0, 300),
    completion=st.integers(0, 300),
    fate=st.sampled_from(["settle_now", "settle_later", "settle_later", "release", "keep"]),
    used=st.sampled_from([0.0, 0.2, 0.5, 1.0, 1.0]),
    settle_oldest=st.booleans(),
)


async def scenario(store: Store, itpm: int, otpm: int, steps: list[Op]) -> list[Call]:
    clock = ManualClock()
    engine = CapacityEngine(store, clock=clock)
    await engine.configure([make_key("k", provider="anthropic", itpm=itpm, otpm=otpm)])
    calls: list[Call] = []
    pending: list[tuple[Reservation, Call, float]] = []

    async def settle(res: Reservation, call: Call, used: float) -> None:
        a_in, a_out = int(call.prompt * used), int(call.completion * used)
        await engine.settle(res, a_in + a_out, split=(a_in, a_out))
        call.used = (a_in, a_out)

    for step in steps:
        clock.advance(step.wait)
        if step.settle_oldest and pending:
            await settle(*pending.pop(0))
        try:
            res = await engine.reserve(
                "gpt-4o", step.prompt + step.completion, output=step.completion
            )
        except CapacityError:
            continue
        call = Call(clock.now, step.prompt, step.completion)
        calls.append(call)
        if step.fate == "settle_now":
            await settle(res, call, step.used)
        elif step.fate == "settle_later":
            pending.append((res, call, step.used))
        elif step.fate == "release":
            assert await engine.release(res)
            call.released = True
    return calls


def check(calls: list[Call], itpm: int, otpm: int) -> None:
    live = [c for c in calls if not c.released]
    for i, first in enumerate(live):
        used_in = used_out = 0
        for last in live[i:]:
            got = last.used or (last.prompt, last.completion)
            used_in, used_out = used_in + got[0], used_out + got[1]
            span = last.at - first.at
            assert used_in <= itpm + span * itpm / 60 + EPS, "input limit exceeded"
            assert used_out <= otpm + span * otpm / 60 + EPS, "output limit exceeded"


#: A refund after the bucket refilled: a naive refund would admit the third call at once.
REFILL_THEN_REFUND = [
    Op(0.0, 10, 400, "settle_later", 0.0, False),
    Op(61.0, 10, 400, "keep", 1.0, False),
    Op(0.0, 10, 400, "keep", 1.0, True),
]


@pytest.mark.parametrize("kind", ["redis", "embedded"])
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    itpm=st.integers(300, 2000),
    otpm=st.integers(300, 1000),
    steps=st.lists(ops, min_size=1, max_size=30),
)
@example(itpm=1000, otpm=500, steps=REFILL_THEN_REFUND)
def test_neither_the_input_nor_the_output_limit_is_ever_exceeded(
    kind: str, request: pytest.FixtureRequest, itpm: int, otpm: int, steps: list[Op]
) -> None:
    values: dict[str, object] = {"REDIS_KEY_PREFIX": f"p{uuid.uuid4().hex[:10]}"}
    if kind == "redis":
        values["REDIS_URL"] = request.getfixturevalue("redis_url")

    async def run() -> list[Call]:
        store = create_store(Settings.from_env({}, **values))
        try:
            return await scenario(store, itpm, otpm, steps)
        finally:
            await store.close()

    check(asyncio.run(run()), itpm, otpm)


@all_stores
@both_pool_shards
async def test_each_limit_binds_on_its_own_part_of_the_call(store: Store) -> None:
    clock = ManualClock()
    engine = engine_for(store, clock)
    await engine.configure([make_key("k", provider="anthropic", itpm=1000, otpm=100)])
    first = await engine.reserve("gpt-4o", 900, output=90)  # 810 in, 90 out
    with pytest.raises(AllKeysExhaustedError) as info:
        await engine.reserve("gpt-4o", 30, output=20)  # 10 in fit, 20 out do not
    assert info.value.reason == "otpm"
    # 10 more output tokens refill in 6 s at 100 a minute
    assert info.value.retry_after == pytest.approx(6.0, abs=1e-3)
    await engine.settle(first, 830, split=(810, 20))  # 70 of the 90 output tokens unused
    await engine.reserve("gpt-4o", 30, output=20)
    with pytest.raises(AllKeysExhaustedError) as info:
        await engine.reserve("gpt-4o", 200, output=0)  # 200 input: 810 + 10 used of 1000
    assert info.value.reason == "itpm"
    usage = (await engine.snapshot(["k"]))["k"]["usage"]["gpt-4o"]
    assert usage["itpm_usage"]["limit"] == 1000 and usage["otpm_usage"]["limit"] == 100
    assert usage["otpm_usage"]["available"] == pytest.approx(60.0)
