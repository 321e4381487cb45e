"""The binding of lua/acquire_limits.lua: the gateway's request limits, all charged or none."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

from lua import Script, load
from lua.runner import Runner

SCRIPT: Script = load("acquire_limits")

Mode = Literal["acquire", "adjust"]


@dataclass(frozen=True, slots=True)
class AcquireKeys:
    """KEYS (one slot): the user's and the global GCRA times, the virtual key's rpm and tpm
    times, its revocation marker, and (optional) this call's id, so a retried call charges
    nothing again."""

    user: str
    everyone: str
    vkey_rpm: str
    vkey_tpm: str
    vkey_revoked: str
    call: str = ""

    def encode(self) -> list[str]:
        keys = [self.user, self.everyone, self.vkey_rpm, self.vkey_tpm, self.vkey_revoked]
        return [*keys, self.call] if self.call else keys


@dataclass(frozen=True, slots=True)
class AcquireArgs:
    """ARGV: now ('' = the store's clock), the mode, the limits per minute (0 = not enforced),
    the tokens (acquire: the estimate; adjust: actual minus estimated), the call's TTL."""

    now: str
    mode: Mode
    user_rpm: int
    global_rpm: int
    vkey_rpm: int
    vkey_tpm: int
    tokens: int
    call_ttl: int = 0

    def encode(self) -> list[object]:
        limits = [self.user_rpm, self.global_rpm, self.vkey_rpm, self.vkey_tpm]
        return [self.now, self.mode, *limits, self.tokens, self.call_ttl]

    def divided(self, divisor: int) -> AcquireArgs:
        """Every limit's share of one of ``divisor`` processes (rounded down, at least 1 when
        set): degraded mode's local store."""

        def share(limit: int) -> int:
            return max(1, int(limit) // divisor) if limit else 0

        return replace(
            self,
            user_rpm=share(self.user_rpm),
            global_rpm=share(self.global_rpm),
            vkey_rpm=share(self.vkey_rpm),
            vkey_tpm=share(self.vkey_tpm),
        )


@dataclass(frozen=True, slots=True)
class AcquireReply:
    """``allowed``; else ``revoked``, or the limit that binds last and the seconds until every
    limit has room (None: the request can never fit)."""

    allowed: bool
    revoked: bool = False
    limit: str = ""
    retry_after: float | None = 0.0


def decode(reply: Sequence[object]) -> AcquireReply:
    code, retry, name = reply
    if int(str(code)) == 1:
        return AcquireReply(True)
    if int(str(code)) == -1:
        return AcquireReply(False, revoked=True, limit="revoked")
    after = float(str(retry))
    return AcquireReply(False, limit=str(name), retry_after=None if after < 0 else after)


async def run(
    runner: Runner, keys: AcquireKeys, args: AcquireArgs, *, local_args: AcquireArgs | None = None
) -> AcquireReply:
    """Run acquire_limits; ``local_args`` on degraded mode's local store (divided limits)."""
    local = None if local_args is None else local_args.encode()
    return decode(await runner.run(SCRIPT, keys.encode(), args.encode(), local_args=local))
