"""A discrete-event model of the router and the provider simulator, in simulated time.

Router side (``lua/reserve.lua``, ``lua/lib_pool.lua``, ``keys/room.py``): each key's requests and
tokens are GCRA limits (burst = ``rpm_burst``/``tpm_burst``, default the whole limit, refill
``limit/60`` per second); a reservation charges 1 request and the reserved tokens (prompt + the
caller's ``max_tokens``) on the fitting key with the most headroom, room that refilled after the
key's last admission waits ``RESERVE_MARGIN_SECONDS`` more; with no room, the request sleeps until
the earliest time a key has room (plus up to 5 ms of jitter) as long as its sleeps stay within
``RESERVE_WAIT_SECONDS``, else it is refused (``rate_limited``). The settle after the provider's
answer gives back the unused reserved tokens, never more than the bucket still holds.

Provider side: :class:`router.simulator.limits.QuotaState` itself, the simulator's token buckets
(capacity = the limit), charged the prompt + ``max_tokens`` at admission and settled to the actual
tokens at completion. A provider 429 holds the router's key until the provider's retry time and
the request tries again at once (at most ``max_attempts`` calls).
"""

from __future__ import annotations

import heapq
import math
import random
from dataclasses import dataclass, field

from router.planner.load import Load, arrivals
from router.simulator.limits import Limits, QuotaState, Rejection, Ticket

INF = math.inf
EPS = 1e-6


@dataclass(frozen=True)
class KeyLimits:
    """One key's (one quota group's) limits for the model; ``None`` = no such limit."""

    rpm: int | None = None
    tpm: int | None = None
    rpm_burst: int | None = None
    tpm_burst: int | None = None

    def describe(self) -> str:
        parts = [f"rpm={self.rpm}" if self.rpm else "", f"tpm={self.tpm}" if self.tpm else ""]
        if self.rpm_burst:
            parts.append(f"rpm_burst={self.rpm_burst}")
        if self.tpm_burst:
            parts.append(f"tpm_burst={self.tpm_burst}")
        return " ".join(p for p in parts if p) or "unlimited"


@dataclass(frozen=True)
class RouterParams:
    """The router's settings that shape waits (defaults: the settings' defaults) and the
    provider's mean latency (when reserved tokens come back)."""

    wait_budget: float = 2.0
    retry_budget: float = 60.0
    margin: float = 0.05
    jitter: float = 0.005
    latency: float = 1.0
    max_attempts: int = 5


@dataclass
class Outcome:
    """What happened to the requests that arrived after the warm-up."""

    keys: int
    offered: int = 0
    served: int = 0
    rate_limited: int = 0
    provider_429: int = 0
    waits: list[float] = field(default_factory=list)

    @property
    def goodput(self) -> float:
        return self.served / self.offered if self.offered else 1.0

    def wait_quantile(self, q: float) -> float:
        if not self.waits:
            return 0.0
        ordered = sorted(self.waits)
        return (
            ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)] if q > 0 else ordered[0]
        )

    def as_dict(self) -> dict[str, float | int]:
        return {
            "keys": self.keys,
            "offered": self.offered,
            "served": self.served,
            "goodput": round(self.goodput, 5),
            "wait_p50_s": round(self.wait_quantile(0.5), 4),
            "wait_p95_s": round(self.wait_quantile(0.95), 4),
            "rate_limited": self.rate_limited,
            "provider_429": self.provider_429,
        }


class _Gcra:
    """One router-side limit (``lib_pool.lua``'s gcra_at / gcra_charge / gcra_level)."""

    __slots__ = ("burst", "e", "limit", "tat")

    def __init__(self, limit: int | None, burst: int | None) -> None:
        self.limit = limit or 0
        self.burst = float(burst or limit or 0)
        self.e = 60.0 / limit if limit else 0.0
        self.tat = 0.0

    def at(self, cost: float) -> float:
        if self.limit <= 0:
            return 0.0
        if cost > self.burst:
            return INF
        return self.tat + (cost - self.burst) * self.e

    def charge(self, now: float, cost: float) -> None:
        if self.limit > 0:
            self.tat = max(self.tat, now) + cost * self.e

    def level(self, now: float) -> float:
        return max(0.0, self.tat - now) / self.e if self.limit > 0 else 0.0

    def headroom(self, now: float, cost: float) -> float:
        if self.limit <= 0:
            return 1.0
        return (self.burst - self.level(now) - cost) / self.burst


