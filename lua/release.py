"""The binding of lua/release.lua: give back a reservation whose call never left."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from lua import Script, load
from lua.runner import Runner

SCRIPT: Script = load("release")


@dataclass(slots=True)  # per call: a frozen dataclass costs ~1 us more to build
class ReleaseKeys:
    """KEYS of release: the reservation, the pool's hashes, the ready set of its index and tier,
    the budgets' spend (the reservation's budgets get their estimate back)."""

    reservation: str
    config: str
    state: str
    windows: str
    stats: str
    ready: str
    spend: str

    def encode(self) -> list[str]:
        head = [self.reservation, self.config, self.state, self.windows, self.stats]
        return [*head, self.ready, self.spend]


@dataclass(slots=True)  # per call: a frozen dataclass costs ~1 us more to build
class ReleaseArgs:
    """ARGV of release: now ('' = the store's clock), the day-reset calendars."""

    now: str
    offsets: str

    def encode(self) -> list[object]:
        return [self.now, self.offsets]


@dataclass(frozen=True, slots=True)
class ReleaseReply:
    """``released``: this call gave it back; else ``state`` says why not (settled, released,
    expired)."""

    released: bool
    key_id: str = ""
    state: str = "released"


def decode(reply: Sequence[str]) -> ReleaseReply:
    if reply[0] == "released":
        return ReleaseReply(True, reply[1])
    return ReleaseReply(False, state=reply[-1])


async def run(runner: Runner, keys: ReleaseKeys, args: ReleaseArgs) -> ReleaseReply:
    return decode(await runner.run(SCRIPT, keys.encode(), args.encode()))
