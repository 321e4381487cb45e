"""The limit model alone, on a controlled clock: buckets, strict window, daily cap, settling."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from router.simulator.limits import (
    Limits,
    QuotaState,
    Rejection,
    SlidingWindow,
    Ticket,
    TokenBucket,
)


def state(
    rpm: int | None = None,
    tpm: int | None = None,
    rpd: int | None = None,
    *,
    strict: bool = False,
    tz: str = "UTC",
) -> QuotaState:
    return QuotaState(Limits(rpm, tpm, rpd), now=0.0, window=60.0, strict=strict, tz=tz)


def test_bucket_admits_a_burst_of_the_limit_then_refills_continuously() -> None:
    quota = state(rpm=60)
    admitted = [quota.admit(0.0, 0.0, 0) for _ in range(61)]
    assert sum(isinstance(a, Ticket) for a in admitted) == 60
    refused = admitted[-1]
    assert isinstance(refused, Rejection) and refused.scope == "requests"
    assert refused.retry_after == pytest.approx(1.0)  # one request refills in 60/60 s
    assert isinstance(quota.admit(0.5, 0.0, 0), Rejection)
    assert isinstance(quota.admit(1.0, 0.0, 0), Ticket)


def test_tokens_bucket_charges_cost_and_says_when_it_fits() -> None:
    quota = state(tpm=6000)
    assert isinstance(quota.admit(0.0, 0.0, 5000), Ticket)
    refused = quota.admit(0.0, 0.0, 2000)
    assert isinstance(refused, Rejection) and refused.scope == "tokens"
    assert refused.retry_after == pytest.approx(10.0)  # 1000 missing at 100 tokens/s
    assert refused.used == pytest.approx(5000)


def test_a_request_larger_than_the_limit_is_too_large() -> None:
    refused = state(tpm=1000).admit(0.0, 0.0, 1001)
    assert isinstance(refused, Rejection) and refused.too_large


def test_settle_refunds_unused_tokens_and_charges_overruns() -> None:
    quota = state(tpm=1000)
    ticket = quota.admit(0.0, 0.0, 800)
    assert isinstance(ticket, Ticket)
    quota.settle(ticket, 300, 0.0)
    assert quota.view(0.0).tokens_remaining == 700
    ticket = quota.admit(0.0, 0.0, 100)
    assert isinstance(ticket, Ticket)
    quota.settle(ticket, 900, 0.0)  # completion larger than charged: the bucket goes into debt
    assert quota.tokens is not None and quota.tokens.level == pytest.approx(-200)
    assert isinstance(quota.admit(0.0, 0.0, 1), Rejection)


def test_strict_window_refuses_what_a_bucket_alone_would_admit() -> None:
    loose, strict = state(rpm=10), state(rpm=10, strict=True)
    for quota in (loose, strict):
        for _ in range(10):
            assert isinstance(quota.admit(0.0, 0.0, 0), Ticket)
    # 30 s later the bucket has refilled 5 requests, but the window still holds all 10.
    assert isinstance(loose.admit(30.0, 0.0, 0), Ticket)
    refused = strict.admit(30.0, 0.0, 0)
    assert isinstance(refused, Rejection) and refused.retry_after == pytest.approx(30.0)
    assert isinstance(strict.admit(60.0, 0.0, 0), Ticket)


def test_strict_window_on_tokens_counts_settled_amounts() -> None:
    quota = state(tpm=1000, strict=True)
    first = quota.admit(0.0, 0.0, 900)
    assert isinstance(first, Ticket)
    assert isinstance(quota.admit(1.0, 0.0, 200), Rejection)
    quota.settle(first, 100, 1.0)
    assert isinstance(quota.admit(1.0, 0.0, 200), Ticket)


def test_sliding_window_wait_for_tokens_frees_oldest_first() -> None:
    window = SlidingWindow(60.0)
    window.add(0.0, 400)
    window.add(10.0, 400)
    assert window.wait_for_tokens(1000, 300, 20.0) == pytest.approx(40.0)
    assert window.wait_for_tokens(1000, 900, 20.0) == pytest.approx(50.0)
    assert window.wait_for_tokens(1000, 1001, 20.0) == float("inf")


def test_requests_per_day_reset_at_midnight_in_the_provider_zone() -> None:
    tz = "America/Los_Angeles"
    quota = state(rpd=2, tz=tz)
    evening = datetime(2025, 3, 10, 23, 0, tzinfo=ZoneInfo(tz)).timestamp()
    assert isinstance(quota.admit(0.0, evening, 0), Ticket)
    assert isinstance(quota.admit(0.0, evening, 0), Ticket)
    refused = quota.admit(0.0, evening, 0)
    assert isinstance(refused, Rejection) and refused.per_day
    assert refused.retry_after == pytest.approx(3600.0)
    assert isinstance(quota.admit(0.0, evening + 3601, 0), Ticket)


def test_view_reports_remaining_and_time_to_full() -> None:
    quota = state(rpm=60, tpm=6000)
    quota.admit(0.0, 0.0, 600)
    view = quota.view(0.0)
    assert (view.requests_limit, view.requests_remaining, view.tokens_remaining) == (60, 59, 5400)
    assert view.requests_reset == pytest.approx(1.0)
    assert view.tokens_reset == pytest.approx(6.0)


def test_bucket_never_exceeds_capacity() -> None:
    bucket = TokenBucket(10, 0.0, 60.0)
    bucket.refill(1e6)
    assert bucket.level == 10
