"""The binding of lua/record_usage.lua: write the usage record (and its rollups) of a call that
had no settle to carry it: refused before any key was reserved, or failed after its last settle."""

from __future__ import annotations

from dataclasses import dataclass

from lua import Script, load
from lua.runner import Runner
from lua.usage_records import UsageArgs

SCRIPT: Script = load("record_usage")


@dataclass(frozen=True, slots=True)
class RecordUsageKeys:
    """KEYS of record_usage: the usage stream, the rollup of the record's minute."""

    stream: str
    rollup: str

    def encode(self) -> list[str]:
        return [self.stream, self.rollup]


async def run(
    runner: Runner, keys: RecordUsageKeys, args: UsageArgs, *, replay: bool = False
) -> None:
    """Write the record (nothing when ``args.record`` is empty); the script answers ``{'ok'}``.
    ``replay``: written on degraded mode's local store, it is written again on the shared store
    when that returns (kernel/failover.py), so records made meanwhile are not lost."""
    encoded = args.encode()
    await runner.run(SCRIPT, keys.encode(), encoded, replay_args=encoded if replay else None)
