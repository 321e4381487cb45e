"""The load a plan is made for: a peak rate held for a while, with bursts inside each minute.

Arrivals are a Poisson process whose rate is ``burst`` times the peak during the first
``burst_seconds`` of every minute and lower for the rest of it, so that each minute still averages
``peak_rpm``: the per-minute peak the operator states, with the sub-minute bursts real traffic has.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from kernel.errors import ConfigError


@dataclass(frozen=True)
class Load:
    """``tokens_per_request``: tokens one request uses in all (prompt + completion);
    ``reserve_tokens``: what the router reserves for it (prompt + the caller's ``max_tokens``;
    default ``tokens_per_request``); ``duration``: seconds measured, after ``warmup`` seconds of
    the same load that are simulated but not counted. ``fresh``: the keys start with their whole
    burst (a peak after a quiet spell); by default they start drained (a peak that has been
    running for a while: only the refill serves it)."""

    peak_rpm: float
    tokens_per_request: int = 1000
    reserve_tokens: int | None = None
    duration: float = 600.0
    warmup: float = 60.0
    burst: float = 2.0
    burst_seconds: float = 10.0
    seed: int = 0
    fresh: bool = False

    def __post_init__(self) -> None:
        positive = {
            "--peak-rpm": self.peak_rpm,
            "--tokens-per-request": self.tokens_per_request,
            "--duration": self.duration,
            "--burst": self.burst,
        }
        for name, value in positive.items():
            if not value > 0:
                raise ConfigError(f"{name} must be a positive number (got {value!r})")
        if self.reserve_tokens is not None and self.reserve_tokens < 1:
            raise ConfigError(
                f"--reserve-tokens must be a positive number (got {self.reserve_tokens!r})"
            )
        if self.warmup < 0 or self.burst_seconds < 0:
            raise ConfigError("--warmup and --burst-seconds must not be negative")
        if self.burst * self.burst_seconds > 60:
            raise ConfigError(
                f"--burst x --burst-seconds must be at most 60 (got {self.burst * self.burst_seconds:g}):"
                " a minute cannot hold more than its peak"
            )

    @property
    def reserved(self) -> int:
        return self.reserve_tokens or self.tokens_per_request

    @property
    def end(self) -> float:
        return self.warmup + self.duration

    def rate_at(self, t: float) -> float:
        """Arrivals per second at time ``t``."""
        base = self.peak_rpm / 60.0
        if self.burst_seconds <= 0 or self.burst == 1:
            return base
        if t % 60.0 < self.burst_seconds:
            return base * self.burst
        return base * (60.0 - self.burst * self.burst_seconds) / (60.0 - self.burst_seconds)


def arrivals(load: Load) -> list[float]:
    """Arrival times in ``[0, warmup + duration)``, seconds, seeded by ``load.seed``."""
    rng = random.Random(load.seed)
    out: list[float] = []
    t = 0.0
    while True:
        # piecewise-constant rate: draw in the current segment, move to the next if past it
        rate = load.rate_at(t)
        edge = _segment_end(load, t)
        step = rng.expovariate(rate) if rate > 0 else edge - t
        if t + step >= edge:
            t = edge
        else:
            t += step
            out.append(t)
        if t >= load.end:
            return [a for a in out if a < load.end]


def _segment_end(load: Load, t: float) -> float:
    minute = (t // 60.0) * 60.0
    if load.burst_seconds > 0 and t - minute < load.burst_seconds:
        return minute + load.burst_seconds
    return minute + 60.0
