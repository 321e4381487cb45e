"""Budgets under random sequences of reserve, settle (success, cancelled, unreachable) and release
with random estimates and real costs (hypothesis), on real Redis, the cluster and the embedded
store, through the scripts' bindings with a manual clock:

* the spend record always equals a plain model of the rules (admit iff spent + reserved +
  estimate <= limit; a settle moves the estimate out of reserved and the real cost into spent; a
  failed call gives its estimate back; a new day starts from nothing);
* spent + reserved never passes the limit by more than what the calls settled since the last
  admission spent beyond their estimates (those calls were all in flight at once: with one call
  in flight, that is one call's estimate error);
* once every call has ended, reserved is exactly 0 and spent the sum of the real costs charged.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kernel.settings import Settings
from kernel.store import Store, create_store
from lua import reserve
from lua.usage_records import BudgetRecord, budget_field
from tests.keys.test_engine_properties import backend
from tests.lua.pool import (
    GROUP,
    T0,
    Key,
    limits,
    put_budget,
    release_one,
    reserve_one,
    settle_one,
    spend_of,
    sync,
)

FIELD = budget_field("vkey", "v1")
DAY = 86400.0


@dataclass
class Step:
    kind: str  # reserve | settle | cancelled | unreachable | release | next_day
    estimate: int
    pick: int  # which call in flight ends
    used: float  # the real cost as a share of the estimate (> 1: more than estimated)


@dataclass
class Call:
    rid: str
    period: str
    estimate: int


@dataclass
class Model:
    """The budget's rules in plain Python: what the spend record must hold."""

    limit: int
    period: str = ""
    reserved: int = 0
    spent: int = 0
    over: int = 0  # spent beyond estimates since the last admission
    charged: dict[str, int] = field(default_factory=dict)  # period -> real costs settled

    def admit(self, period: str, estimate: int) -> bool:
        reserved, spent = (self.reserved, self.spent) if period == self.period else (0, 0)
        if spent + reserved + estimate > self.limit:
            return False
        self.period, self.reserved, self.spent, self.over = period, reserved + estimate, spent, 0
        return True

    def end(self, call: Call, cost: int | None) -> None:
        if call.period != self.period:
            return  # the period rolled meanwhile: the new one never held this call
        self.reserved = max(0, self.reserved - call.estimate)
        if cost is not None:
            self.spent += cost
            self.over += max(0, cost - call.estimate)
            self.charged[self.period] = self.charged.get(self.period, 0) + cost


steps = st.builds(
    Step,
    kind=st.sampled_from(
        ["reserve"] * 6 + ["settle"] * 3 + ["cancelled", "unreachable", "release", "next_day"]
    ),
    estimate=st.integers(0, 400),
    pick=st.integers(0, 1000),
    used=st.sampled_from([0.0, 0.3, 0.9, 1.0, 1.0, 1.2, 2.0]),
)


async def end_call(store: Store, step: Step, call: Call, now: float, model: Model) -> None:
    cost = int(call.estimate * step.used)
    if step.kind == "release":
        assert (await release_one(store, call.rid, now=now)).released
        model.end(call, None)
    elif step.kind == "unreachable":
        await settle_one(store, call.rid, None, "unreachable", now=now, cost_nanos=cost)
        model.end(call, None)
    else:
        await settle_one(store, call.rid, 1, step.kind.replace("settle", "success"), now=now,
                         cost_nanos=cost)  # fmt: skip
        model.end(call, cost)


async def check(store: Store, model: Model) -> None:
    spend = await spend_of(store, FIELD)
    assert (spend.period, spend.reserved, spend.spent) == (
        model.period,
        model.reserved,
        model.spent,
    )
    assert spend.spent + spend.reserved <= model.limit + model.over


async def scenario(url: str | None, cluster: bool, limit: int, plan: list[Step]) -> None:
    values: dict[str, object] = {"REDIS_KEY_PREFIX": f"b{uuid.uuid4().hex[:10]}"}
    if url:
        values.update(REDIS_URL=url, REDIS_CLUSTER=cluster)
    store = create_store(Settings.from_env({}, **values))
    model, flight, now = Model(limit), [], T0
    try:
        await sync(store, [Key("k1")], {GROUP: limits()})
        await put_budget(store, FIELD, BudgetRecord(limit, "day"))
        for i, step in enumerate(plan):
            # steps far enough apart that no cooldown or open circuit of the key is still on
            now += DAY if step.kind == "next_day" else 1000.0
            period = f"d{int(now // DAY)}"
            if step.kind == "reserve":
                reply = await reserve_one(
                    store, f"r{i}", 1, now=now, budgets=(FIELD,), cost_nanos=step.estimate
                )
                assert isinstance(reply, reserve.Reserved) == model.admit(period, step.estimate)
                if isinstance(reply, reserve.Reserved):
                    flight.append(Call(f"r{i}", period, step.estimate))
            elif step.kind != "next_day" and flight:
                await end_call(store, step, flight.pop(step.pick % len(flight)), now, model)
            await check(store, model)
        for call in flight:
            await end_call(store, Step("settle", 0, 0, 1.0), call, now, model)
        spend = await spend_of(store, FIELD)
        assert spend.reserved == 0
        assert spend.spent == model.charged.get(spend.period, 0)
    finally:
        await store.close()


@pytest.mark.parametrize("kind", ["redis", "cluster", "embedded"])
@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(limit=st.integers(0, 2000), plan=st.lists(steps, min_size=1, max_size=60))
def test_budgets_hold_under_random_calls(
    kind: str, request: pytest.FixtureRequest, limit: int, plan: list[Step]
) -> None:
    url, cluster = backend(kind, request)
    asyncio.run(scenario(url, cluster, limit, plan))
