"""The binding of lua/record_usage.lua: write the usage record (and its rollups) of a call that
had no settle to carry it: refused before any key was reserved, failed after its last settle, or
served on degraded mode's local store (then also charging its cost to its budgets on the shared
store, once: :class:`BudgetCharge`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from lua import Script, load
from lua.runner import Runner
from lua.usage_records import UsageArgs

SCRIPT: Script = load("record_usage")


@dataclass(frozen=True, slots=True)
class RecordUsageKeys:
    """KEYS of record_usage: the usage stream, the rollup of the record's minute, and (needed
    only with a :class:`BudgetCharge`) the budgets and spend hashes."""

    stream: str
    rollup: str
    budgets: str = ""
    spend: str = ""

    def encode(self) -> list[str]:
        if self.budgets and self.spend:
            return [self.stream, self.rollup, self.budgets, self.spend]
        return [self.stream, self.rollup]


@dataclass(frozen=True, slots=True)
class BudgetCharge:
    """A cost to add to the ``spent`` of the call's budgets (those of ``fields`` that exist), in
    the period current when the script runs: for a call whose cost no settle on the shared store
    charged (served while degraded). ``offsets``: the day offsets, as reserve takes them."""

    fields: Sequence[str]
    cost_nanos: int | None
    offsets: str = ""

    def encode(self) -> list[object]:
        cost = "" if self.cost_nanos is None else int(self.cost_nanos)
        return [",".join(self.fields), cost, self.offsets]


async def run(
    runner: Runner,
    keys: RecordUsageKeys,
    args: UsageArgs,
    *,
    replay: bool = False,
    charge: BudgetCharge | None = None,
) -> None:
    """Write the record (nothing when ``args.record`` is empty); the script answers ``{'ok'}``.
    ``replay``: written on degraded mode's local store, it is written again on the shared store
    when that returns (kernel/failover.py), so records made meanwhile are not lost.
    ``charge`` (needs ``keys.budgets`` and ``keys.spend``): also charge the call's cost to its
    budgets, on the shared store only: a run on the local store writes the record without it
    (the local settle already counted the cost there), its replay charges it. Not idempotent:
    each run on the shared store charges once more."""
    encoded = args.encode()
    if charge is None:
        await runner.run(SCRIPT, keys.encode(), encoded, replay_args=encoded if replay else None)
        return
    if not (keys.budgets and keys.spend):
        raise ValueError("a budget charge needs the budgets and spend keys")
    charged = [*encoded, *charge.encode()]
    await runner.run(
        SCRIPT,
        keys.encode(),
        charged,
        local_args=encoded,
        replay_args=charged if replay else None,
    )
