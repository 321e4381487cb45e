"""Property tests of the capacity engine (hypothesis), on real Redis, the cluster and embedded.

For random limits, bursts, token sizes, arrival times and settle/release orders:

* requests: for every interval [t_i, t_j] between two admitted calls, the calls admitted in it
  never exceed the GCRA envelope ``burst + rate * (t_j - t_i)``;
* tokens: the same for the tokens the calls actually used (their settled amount, or the estimate
  if never settled), plus whatever they used beyond their estimate; so refunds never hand out
  capacity that did not exist (freed capacity would be spent by later full-size calls);
* strict mode: no 60-second window holds more than the limit.

Time is a manual clock passed to the scripts (their test hook); everything else is the real code.
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
from kernel.store import create_store
from keys.engine import CapacityEngine, Reservation
from keys.shards import create_engine
from tests.keys.engine_helpers import ManualClock, make_key

EPS = 1e-6


@dataclass
class Op:
    wait: float  # seconds before this arrival
    tokens: int
    fate: str  # settle_now | settle_later | release | keep
    used: float  # share of the estimate the call really used (> 1: more than estimated)
    settle_oldest: bool  # also settle the oldest pending reservation at this step


@dataclass
class Limits:
    rpm: int
    tpm: int
    rpm_burst: int | None
    tpm_burst: int | None
    strict: bool


@dataclass
class Admitted:
    at: float
    estimate: int
    used: int | None = None  # None: never settled (charged at the estimate)
    released: bool = False
    key_id: str = "k"


ops = st.builds(
    Op,
    wait=st.sampled_from([0.0, 0.0, 0.0, 0.001, 0.25, 1.0, 3.0, 7.5, 20.0, 61.0, 61.0]),
    tokens=st.integers(0, 400),
    fate=st.sampled_from(
        ["settle_now", "settle_later", "settle_later", "release", "unreachable", "keep"]
    ),
    used=st.sampled_from([0.0, 0.1, 0.5, 1.0, 1.0, 1.0]),
    settle_oldest=st.booleans(),
)
limits = st.builds(
    Limits,
    rpm=st.integers(1, 30),
    tpm=st.integers(200, 2000),
    rpm_burst=st.one_of(st.none(), st.integers(1, 5)),
    tpm_burst=st.one_of(st.none(), st.integers(400, 800)),
    strict=st.booleans(),
)


async def run_scenario(
    url: str | None,
    cluster: bool,
    lim: Limits,
    steps: list[Op],
    extra: bool,
    shards: int = 1,
    keys: tuple[str, ...] = ("k",),
) -> tuple[list[Admitted], Limits]:
    """``shards`` > 1: a sharded pool (keys/shards.py) of ``keys``, each its own quota group."""
    values: dict[str, object] = {"REDIS_KEY_PREFIX": f"p{uuid.uuid4().hex[:10]}"}
    if url:
        values.update(REDIS_URL=url, REDIS_CLUSTER=cluster)
    store = create_store(Settings.from_env({}, POOL_SHARDS=shards, **values))
    clock = ManualClock()
    engine = create_engine(store, shards, clock=clock)
    burst_r = min(lim.rpm_burst, lim.rpm) if lim.rpm_burst else None
    burst_t = min(lim.tpm_burst, lim.tpm) if lim.tpm_burst else None
    await engine.configure(
        [
            make_key(
                k, rpm=lim.rpm, tpm=lim.tpm, rpm_burst=burst_r, tpm_burst=burst_t, strict=lim.strict
            )
            for k in keys
        ]
    )
    admitted: list[Admitted] = []
    pending: list[tuple[Reservation, Admitted, float]] = []

    async def settle(res: Reservation, rec: Admitted, used: float) -> None:
        amount = int(rec.estimate * (used if extra else min(used, 1.0)))
        await engine.settle(res, actual_tokens=amount)
        rec.used = amount

    try:
        for step in steps:
            clock.advance(step.wait)
            if step.settle_oldest and pending:
                await settle(*pending.pop(0))
            try:
                res = await engine.reserve("gpt-4o", step.tokens)
            except CapacityError:
                continue
            rec = Admitted(at=clock.now, estimate=step.tokens, key_id=res.key_id)
            admitted.append(rec)
            used = step.used * (1.5 if extra and step.used == 1.0 else 1.0)
            if step.fate == "settle_now":
                await settle(res, rec, used)
            elif step.fate == "settle_later":
                pending.append((res, rec, used))
            elif step.fate == "release":
                assert await engine.release(res)
                rec.released = True
            elif step.fate == "unreachable":  # gives back like release, and cools the key
                assert (await engine.settle(res, outcome="unreachable")).settled
                rec.released = True
    finally:
        await store.close()
    return admitted, Limits(lim.rpm, lim.tpm, burst_r or lim.rpm, burst_t or lim.tpm, lim.strict)


def check_envelopes(admitted: list[Admitted], lim: Limits) -> None:
    calls = [a for a in admitted if not a.released]
    assert lim.rpm_burst is not None and lim.tpm_burst is not None
    for i, first in enumerate(calls):
        used, over = 0.0, 0.0
        for count, last in enumerate(calls[i:], start=1):
            spent = last.estimate if last.used is None else last.used
            used += spent
            over += max(0, spent - last.estimate)
            span = last.at - first.at
            assert count <= lim.rpm_burst + span * lim.rpm / 60 + EPS, "request envelope exceeded"
            assert used <= lim.tpm_burst + span * lim.tpm / 60 + over + EPS, (
                "token envelope exceeded"
            )
    if lim.strict:
        for first in calls:
            window = [c for c in calls if first.at <= c.at < first.at + 60]
            assert len(window) <= lim.rpm
            over = sum(max(0, (c.used or 0) - c.estimate) for c in window)
            assert sum(c.estimate if c.used is None else c.used for c in window) <= lim.tpm + over


def backend(kind: str, request: pytest.FixtureRequest) -> tuple[str | None, bool]:
    if kind == "redis":
        return request.getfixturevalue("redis_url"), False
    if kind == "cluster":
        return request.getfixturevalue("cluster_instance").url, True
    return None, False


COMMON = settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


#: A refund after the bucket refilled: naive refunds would admit the third call at once.
REFILL_THEN_REFUND = [
    Op(0.0, 400, "settle_later", 0.0, False),
    Op(61.0, 400, "keep", 1.0, False),
    Op(0.0, 400, "keep", 1.0, True),
]


@pytest.mark.parametrize("kind", ["redis", "cluster", "embedded"])
@COMMON
@given(lim=limits, steps=st.lists(ops, min_size=1, max_size=60))
@example(lim=Limits(10, 500, None, None, False), steps=REFILL_THEN_REFUND)
@example(lim=Limits(10, 500, None, None, True), steps=REFILL_THEN_REFUND)
def test_admissions_stay_within_the_limit_model(
    kind: str, request: pytest.FixtureRequest, lim: Limits, steps: list[Op]
) -> None:
    url, cluster = backend(kind, request)
    admitted, effective = asyncio.run(run_scenario(url, cluster, lim, steps, extra=False))
    check_envelopes(admitted, effective)


#: Keys whose quota groups (their ids) fall in shards 0, 1 and 2 of three (kernel.redis_keys.shard_of).
SHARDED_KEYS = ("k2", "k", "k3")


@pytest.mark.parametrize("kind", ["redis", "cluster"])
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(lim=limits, steps=st.lists(ops, min_size=1, max_size=60))
def test_a_sharded_pools_keys_each_stay_within_the_limit_model(
    kind: str, request: pytest.FixtureRequest, lim: Limits, steps: list[Op]
) -> None:
    url, cluster = backend(kind, request)
    admitted, effective = asyncio.run(
        run_scenario(url, cluster, lim, steps, extra=False, shards=3, keys=SHARDED_KEYS)
    )
    for key_id in SHARDED_KEYS:
        check_envelopes([a for a in admitted if a.key_id == key_id], effective)


@pytest.mark.parametrize("kind", ["redis", "embedded"])
@COMMON
@given(lim=limits, steps=st.lists(ops, min_size=1, max_size=60))
def test_calls_using_more_than_estimated_only_exceed_by_their_overrun(
    kind: str, request: pytest.FixtureRequest, lim: Limits, steps: list[Op]
) -> None:
    url, cluster = backend(kind, request)
    admitted, effective = asyncio.run(run_scenario(url, cluster, lim, steps, extra=True))
    check_envelopes(admitted, effective)


@pytest.mark.parametrize("kind", ["redis", "embedded"])
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rpm=st.integers(1, 20),
    cooldowns=st.lists(
        st.tuples(st.sampled_from(["cooldown", "auth", "transient", "clear"]), st.floats(0, 120)),
        max_size=12,
    ),
    arrivals=st.lists(st.sampled_from([0.0, 0.5, 5.0, 30.0]), min_size=1, max_size=40),
)
def test_no_unhealthy_key_is_ever_selected(
    kind: str,
    request: pytest.FixtureRequest,
    rpm: int,
    cooldowns: list[tuple[str, float]],
    arrivals: list[float],
) -> None:
    url, cluster = backend(kind, request)
    asyncio.run(_unhealthy_never_selected(url, cluster, rpm, cooldowns, arrivals))


async def _unhealthy_never_selected(
    url: str | None,
    cluster: bool,
    rpm: int,
    actions: list[tuple[str, float]],
    arrivals: list[float],
) -> None:
    values: dict[str, object] = {"REDIS_KEY_PREFIX": f"h{uuid.uuid4().hex[:10]}"}
    if url:
        values.update(REDIS_URL=url, REDIS_CLUSTER=cluster)
    store = create_store(Settings.from_env({}, **values))
    clock = ManualClock()
    engine = CapacityEngine(store, clock=clock)
    names = ["a", "b", "c"]
    await engine.configure([make_key(n, rpm=rpm) for n in names])
    try:
        for i, wait in enumerate(arrivals):
            clock.advance(wait)
            if i < len(actions):
                action, seconds = actions[i]
                target = names[i % 3]
                if action == "cooldown":
                    await engine.cooldown(target, seconds)
                elif action == "clear":
                    await engine.clear_cooldown(target)
                else:
                    try:
                        res = await engine.reserve(
                            "gpt-4o", 1, exclude=[n for n in names if n != target]
                        )
                        await engine.settle(res, outcome=action)  # type: ignore[arg-type]
                    except AllKeysExhaustedError:
                        pass
            healthy = {}
            for name in names:
                h = await engine.health(name)
                healthy[name] = h["state"] == "ok" or (
                    h["state"] in ("cooldown", "open", "probing") and h["until"] <= clock.now
                )
            try:
                res = await engine.reserve("gpt-4o", 1)
            except AllKeysExhaustedError:
                continue
            assert healthy[res.key_id], (
                f"{res.key_id} selected while {await engine.health(res.key_id)}"
            )
            await engine.settle(res)
    finally:
        await store.close()
