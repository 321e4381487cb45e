"""The binding of lua/reserve_admitted.lua: the gateway's request limits (acquire_limits.lua's KEYS
and ARGV) and reserve in one script run. Answers the limits' refusal (an ``AcquireReply`` not
allowed: nothing reserved) or reserve's reply (the limits allowed: charged, or already charged by
this call's id)."""

from __future__ import annotations

from collections.abc import Sequence

from lua import Script, acquire_limits, load
from lua import reserve as lua_reserve
from lua.acquire_limits import AcquireArgs, AcquireKeys, AcquireReply
from lua.reserve import ReserveArgs, ReserveKeys, ReserveReply
from lua.runner import WhereRunner

SCRIPT: Script = load("reserve_admitted")


def decode(reply: Sequence[str]) -> ReserveReply | AcquireReply:
    if reply[0] == "limited":
        return acquire_limits.decode(reply[1:])
    return lua_reserve.decode(reply)


async def run_where(
    runner: WhereRunner,
    keys: ReserveKeys,
    reservation: str,
    args: ReserveArgs,
    limits: tuple[AcquireKeys, AcquireArgs, AcquireArgs | None],
) -> tuple[ReserveReply | AcquireReply, bool]:
    """Run reserve_admitted (``limits``: the limits' KEYS, ARGV and degraded mode's ARGV, every
    limit divided); also whether it ran on degraded mode's local store."""
    limit_keys, limit_args, local_limit_args = limits
    head = args.encode(keys.tiers_arg)
    local = None if local_limit_args is None else [*head, *local_limit_args.encode()]
    reply, where = await runner.run_where(
        SCRIPT,
        [*keys.encode(reservation), *limit_keys.encode()],
        [*head, *limit_args.encode()],
        local_args=local,
    )
    return decode(reply), where


run = run_where
