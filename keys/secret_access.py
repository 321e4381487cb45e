"""Document 004's troubleshooting helper: is a key's secret readable, and if not, why?

``test_secret_access(key_id)`` (callable without an event loop), ``await check_secret_access(...)``
and ``describe_secret_access(store, key)`` (used by ``llm-router secrets check`` too). Their public
path is :mod:`keys.secret_store`, which re-exports them. No answer carries a secret: a fingerprint
(8 hex digits of its SHA-256) tells two secrets apart.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from kernel.errors import SecretStoreError
from kernel.settings import Settings
from keys.config import load_key_config
from keys.config_env import fingerprint
from keys.models import APIKey

if TYPE_CHECKING:
    from keys.secret_store import SecretStore


async def check_secret_access(
    key_id: str,
    *,
    keys_path: str | os.PathLike[str] | None = None,
    settings: Settings | None = None,
    environ: Mapping[str, str] | None = None,
    store: SecretStore | None = None,
) -> dict[str, Any]:
    """Document 004's troubleshooting helper: is ``key_id``'s secret readable, and if not why?

    Answers ``{"key_id", "configured", "backend", "location", "found", "status", "cause",
    "detail", "fingerprint"}``; ``status`` is ``found``, ``missing`` or ``error``. The secret is
    never returned: ``fingerprint`` (8 hex digits of its SHA-256) tells two secrets apart.
    """
    from keys.secret_store import create_secret_store  # it re-exports this module: import late

    env = os.environ if environ is None else environ
    settings = settings or Settings.from_env(env)
    own_store = store is None
    store = store or create_secret_store(settings, env)
    try:
        config = load_key_config(keys_path, environ=env, settings=settings)
        key = config.by_id().get(key_id)
        if key is None and config.path is not None:
            key = await _discovered_key(store, config.path, key_id)
        configured = key is not None
        if key is None:  # not configured: look where the backend's convention would
            key = APIKey.model_validate({"key_id": key_id, "provider": "openai", "model_name": "*"})
        return await describe_secret_access(store, key, configured=configured)
    finally:
        if own_store:
            await store.close()


def test_secret_access(key_id: str, **kwargs: Any) -> dict[str, Any]:
    """Document 004's helper, callable as it shows it, without an event loop::

        python -c "from keys.secret_store import test_secret_access; print(test_secret_access('id'))"

    Inside a running event loop, ``await check_secret_access(...)`` instead (same arguments).
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(check_secret_access(key_id, **kwargs))
    raise RuntimeError(
        "test_secret_access() inside an event loop: await check_secret_access() instead"
    )


test_secret_access.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


async def _discovered_key(
    store: SecretStore, keys_path: os.PathLike[str], key_id: str
) -> APIKey | None:
    """``key_id`` among the keys discovered from keys.json's ``sources`` (None if not there)."""
    from keys.discovery import KeyDiscovery, load_sources

    sources = load_sources(keys_path)
    if not sources:
        return None
    try:
        found = await KeyDiscovery(store, sources).discover()
    except SecretStoreError:
        return None  # the listing failed: the caller reports the key as not configured
    return next((k for k in found if k.key_id == key_id), None)


async def describe_secret_access(
    store: SecretStore, key: APIKey, *, configured: bool = True
) -> dict[str, Any]:
    """The answer of :func:`test_secret_access` for one key (used by ``secrets check`` too)."""
    backend, location = store.where(key)
    answer: dict[str, Any] = {
        "key_id": key.key_id,
        "configured": configured,
        "active": key.active,
        "backend": backend,
        "location": location,
        "found": False,
        "status": "missing",
        "cause": None,
        "detail": "",
        "fingerprint": None,
    }
    try:
        value = await store.read_uncached(key)
    except SecretStoreError as exc:
        answer.update(
            status="missing" if exc.cause == "not_found" else "error",
            cause=exc.cause,
            detail=str(exc),
        )
        return answer
    if backend == store.backend:
        location = store.impl.found_in(key)
    answer.update(found=True, status="found", location=location, fingerprint=fingerprint(value))
    return answer
