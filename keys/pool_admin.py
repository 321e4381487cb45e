"""Live key administration: add, change, (de)activate and remove keys, reload and save the pool.

A change is written to the store's run-time overrides (keys/overrides.py) first, so every process
sharing the store picks it up within a second (``KeyPool.ready``); ``persist`` (or ``save_keys``)
also writes keys.json, after which the saved keys stop being overrides.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from kernel.errors import ConfigError
from keys.config import resolve_keys_path, save_keys_file
from keys.models import APIKey
from keys.pool import KeyPool, log


class PoolAdmin:
    """Changes the pool's keys at run time and persists them."""

    def __init__(self, pool: KeyPool) -> None:
        self.pool = pool

    async def add_key(self, key: APIKey, *, persist: bool = False) -> APIKey:
        """Add a key to the pool of every process (its secret comes from the secret store)."""
        await self.pool.ready()
        if key.key_id in self.pool.keys:
            raise ConfigError(
                f"key id {key.key_id!r} already exists; use update_key",
                entry=key.key_id,
                field="key_id",
            )
        return await self._put(key, persist, "key added")

    async def put_key(self, key: APIKey, *, persist: bool = False) -> APIKey:
        """Add ``key``, or replace the key of its id (document 003's ``keys[id] = key``)."""
        await self.pool.ready()
        replaced = key.key_id in self.pool.keys
        return await self._put(key, persist, "key replaced" if replaced else "key added")

    async def update_key(self, key_id: str, *, persist: bool = False, **changes: Any) -> APIKey:
        """Change a key's metadata (limits, models, tags, active ...) without restart."""
        await self.pool.ready()
        current = self.pool.require(key_id)
        data = {**current.metadata(), **changes, "updated_at": time.time()}
        try:
            updated = APIKey.model_validate(data)
        except ValidationError as exc:
            err = exc.errors()[0]
            raise ConfigError(
                err["msg"], entry=key_id, field=".".join(map(str, err["loc"])) or None
            ) from None
        return await self._put(updated, persist, "key updated")

    async def remove_key(self, key_id: str, *, persist: bool = False) -> None:
        """Remove a key: no new request starts on it; requests in flight on it finish."""
        pool = self.pool
        await pool.ready()
        pool.require(key_id)
        async with pool.lock:
            pool.version = await pool.overrides.remove(key_id)
            await pool.engine.remove_keys([key_id])
            pool.secrets.forget(key_id)
        log.info("key removed", key=pool.masked(key_id))
        if persist:
            await self.save_keys()

    async def _put(self, key: APIKey, persist: bool, event: str) -> APIKey:
        pool = self.pool
        async with pool.lock:
            pool.version = await pool.overrides.put(key)
            await pool.engine.upsert_keys([key])
            pool.sources.setdefault(key.key_id, "runtime")
            pool.strategies.clear()
        log.info(event, key=pool.masked(key.key_id), provider=key.provider, model=key.model_name)
        if persist:
            await self.save_keys()
        return key

    async def reload_keys(self) -> int:
        """Re-read keys.json, the environment and the secret stores (document 004's reload).

        An operator's reload also revives keys disabled after an auth failure: they come back
        only this way, or when their secret is replaced.
        """
        pool = self.pool
        await pool.secrets.refresh()
        async with pool.lock:
            await pool.load(enable_auth_disabled=True)
        log.info("keys reloaded", total=len(pool.keys))
        return len(pool.keys)

    async def save_keys(self, path: str | Path | None = None) -> Path:
        """Write the pool's metadata (never secrets) to keys.json; keys from provider variables
        stay in the environment. Run-time changes now in the file stop being overrides."""
        pool = self.pool
        await pool.ready()
        target = (
            Path(path)
            if path
            else resolve_keys_path(pool.key_store_path, pool.settings) or Path("keys.json")
        )
        saved = [k for k in pool.keys.values() if not pool.from_environment(k)]
        extra: dict[str, Any] = dict(pool.config.routing)
        save_keys_file(target, saved, extra or None)
        if target == (pool.config.path or target):
            async with pool.lock:
                pool.version = await pool.overrides.clear([k.key_id for k in saved])
        log.info("keys saved", path=str(target), count=len(saved))
        return target
