"""The binding of lua/extend_reservation.lua: keep a held reservation alive for another TTL."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, cast

from lua import Script, load
from lua.runner import Runner

SCRIPT: Script = load("extend_reservation")

#: What extending found: still held (now for another TTL), already settled or released (left as
#: it is), or gone (expired, or the store lost it).
Extended = Literal["extended", "settled", "released", "expired"]


@dataclass(slots=True)  # per call: a frozen dataclass costs ~1 us more to build
class ExtendKeys:
    reservation: str

    def encode(self) -> list[str]:
        return [self.reservation]


@dataclass(slots=True)  # per call: a frozen dataclass costs ~1 us more to build
class ExtendArgs:
    """ARGV: the new TTL in whole seconds (>= 1; the script refuses anything else)."""

    ttl: int

    def encode(self) -> list[object]:
        return [self.ttl]


@dataclass(frozen=True, slots=True)
class ExtendReply:
    found: Extended
    #: The TTL set, when extended.
    ttl: int = 0


def decode(reply: Sequence[str]) -> ExtendReply:
    if reply[0] == "extended":
        return ExtendReply("extended", int(reply[1]))
    if reply[0] == "noop" and reply[1] in ("settled", "released"):
        return ExtendReply(cast(Extended, reply[1]))
    return ExtendReply("expired")


async def run(runner: Runner, keys: ExtendKeys, args: ExtendArgs) -> ExtendReply:
    return decode(await runner.run(SCRIPT, keys.encode(), args.encode()))