class _Key:
    """A key on both sides: the router's buckets and the provider's quota state."""

    def __init__(self, limits: KeyLimits, fresh: bool) -> None:
        self.req = _Gcra(limits.rpm, limits.rpm_burst)
        self.tok = _Gcra(limits.tpm, limits.tpm_burst)
        self.last = 0.0
        self.blocked = 0.0
        self.provider = QuotaState(
            Limits(rpm=limits.rpm, tpm=limits.tpm), now=0.0, window=60.0, strict=False, tz="UTC"
        )
        if not fresh:  # drained: every bucket empty at 0, on both sides
            for gcra in (self.req, self.tok):
                gcra.tat = gcra.burst * gcra.e
            for bucket in (self.provider.requests, self.provider.tokens):
                if bucket is not None:
                    bucket.level = 0.0

    def ready_at(self, tokens: float, margin: float) -> float:
        """``limits_at``: when (1 request, ``tokens``) fits, margin included."""
        r_at, t_at = self.req.at(1), self.tok.at(tokens)
        if margin > 0:
            last = self.last + EPS
            req, tok = self.req, self.tok
            if last < r_at < INF and (req.burst - 1) * req.e > margin:
                r_at += margin
            if last < t_at < INF and (tok.burst - tokens) * tok.e > margin:
                t_at += margin
        return max(r_at, t_at, self.blocked)

    def room(self, now: float, tokens: float) -> float:
        return min(self.req.headroom(now, 1), self.tok.headroom(now, tokens))

    def charge(self, now: float, tokens: float) -> None:
        self.req.charge(now, 1)
        self.tok.charge(now, tokens)
        self.last = now

    def give_back(self, now: float, tokens: float) -> None:
        """Settle: unused reserved tokens back, never more than the bucket still holds."""
        back = min(tokens, self.tok.level(now))
        if back > 0:
            self.tok.tat -= back * self.tok.e


@dataclass
class _Request:
    arrival: float
    counted: bool
    waited: float = 0.0
    attempts: int = 0


class _Run:
    def __init__(
        self, pool: list[KeyLimits], load: Load, params: RouterParams, times: list[float] | None
    ) -> None:
        self.times = arrivals(load) if times is None else times
        self.keys = [_Key(limits, load.fresh) for limits in pool]
        self.load, self.params = load, params
        self.rng = random.Random(load.seed + 1)
        self.events: list[tuple[float, int, int, object]] = []
        self.seq = 0
        self.outcome = Outcome(keys=len(pool))

    def push(self, at: float, kind: int, payload: object) -> None:
        self.seq += 1
        heapq.heappush(self.events, (at, self.seq, kind, payload))

    def run(self) -> Outcome:
        for t in self.times:
            request = _Request(t, counted=t >= self.load.warmup)
            self.outcome.offered += request.counted
            self.push(t, 0, request)
        while self.events:
            now, _, kind, payload = heapq.heappop(self.events)
            if kind == 0:
                assert isinstance(payload, _Request)
                self.attempt(now, payload)
            else:
                assert isinstance(payload, tuple)
                self.settle(now, *payload)
        return self.outcome

    def attempt(self, now: float, request: _Request) -> None:
        tokens = float(self.load.reserved)
        margin = self.params.margin
        best, best_room, earliest = None, -INF, INF
        for key in self.keys:
            at = key.ready_at(tokens, margin)
            if at <= now + EPS:
                room = key.room(now, tokens)
                if room > best_room:
                    best, best_room = key, room
            elif at < earliest:
                earliest = at
        if best is None:
            self.wait(now, request, earliest)
        else:
            self.call(now, request, best, tokens)

    def wait(self, now: float, request: _Request, earliest: float) -> None:
        """``RoomWait.until_room``: sleep until the earliest room if the budget covers it."""
        pause = earliest - now
        params = self.params
        # the budget counts the sleeps only (the tries' own time does not count), and the
        # request's deadline is RETRY_BUDGET_SECONDS away
        deadline = request.arrival + params.retry_budget
        if pause > params.wait_budget - request.waited or now + pause + params.jitter > deadline:
            self.outcome.rate_limited += request.counted
            return
        request.waited += pause
        self.push(now + pause + self.rng.uniform(0, params.jitter), 0, request)

    def call(self, now: float, request: _Request, key: _Key, tokens: float) -> None:
        key.charge(now, tokens)
        request.attempts += 1
        admitted = key.provider.admit(now, now, tokens)
        if isinstance(admitted, Rejection):
            self.outcome.provider_429 += request.counted
            key.blocked = now + admitted.retry_after
            if request.attempts < self.params.max_attempts:
                self.push(now, 0, request)
            else:
                self.outcome.rate_limited += request.counted
            return
        if request.counted:
            self.outcome.served += 1
            self.outcome.waits.append(now - request.arrival)
        done = now + self.rng.expovariate(1 / self.params.latency) if self.params.latency else now
        self.push(done, 1, (key, admitted, tokens))

    def settle(self, now: float, key: _Key, ticket: Ticket, tokens: float) -> None:
        actual = float(self.load.tokens_per_request)
        key.provider.settle(ticket, actual, now)
        if tokens > actual:
            key.give_back(now, tokens - actual)
        elif actual > tokens:
            key.tok.charge(now, actual - tokens)


def simulate(
    pool: list[KeyLimits],
    load: Load,
    params: RouterParams | None = None,
    *,
    times: list[float] | None = None,
) -> Outcome:
    """Run ``load`` against a pool of keys with these limits; what the measured requests got.
    ``times``: arrival times to use instead of the load's own draw (a replay of a real run)."""
    return _Run(pool, load, params or RouterParams(), times).run()
