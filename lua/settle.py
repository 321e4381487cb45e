"""The binding of lua/settle.lua: charge a reservation's actual tokens and record its outcome;
settle the budgets the reservation holds to the call's actual cost and write its usage record
(lua/lib_usage.lua), all in the one script run."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from lua import Script, load
from lua.runner import Runner
from lua.usage_records import USAGE_ARGC, UsageArgs

SCRIPT: Script = load("settle")


class Policy(Protocol):
    """How failures turn into cooldowns and open circuits (keys.engine.HealthPolicy)."""

    @property
    def cooldown_seconds(self) -> float: ...
    @property
    def cooldown_factor(self) -> float: ...
    @property
    def cooldown_max_seconds(self) -> float: ...
    @property
    def breaker_threshold(self) -> int: ...
    @property
    def breaker_timeout_seconds(self) -> float: ...
    @property
    def unreachable_seconds(self) -> float: ...
    @property
    def unreachable_max_seconds(self) -> float: ...


@dataclass(slots=True)  # per call: a frozen dataclass costs ~1 us more to build
class SettleKeys:
    """KEYS of settle: the reservation, the pool's hashes, the budgets' spend, the usage stream
    and this minute's rollup, then the ready sets the key is in, the reservation's own index
    and tier first."""

    reservation: str
    config: str
    state: str
    windows: str
    health: str
    stats: str
    spend: str
    usage: str
    rollup: str
    ready: Sequence[str]

    def encode(self) -> list[str]:
        head = [self.reservation, self.config, self.state, self.windows, self.health, self.stats]
        return [*head, self.spend, self.usage, self.rollup, *self.ready]


@dataclass(slots=True)  # per call: a frozen dataclass costs ~1 us more to build
class SettleArgs:
    """ARGV of settle (see lua/settle.lua). ``actual_tokens`` None = the estimate; the provider's
    word: ``hold`` seconds, the room in requests and tokens after it (None = not said) and the
    units each may be off by; ``probe``: the reservation is its key's half-open probe.
    ``cost_nanos``: the call's actual cost in nano-dollars (None = the reservation's estimate);
    ``usage``: the call's usage record and what its rollups count (None = no record).
    ``said``: the limits the provider reported (``rpm,tpm,rpd,itpm,otpm``, each "" when not
    said; "" = none: lua/settle.lua "Learned limits"); ``actual_input``/``actual_output``: the
    call's input and output tokens (None = not known: the total's difference goes to output)."""

    actual_tokens: int | None
    outcome: str
    policy: Policy
    now: str
    offsets: str
    retry_after: float | None = None
    scope: str = "minute"
    error_class: str = ""
    provider_limits: str = ""
    hold: float = 0.0
    room_requests: float | None = None
    room_tokens: float | None = None
    tolerance_requests: float = 1.0
    tolerance_tokens: float = 1.0
    probe: bool = False
    cost_nanos: int | None = None
    usage: UsageArgs | None = None
    said: str = ""
    actual_input: int | None = None
    actual_output: int | None = None

    def encode(self) -> list[object]:
        p, retry_after = self.policy, self.retry_after
        return [
            "" if self.actual_tokens is None else int(self.actual_tokens),
            self.outcome,
            "" if retry_after is None else repr(max(0.0, float(retry_after))),
            self.scope,
            p.cooldown_seconds,
            p.cooldown_factor,
            p.cooldown_max_seconds,
            p.breaker_threshold,
            p.breaker_timeout_seconds,
            self.error_class or self.outcome,
            self.now,
            self.offsets,
            self.provider_limits,
            repr(float(self.hold)) if self.hold > 0 else "",
            "" if self.room_requests is None else repr(float(self.room_requests)),
            "" if self.room_tokens is None else repr(float(self.room_tokens)),
            repr(float(self.tolerance_requests)),
            repr(float(self.tolerance_tokens)),
            "1" if self.probe else "",
            p.unreachable_seconds,
            p.unreachable_max_seconds,
            "" if self.cost_nanos is None else max(0, int(self.cost_nanos)),
            self.said,
            "" if self.actual_input is None else max(0, int(self.actual_input)),
            "" if self.actual_output is None else max(0, int(self.actual_output)),
            *(NO_USAGE if self.usage is None else self.usage.encode()),
        ]


#: The usage segment of a settle that writes no record.
NO_USAGE: tuple[object, ...] = ("",) * USAGE_ARGC


@dataclass(slots=True)  # per call: a frozen dataclass costs ~1 us more to build
class Settled:
    """The reservation was settled: the tokens recorded, the key's state after (and before) with
    its end, the tokens the reservation still holds, the store's time, and the limits configured
    above what the provider reported, newly (``rpm=120>60;...``; "" none: warn once)."""

    key_id: str
    tokens: int
    state: str
    until: float
    charged: float
    previous_state: str
    now: float
    above: str = ""


@dataclass(frozen=True, slots=True)
class NotSettled:
    """Nothing done: the reservation was already settled or released (``state``), or expired
    (``state`` = 'expired')."""

    state: str


SettleReply = Settled | NotSettled


def decode(reply: Sequence[str]) -> SettleReply:
    if reply[0] == "settled":
        key_id, tokens, state, until, charged, before, now = reply[1:8]
        above = reply[8] if len(reply) > 8 else ""
        return Settled(
            key_id, int(tokens), state, float(until), float(charged), before, float(now), above
        )
    return NotSettled(reply[-1])


async def run(runner: Runner, keys: SettleKeys, args: SettleArgs) -> SettleReply:
    return decode(await runner.run(SCRIPT, keys.encode(), args.encode()))
