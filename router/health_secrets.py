"""The secret store's part of ``python -m router --health-check``: can the keys be read?

As the gateway's ``/health/ready`` does, the configured store (Vault, AWS, Azure, Infisical, a
file) is asked whether it can be used now (``SecretStore.health_check``); then, when it can, the
secret of every active keys.json key is read (uncached: what a start would read) and every
``sources`` folder is listed (the keys it discovers). A store that does not answer, refuses, or
holds none of the active keys' secrets makes the check fail, with a line naming the store and the
error (never a secret: errors carry causes and names only, and are masked once more here).
The whole check is bounded by twice ``SECRET_STORE_TIMEOUT_SECONDS`` (a listener that never
answers cannot hang a container's probe).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from kernel.errors import SecretStoreError
from kernel.masking import redact
from kernel.settings import Settings
from keys.config import KeyConfig
from keys.discovery import KeyDiscovery
from keys.models import APIKey
from keys.secret_store import SecretStore, create_secret_store

_READ_CONCURRENCY = 8


@dataclass
class SecretHealth:
    """The report's ``secret_store`` section, the active keys whose secret could not be read, and
    the errors and warnings for the report."""

    section: dict[str, Any]
    missing: list[str] | None = None
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


async def secret_store_health(config: KeyConfig, settings: Settings) -> SecretHealth:
    """Check the configured secret store (nothing to check for ``env`` without ``sources``:
    the environment is read by the keys section)."""
    kind = settings.SECRET_STORE_TYPE
    if kind == "env" and not config.sources:
        return SecretHealth({"type": kind})
    try:
        store = create_secret_store(settings)
    except SecretStoreError as exc:
        return SecretHealth({"type": kind, "ok": False}, errors=[_line(kind, exc)])
    limit = 2 * settings.SECRET_STORE_TIMEOUT_SECONDS
    try:
        async with asyncio.timeout(limit):
            return await _check(store, config, kind)
    except TimeoutError:
        error = f"secret store {store.backend}: no answer in {limit:g}s"
        return SecretHealth({"type": kind, "backend": store.backend, "ok": False}, errors=[error])
    finally:
        await store.close()


async def _check(store: SecretStore, config: KeyConfig, kind: str) -> SecretHealth:
    answer = await store.health_check()
    health = SecretHealth({"type": kind, "backend": store.backend, "ok": bool(answer["ok"])})
    if not answer["ok"]:
        health.section["error"] = redact(str(answer["error"]))
        health.errors.append(f"secret store {store.backend}: {health.section['error']}")
        return health
    if kind != "env":
        health.missing = await _unreadable(store, [k for k in config.keys if k.active])
    health.section["sources"] = [await _source(store, src, health) for src in config.sources]
    return health


async def _unreadable(store: SecretStore, keys: list[APIKey]) -> list[str]:
    """Ids of the keys whose secret the store does not give (missing, denied, failing)."""
    gate = asyncio.Semaphore(_READ_CONCURRENCY)

    async def readable(key: APIKey) -> bool:
        async with gate:
            try:
                await store.read_uncached(key)
            except SecretStoreError:
                return False
            return True

    results = await asyncio.gather(*(readable(k) for k in keys))
    return [k.key_id for k, ok in zip(keys, results, strict=True) if not ok]


async def _source(store: SecretStore, source: Any, health: SecretHealth) -> dict[str, Any]:
    """One ``sources`` folder listed: its key count, or the error (a failure of the check)."""
    entry: dict[str, Any] = {"path": source.path, "provider": source.provider}
    try:
        found = await KeyDiscovery(store, [source]).discover()
    except SecretStoreError as exc:
        entry.update(ok=False, error=redact(str(exc)))
        health.errors.append(
            f"secret store {store.backend}: source {source.path}: {entry['error']}"
        )
        return entry
    entry.update(ok=True, keys=len(found))
    if not found:
        health.warnings.append(f"source {source.path} ({store.backend}): no keys found")
    return entry


def _line(kind: str, exc: SecretStoreError) -> str:
    return f"secret store {kind}: {redact(str(exc))}"
