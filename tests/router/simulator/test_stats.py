"""Window maxima are exact: compared with a brute-force count over every window."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router.simulator import stats as stats_module
from router.simulator.stats import StatsBook, WindowMax


def brute_force(events: list[tuple[float, float]], window: float) -> tuple[int, float]:
    best_count, best_tokens = 0, 0.0
    for start, _ in events:
        inside = [tokens for t, tokens in events if start <= t < start + window]
        best_count = max(best_count, len(inside))
        best_tokens = max(best_tokens, sum(inside))
    return best_count, best_tokens


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(0, 5, allow_nan=False), st.integers(0, 500)),
        max_size=60,
    )
)
def test_maxima_match_brute_force(gaps: list[tuple[float, int]]) -> None:
    tracker = WindowMax(10.0)
    events, now = [], 0.0
    for gap, tokens in gaps:
        now += gap
        tracker.add(now, tokens)
        events.append((now, float(tokens)))
    assert tracker.maxima() == brute_force(events, 10.0)


def test_settled_tokens_replace_the_admission_charge() -> None:
    tracker = WindowMax(60.0)
    first = tracker.add(0.0, 1000)
    tracker.add(1.0, 1000)
    tracker.set_tokens(first, 10)
    assert tracker.maxima() == (2, 1010)


def test_compaction_keeps_the_maximum_and_bounds_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stats_module, "COMPACT_AT", 50)
    tracker = WindowMax(60.0)
    for i in range(20):  # a burst of 20 at t=0..0.19
        tracker.add(i / 100, 1)
    for i in range(200):  # then one per minute
        tracker.add(1000.0 + 61 * i, 1)
    assert len(tracker.times) < 60
    assert tracker.maxima() == (20, 20)


def test_snapshot_lists_keys_groups_and_totals() -> None:
    book = StatsBook(60.0)
    stats = book.key("k1", "gpt-4o")
    stats.admitted_requests += 1
    stats.windows.add(0.0, 12)
    stats.rejected_429["requests"] += 2
    snapshot = book.snapshot()
    entry = snapshot["keys"]["k1"]["gpt-4o"]
    assert entry["max_window_requests"] == 1 and entry["max_window_tokens"] == 12
    assert entry["rate_limited"] == 2 and entry["rate_limited_by"] == {"requests": 2}
    assert snapshot["totals"]["rate_limited"] == 2
