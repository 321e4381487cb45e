"""Key changes made at run time (admin API, ``add_key``/``remove_key``), shared by every process.

keys.json and the environment are each process's starting point; changes made while running are
kept in Redis as overrides layered on top, with a version counter. Every process checks the
version at most once a second and reloads when it moved, so a key added through one gateway worker
is served by all of them, and a removed key stops receiving requests everywhere.

They live only in Redis: while the store is degraded (kernel/failover.py) they cannot be changed
(StoreError), and a process that started degraded serves without them until Redis answers.
"""

from __future__ import annotations

import json

from pydantic import ValidationError

from kernel.errors import ConfigError
from kernel.store import Store
from keys.models import APIKey

REMOVED = "removed"


class Overrides:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.names = store.keys

    async def version(self) -> int:
        return int(await self.store.call(lambda c: c.get(self.names.pool_version)) or 0)

    async def load(self) -> dict[str, APIKey | None]:
        """key_id -> the key as changed, or None when it was removed."""
        raw = await self.store.call(lambda c: c.hgetall(self.names.pool_overrides))
        out: dict[str, APIKey | None] = {}
        for key_id, value in raw.items():
            if value == REMOVED:
                out[key_id] = None
                continue
            try:
                out[key_id] = APIKey.model_validate(json.loads(value))
            except (ValueError, ValidationError) as exc:
                raise ConfigError(
                    f"unreadable run-time change: {exc}",
                    source=self.names.pool_overrides,
                    entry=key_id,
                ) from None
        return out

    async def put(self, key: APIKey) -> int:
        value = json.dumps(key.metadata())
        await self.store.call(
            self.store.client.hset(self.names.pool_overrides, key.key_id, value), shared_only=True
        )
        return await self._bump()

    async def remove(self, key_id: str) -> int:
        await self.store.call(
            self.store.client.hset(self.names.pool_overrides, key_id, REMOVED), shared_only=True
        )
        return await self._bump()

    async def clear(self, key_ids: list[str]) -> int:
        if key_ids:
            await self.store.call(
                self.store.client.hdel(self.names.pool_overrides, *key_ids), shared_only=True
            )
        return await self._bump()

    async def _bump(self) -> int:
        version = self.store.client.incr(self.names.pool_version)
        return int(await self.store.call(version, shared_only=True))
