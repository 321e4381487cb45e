"""Helpers for capacity-engine tests: a manual clock, key factories and exhaustion loops."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kernel.errors import AllKeysExhaustedError
from kernel.store import Store
from keys.engine import CapacityEngine, HealthPolicy, Reservation
from keys.models import APIKey
from keys.shards import create_engine
from tests.helpers import PoolShards

T0 = 1_800_000_000.0  # a fixed start (2027-01-15T08:00:00Z); tests move time by hand


@dataclass
class ManualClock:
    now: float = T0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make_key(key_id: str, model: str = "gpt-4o", **fields: Any) -> APIKey:
    """A key of the limits given; it learns none from its provider unless ``learn_limits``
    (these tests settle no provider's figures: tests/keys/test_learned.py does)."""
    fields.setdefault("provider", "openai")
    fields.setdefault("learn_limits", False)
    return APIKey(key_id=key_id, model_name=model, **fields)


def engine_for(store: Store, clock: ManualClock | None = None, **kw: Any) -> CapacityEngine:
    """The engine a pool of POOL_SHARDS shards uses (the test's ``pool_shards``)."""
    kw.setdefault("policy", HealthPolicy())
    return create_engine(store, PoolShards.value, clock=clock, **kw)


async def drain(
    engine: CapacityEngine, model: str, tokens: int = 1, limit: int = 10_000, **kw: Any
) -> list[Reservation]:
    """Reserve until the pool says no; the reservations made."""
    made: list[Reservation] = []
    for _ in range(limit):
        try:
            made.append(await engine.reserve(model, tokens, **kw))
        except AllKeysExhaustedError:
            return made
    raise AssertionError(f"pool never ran out after {limit} reservations")
