"""The binding of lua/sync_model.lua: make one index's records and sets match the configuration."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from lua import Script, load
from lua.records import Limits, WeightRecord, tiers_list
from lua.reserve import TierSets
from lua.runner import Runner

SCRIPT: Script = load("sync_model")


@dataclass(frozen=True, slots=True)
class SyncKeys:
    """KEYS: the pool's config and health hashes, the set of indexes, the state hash, then per
    tier (every tier in use now or before) its sets. The tiers of the triples go with them."""

    config: str
    health: str
    models: str
    state: str
    tiers: Sequence[TierSets]

    def encode(self) -> list[str]:
        tail = [name for t in self.tiers for name in (t.ready, t.order, t.share)]
        return [self.config, self.health, self.models, self.state, *tail]


@dataclass(frozen=True, slots=True)
class SyncKey:
    """One key serving the index: its tier, quota group, weight (and pattern), encoded tags
    record (lua.records.tags_record) and whether it is active."""

    key_id: str
    tier: int
    group: str
    weight: WeightRecord
    tags: str
    active: bool


@dataclass(frozen=True, slots=True)
class SyncArgs:
    """ARGV: the index, the largest token burst of its keys (-1: one has no tpm limit), the tiers
    in use, the keys, the buckets' limits, now ('' = the store's clock)."""

    index: str
    max_burst: int
    tiers: Sequence[int]
    keys: Sequence[SyncKey]
    buckets: dict[str, Limits]
    now: str

    def encode(self, triple_tiers: Sequence[TierSets]) -> list[object]:
        out: list[object] = [
            self.index,
            self.max_burst,
            tiers_list(self.tiers),
            tiers_list([t.tier for t in triple_tiers]),
            len(self.keys),
        ]
        for k in self.keys:
            out += [k.key_id, k.tier, k.group, k.weight.encode(), k.tags, 1 if k.active else 0]
        out.append(len(self.buckets))
        for name, limits in self.buckets.items():
            out += [name, limits.encode()]
        out.append(self.now)
        return out


@dataclass(frozen=True, slots=True)
class SyncReply:
    """Keys now in the index's sets, and set entries removed."""

    indexed: int
    removed: int


async def run(
    runner: Runner, keys: SyncKeys, args: SyncArgs, *, local_args: SyncArgs | None = None
) -> SyncReply:
    """Run sync_model; ``local_args`` on degraded mode's local store (divided limits)."""
    local = None if local_args is None else local_args.encode(keys.tiers)
    indexed, removed = await runner.run(
        SCRIPT, keys.encode(), args.encode(keys.tiers), local_args=local
    )
    return SyncReply(int(indexed), int(removed))
