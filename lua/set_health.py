"""The binding of lua/set_health.lua: an operator's (or the router's) change of a key's health."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from lua import Script, load
from lua.runner import Runner, number

SCRIPT: Script = load("set_health")

#: cooldown, clear (cooldown, circuit and provider blocks), disable, enable, reset (clear and
#: every breaker state): see lua/set_health.lua.
Action = Literal["cooldown", "clear", "disable", "enable", "reset"]


@dataclass(frozen=True, slots=True)
class SetHealthKeys:
    """KEYS: the pool's config, state and health hashes, then every ready set the key is in."""

    config: str
    state: str
    health: str
    ready: Sequence[str]

    def encode(self) -> list[str]:
        return [self.config, self.state, self.health, *self.ready]


@dataclass(frozen=True, slots=True)
class SetHealthArgs:
    """ARGV: the key, the action, its seconds and reason, now ('' = the store's clock), and the
    key's buckets (whose provider blocks clear/reset lift)."""

    key_id: str
    action: Action
    seconds: float = 0.0
    reason: str = ""
    now: str = ""
    buckets: Sequence[str] = ()

    def encode(self) -> list[object]:
        buckets = ",".join(self.buckets)
        return [self.key_id, self.action, number(self.seconds), self.reason, self.now, buckets]


@dataclass(frozen=True, slots=True)
class SetHealthReply:
    """The key's health after the action."""

    state: str
    until: float
    reason: str


async def run(runner: Runner, keys: SetHealthKeys, args: SetHealthArgs) -> SetHealthReply:
    state, until, reason = await runner.run(SCRIPT, keys.encode(), args.encode())
    return SetHealthReply(state, float(until), reason)
