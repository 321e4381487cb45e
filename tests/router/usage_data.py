"""Usage records and rollups written straight into a store with the contract codecs, as the
settle script writes them (kernel/usage_record.py, lua/usage_records.py)."""

from __future__ import annotations

import itertools
import zlib
from collections.abc import Mapping

from kernel.redis_keys import RedisKeys
from kernel.store import Store
from kernel.usage_record import UsageRecord
from lua.usage_records import Rollup, rollup_field, usd_to_nanos

_turn = itertools.count()


def _slot(store: Store, seed: str) -> int:
    """Where a record goes: the pool's slot, or (POOL_SHARDS > 1) one of the slots usage is
    written in, spread as a sharded pool's settles spread them (readers must merge them all)."""
    return zlib.crc32(seed.encode()) % len(store.keys.usage_views())


def _view(store: Store, seed: str) -> RedisKeys:
    return store.keys.usage_views()[_slot(store, seed)]


async def add_record(store: Store, record: UsageRecord, stream_id: str = "*") -> str:
    """XADD one record (field ``r``); answers its id as readers give it (the stream id, and
    ``.<slot>`` when the pool is sharded: router/usage_export.py)."""
    slot = _slot(store, record.request_id)
    stream = store.keys.usage_views()[slot].usage_stream
    added = str(await store.client.xadd(stream, {"r": record.to_json()}, id=stream_id))
    return added if len(store.keys.usage_views()) == 1 else f"{added}.{slot}"


def id_order(record_id: str) -> tuple[int, ...]:
    """The order of the ids readers give: ``ms-seq`` and, in a sharded pool, ``.slot``."""
    return tuple(int(part) for part in record_id.replace("-", ".").split("."))


def record(ts: float, n: int, **fields: object) -> UsageRecord:
    values: dict[str, object] = {"model": "gpt-4o-mini", "requested_model": "gpt-4o-mini"}
    values.update(fields)
    return UsageRecord(ts=ts, request_id=f"req-{n}", **values)  # type: ignore[arg-type]


async def add_call(
    store: Store,
    minute: int,
    names: Mapping[str, str],
    tokens_in: int = 0,
    tokens_out: int = 0,
    cost_usd: float = 0.0,
    error: bool = False,
) -> None:
    """Count one call in a minute's rollup: under ``all|`` and under each of its names."""
    key = _view(store, str(next(_turn))).usage_rollup(minute)
    call = Rollup(1, tokens_in, tokens_out, usd_to_nanos(cost_usd), int(error))
    for field in [rollup_field("all", ""), *(rollup_field(d, n) for d, n in names.items())]:
        current = Rollup.decode(await store.client.hget(key, field))
        await store.client.hset(key, field, (current + call).encode())
