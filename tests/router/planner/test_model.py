"""The planner's model: document 004's formula, and more keys never serve less."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from router.planner import KeyLimits, Load, Target, formula_keys, plan_keys, simulate


def test_formula_is_document_004s_example() -> None:
    # "Example: 100 req/min peak, 10 rpm/key -> need 15 keys"
    assert formula_keys(100, 10) == 15
    assert formula_keys(90, 60) == 3  # 2.25 rounds up


def test_plan_reports_the_formula_and_the_smallest_pool_that_meets_the_target() -> None:
    load = Load(peak_rpm=100, tokens_per_request=500, duration=300, seed=1)
    plan = plan_keys("m", KeyLimits(rpm=10), load)
    assert plan.formula == 15
    sizes = [row.keys for row in plan.rows]
    assert sizes == list(range(sizes[0], sizes[-1] + 1))
    assert plan.needed is not None and plan.needed == sizes[-2]
    assert plan.rows[-2].goodput >= 0.99
    assert all(row.goodput < 0.99 for row in plan.rows[:-2])
    # drained keys at exactly the load's rate cannot absorb its bursts: one more is needed
    assert plan.needed > 10


def test_a_token_bound_load_needs_keys_by_tokens() -> None:
    load = Load(peak_rpm=60, tokens_per_request=1000, duration=300, seed=2)
    plan = plan_keys("m", KeyLimits(rpm=1000, tpm=10_000), load)  # 6 keys' worth of tokens
    assert plan.raw == 6 and plan.formula == 9
    assert plan.needed is not None and plan.needed >= 6


def test_an_overloaded_pool_refuses_after_the_routers_wait_and_causes_no_429() -> None:
    load = Load(peak_rpm=120, tokens_per_request=100, duration=120, warmup=0, seed=3)
    outcome = simulate([KeyLimits(rpm=60)], load)
    assert outcome.rate_limited > 0 and outcome.provider_429 == 0
    assert outcome.served + outcome.rate_limited == outcome.offered
    assert 0.4 < outcome.goodput < 0.6


limits_st = st.builds(
    KeyLimits,
    rpm=st.integers(5, 120),
    tpm=st.one_of(st.none(), st.integers(2_000, 60_000)),
    rpm_burst=st.one_of(st.none(), st.integers(1, 10)),
)


@settings(max_examples=100, deadline=None)
@given(
    limits=limits_st,
    peak=st.floats(10, 400),
    tokens=st.integers(10, 2_000),
    burst=st.floats(1, 3),
    seed=st.integers(0, 1000),
    n=st.integers(1, 6),
)
def test_more_keys_never_serve_less(
    limits: KeyLimits, peak: float, tokens: int, burst: float, seed: int, n: int
) -> None:
    load = Load(
        peak_rpm=peak,
        tokens_per_request=tokens,
        duration=60,
        warmup=10,
        burst=burst,
        burst_seconds=10,
        seed=seed,
    )
    fewer, more = simulate([limits] * n, load), simulate([limits] * (n + 1), load)
    assert more.offered == fewer.offered
    # one more key changes which waiting request a refill goes to (the model, like the router,
    # has no queue: whoever asks first after a refill gets it), so at the window's edges a request
    # or two may go either way (hypothesis found 4 keys serving 281 of 282 and 5 keys 280); more
    # than that would be a real loss
    assert more.served >= fewer.served - 2, (fewer.as_dict(), more.as_dict())


def test_target_with_a_wait_bound() -> None:
    load = Load(peak_rpm=130, tokens_per_request=10, duration=120, seed=4)
    outcome = simulate([KeyLimits(rpm=10)] * 9, load)
    assert outcome.wait_quantile(0.95) > 0
    assert not Target(goodput=0.5, p95_wait=0.0).met(outcome)
    assert Target(goodput=0.5, p95_wait=10.0).met(outcome) == (outcome.goodput >= 0.5)
