"""The binding of lua/budget_hold.lua: a call's budgets held in the budgets' slot when the pool is
sharded (POOL_SHARDS > 1, keys/shards.py), then settled or refunded there."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from lua import Script, load
from lua.reserve import BudgetExceeded, decode
from lua.runner import Runner

SCRIPT: Script = load("budget_hold")


@dataclass(frozen=True, slots=True)
class HoldKeys:
    """KEYS of budget_hold: the budgets, their spend, and the reservation's hold."""

    budgets: str
    spend: str
    hold: str

    def encode(self) -> list[str]:
        return [self.budgets, self.spend, self.hold]


@dataclass(frozen=True, slots=True)
class Held:
    """The estimate is held on every budget that applies; ``alerts``: the fields whose alert
    share this call crossed."""

    alerts: tuple[str, ...] = ()


async def run(runner: Runner, keys: HoldKeys, args: Sequence[object]) -> list[str]:
    """Run budget_hold with ``args`` (action first); its raw reply (see :func:`hold`, :func:`settle`)."""
    return list(await runner.run(SCRIPT, keys.encode(), args))


async def hold(
    runner: Runner,
    keys: HoldKeys,
    *,
    fields: Sequence[str],
    cost_nanos: int | None,
    ttl: int,
    now: str = "",
    offsets: str = "",
) -> Held | BudgetExceeded:
    """Hold ``cost_nanos`` (None: unknown, refused wherever a budget applies) on the budgets of
    ``fields``; idempotent per hold key."""
    cost = "" if cost_nanos is None else max(0, int(cost_nanos))
    reply = await run(runner, keys, ["hold", now, offsets, ",".join(fields), cost, int(ttl)])
    if reply[0] == "ok":
        alerts = str(reply[1]) if len(reply) > 1 else ""
        return Held(tuple(a for a in alerts.split(",") if a))
    refused = decode(reply)
    if not isinstance(refused, BudgetExceeded):
        raise ValueError(f"unexpected budget_hold reply {reply!r}")
    return refused


async def settle(
    runner: Runner,
    keys: HoldKeys,
    *,
    cost_nanos: int | None = None,
    refund: bool = False,
    now: str = "",
    offsets: str = "",
) -> bool:
    """Settle the hold to ``cost_nanos`` (None: its estimate), or give it all back (``refund``);
    idempotent: False when nothing was held any more."""
    cost = "" if cost_nanos is None else max(0, int(cost_nanos))
    reply = await run(runner, keys, ["refund" if refund else "settle", now, offsets, cost])
    return bool(reply[0] == "ok")
