"""What the simulator saw, per key and model: the proof that no limit was exceeded.

Besides counters, every admission is kept as (time, tokens) so the maximum number of requests and
tokens in any window of ``window_seconds`` is computed exactly: a two-pointer sweep over the
admission times, each window ``[t_i, t_i + window)`` starting at an admission. Tokens are what the
admission finally cost (after settlement). Long runs fold old admissions into the running maximum
once their windows lie two minutes in the past, so memory stays bounded.
"""

from __future__ import annotations

from array import array
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

#: Fold admissions into the running maximum once this many are kept.
COMPACT_AT = 100_000
#: A window is folded only when it ended this long ago (in-flight requests may still settle).
SETTLE_GRACE = 120.0


class WindowMax:
    """Admission times and token costs; the maximum per sliding window, computed exactly."""

    __slots__ = ("base", "folded_requests", "folded_tokens", "times", "tokens", "window")

    def __init__(self, window: float) -> None:
        self.window = window
        self.times = array("d")
        self.tokens = array("d")
        self.base = 0  # index of times[0] among all admissions ever recorded
        self.folded_requests = 0
        self.folded_tokens = 0.0

    def add(self, now: float, tokens: float) -> int:
        """Record an admission; returns its index for :meth:`set_tokens`."""
        self.times.append(now)
        self.tokens.append(tokens)
        if len(self.times) >= COMPACT_AT:
            self._compact(now)
        return self.base + len(self.times) - 1

    def set_tokens(self, index: int, tokens: float) -> None:
        local = index - self.base
        if local >= 0:
            self.tokens[local] = tokens

    def maxima(self) -> tuple[int, float]:
        """(most requests, most tokens) admitted in any window."""
        requests, tokens = self._sweep(len(self.times))
        return max(requests, self.folded_requests), max(tokens, self.folded_tokens)

    def _sweep(self, starts: int) -> tuple[int, float]:
        times, costs, window = self.times, self.tokens, self.window
        n = len(times)
        best_count, best_tokens = 0, 0.0
        end, running = 0, 0.0
        for start in range(starts):
            limit = times[start] + window
            while end < n and times[end] < limit:
                running += costs[end]
                end += 1
            best_count = max(best_count, end - start)
            best_tokens = max(best_tokens, running)
            running -= costs[start]
        return best_count, best_tokens

    def _compact(self, now: float) -> None:
        horizon = now - self.window - SETTLE_GRACE
        cut = 0
        times = self.times
        while cut < len(times) and times[cut] < horizon:
            cut += 1
        if cut < len(times) // 2:
            return
        requests, tokens = self._sweep(cut)
        self.folded_requests = max(self.folded_requests, requests)
        self.folded_tokens = max(self.folded_tokens, tokens)
        del self.times[:cut]
        del self.tokens[:cut]
        self.base += cut


@dataclass
class UsageStats:
    """Counters of one key (or quota group) and model."""

    window: float
    admitted_requests: int = 0
    admitted_tokens: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    rejected_429: Counter[str] = field(default_factory=Counter)
    auth_failures: int = 0
    bad_requests: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    windows: WindowMax = field(init=False)

    def __post_init__(self) -> None:
        self.windows = WindowMax(self.window)

    def as_dict(self, limits: dict[str, int | None] | None = None) -> dict[str, Any]:
        max_requests, max_tokens = self.windows.maxima()
        out: dict[str, Any] = {
            "admitted_requests": self.admitted_requests,
            "admitted_tokens": round(self.admitted_tokens),
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "rate_limited": sum(self.rejected_429.values()),
            "rate_limited_by": dict(self.rejected_429),
            "auth_failures": self.auth_failures,
            "bad_requests": dict(self.bad_requests),
            "faults": dict(self.faults),
            "max_window_requests": max_requests,
            "max_window_tokens": round(max_tokens),
        }
        if limits is not None:
            out["limits"] = limits
        return out


class StatsBook:
    """Usage per (key, model) and per (quota group, model)."""

    def __init__(self, window: float) -> None:
        self.window = window
        self.by_key: dict[tuple[str, str], UsageStats] = {}
        self.by_group: dict[tuple[str, str], UsageStats] = {}
        self.group_limits: dict[tuple[str, str], dict[str, int | None]] = {}
        self.unknown_keys = 0
        self.missing_keys = 0

    def key(self, key_id: str, model: str) -> UsageStats:
        stats = self.by_key.get((key_id, model))
        if stats is None:
            stats = self.by_key[(key_id, model)] = UsageStats(self.window)
        return stats

    def group(self, group: str, model: str) -> UsageStats:
        stats = self.by_group.get((group, model))
        if stats is None:
            stats = self.by_group[(group, model)] = UsageStats(self.window)
        return stats

    def snapshot(self) -> dict[str, Any]:
        keys: dict[str, dict[str, Any]] = {}
        for (key_id, model), stats in sorted(self.by_key.items()):
            keys.setdefault(key_id, {})[model] = stats.as_dict()
        groups: dict[str, dict[str, Any]] = {}
        for (group, model), stats in sorted(self.by_group.items()):
            groups.setdefault(group, {})[model] = stats.as_dict(
                self.group_limits.get((group, model))
            )
        return {
            "window_seconds": self.window,
            "keys": keys,
            "groups": groups,
            "unknown_key_requests": self.unknown_keys,
            "missing_key_requests": self.missing_keys,
            "totals": self._totals(),
        }

    def _totals(self) -> dict[str, Any]:
        totals: Counter[str] = Counter()
        for stats in self.by_key.values():
            totals["admitted_requests"] += stats.admitted_requests
            totals["admitted_tokens"] += round(stats.admitted_tokens)
            totals["rate_limited"] += sum(stats.rejected_429.values())
            totals["auth_failures"] += stats.auth_failures
            totals["bad_requests"] += sum(stats.bad_requests.values())
            totals["faults"] += sum(stats.faults.values())
        return dict(totals)
