"""Secret stores: one async interface over every backend, with a cache refreshed in the background.

    store = create_secret_store(settings)   # SECRET_STORE_TYPE: env file vault aws azure infisical
    secret = await store.get_secret(key)    # cached after the first read
    store.subscribe(on_changes)             # told which key ids were added / changed / removed
    await store.start()                     # refresh every SECRET_REFRESH_INTERVAL (300 s)

Which secret a key uses: a ``secret_ref`` starting with ``env:`` is always read from the
environment, whatever the backend; otherwise ``secret_ref`` is the backend's name for the secret;
without one, the backend's convention by key id (docs/secret-stores.md).

Refresh: every secret handed out so far, and every folder watched for discovery, is read again.
A new value replaces the old one atomically (requests in flight keep the value they already hold);
a secret that disappeared is reported removed; a read that *fails* (store unreachable, access
denied) keeps the last good value and logs a warning. Missing secrets are remembered until the next
refresh so a key without a secret does not hit the store on every request.

Every value handed out is registered with :func:`kernel.masking.register_secret`, so logs mask it
even when it matches no known key pattern. No error, log line or health answer carries a value.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import random
import time
from collections.abc import Awaitable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

from kernel.errors import SecretStoreError
from kernel.log import get_logger
from kernel.masking import register_secret
from kernel.settings import Settings
from keys.backends import SecretBackend, create_backend
from keys.backends.base import clean_secret
from keys.config_env import env_secret_by_ref
from keys.models import APIKey
from keys.secret_access import (  # the troubleshooting helper's public path is this module
    check_secret_access,
    describe_secret_access,
    test_secret_access,
)
from keys.secret_records import ChangeCallback, KeyIdFor, SecretChanges
from keys.secret_records import Entry as _Entry
from keys.secret_records import Watch as _Watch

log = get_logger("keys.secret_store")
T = TypeVar("T")

#: Failures remembered until the next refresh (retrying at once would not help).
_STICKY_CAUSES = frozenset({"not_found", "denied", "malformed", "config"})
_REFRESH_CONCURRENCY = 8


class SecretStore:
    """Cache, refresh and change notification around one :class:`SecretBackend`."""

    def __init__(
        self,
        impl: SecretBackend,
        *,
        refresh_interval: float = 300.0,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        if refresh_interval <= 0:
            raise ValueError("refresh_interval must be positive")
        self.impl = impl
        self.refresh_interval = refresh_interval
        self.environ: Mapping[str, str] = os.environ if environ is None else environ
        self._entries: dict[str, _Entry] = {}
        self._watches: dict[str, _Watch] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._refresh_lock = asyncio.Lock()
        self._subscribers: list[ChangeCallback] = []
        self._task: asyncio.Task[None] | None = None
        self.last_refresh: float | None = None
        self.last_refresh_ok: bool | None = None

    @property
    def backend(self) -> str:
        return self.impl.name

    def __repr__(self) -> str:
        return f"SecretStore(backend={self.backend!r}, cached={len(self._entries)})"

    # -- reading -----------------------------------------------------------------------------------
    async def get_secret(self, key: APIKey) -> str:
        """``key``'s secret, from the cache when possible; raises :class:`SecretStoreError`."""
        entry = self._entries.get(key.key_id)
        if entry is not None and entry.secret_ref == key.secret_ref:
            if entry.value is not None:
                return entry.value
            if entry.error is not None:
                raise entry.error
        lock = self._locks.setdefault(key.key_id, asyncio.Lock())
        async with lock:  # one read per key at a time: a cold cache under load reads once
            entry = self._entries.get(key.key_id)
            if entry is not None and entry.secret_ref == key.secret_ref:
                if entry.value is not None:
                    return entry.value
                if entry.error is not None:
                    raise entry.error
            return await self._load(key)

    def where(self, key: APIKey) -> tuple[str, str]:
        """(backend, location) of ``key``'s secret, for messages: never the value."""
        ref = key.secret_ref
        if ref and ref.startswith("env:"):
            return "env", f"environment variable {ref.removeprefix('env:')}"
        return self.backend, self.impl.locate(key)

    async def read_uncached(self, key: APIKey) -> str:
        """Read ``key``'s secret from the store now, bypassing and not filling the cache."""
        return await self._read(key)

    async def list_secrets(self, path: str | None = None) -> dict[str, str]:
        """Every secret in ``path`` (a folder or prefix; default: the backend's): name -> value."""
        listing = await self._guard(self.impl.list_secrets(path), None)
        cleaned = {}
        for name, value in listing.items():
            try:
                cleaned[name] = clean_secret(value, self.backend, None)
            except SecretStoreError as exc:
                log.warning(
                    "secret_skipped", backend=self.backend, path=path, name=name, cause=exc.cause
                )
                continue
            register_secret(cleaned[name])
        return cleaned

    def ref_for(self, path: str | None, name: str) -> str:
        """The ``secret_ref`` of secret ``name`` in folder ``path`` (for discovered keys)."""
        return self.impl.ref_for(path, name)

    async def watch(self, path: str | None, key_id_for: KeyIdFor) -> dict[str, str]:
        """List ``path`` now and at every refresh; returns {key id: secret name} of what was found.

        ``key_id_for(name)`` gives the key id of a listed secret, or None to ignore it. Changes to
        the listing are reported to subscribers under those key ids.
        """
        listing = await self.list_secrets(path)
        watch = _Watch(key_id_for)
        self._watches[path or ""] = watch
        self._apply_listing(path or "", watch, listing, set(), set(), set())
        return {kid: name for name, kid in watch.names.items()}

    def forget(self, key_id: str) -> None:
        """Stop caching and refreshing ``key_id`` (the key left the pool)."""
        self._entries.pop(key_id, None)
        self._locks.pop(key_id, None)

    # -- refresh -----------------------------------------------------------------------------------
    def subscribe(self, callback: ChangeCallback) -> None:
        """Call ``callback(changes)`` (sync or async) after every refresh that changed something."""
        self._subscribers.append(callback)

    async def refresh(self) -> SecretChanges:
        """Read every cached and watched secret again; report and publish what changed."""
        async with self._refresh_lock:
            added: set[str] = set()
            changed: set[str] = set()
            removed: set[str] = set()
            failures = 0
            for path, watch in list(self._watches.items()):
                try:
                    listing = await self.list_secrets(path or None)
                except SecretStoreError as exc:
                    failures += 1
                    self._warn_failed(exc, path=path or "/")
                    continue
                self._apply_listing(path, watch, listing, added, changed, removed)
            failures += await self._refresh_keys(added, changed, removed)
            self.last_refresh = time.time()
            self.last_refresh_ok = failures == 0
            changes = SecretChanges(frozenset(added), frozenset(changed), frozenset(removed))
        if changes:
            log.info("secrets_changed", backend=self.backend, **changes.as_dict())
            await self._publish(changes)
        return changes

    async def start(self) -> None:
        """Refresh in the background every ``refresh_interval`` seconds (±10 % jitter)."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(
                self._refresh_loop(), name=f"secret-refresh-{self.backend}"
            )

    async def close(self) -> None:
        """Stop the background refresh and release the backend's connections."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.impl.close()

    async def health_check(self) -> dict[str, Any]:
        """``{"backend", "ok", "error", ...}``: can the store be used now? Never a secret."""
        answer: dict[str, Any] = {"backend": self.backend, "ok": True, "error": None, "cause": None}
        try:
            await self._guard(self.impl.ping(), None)
        except SecretStoreError as exc:
            answer.update(ok=False, error=str(exc), cause=exc.cause)
        answer.update(
            self.impl.describe(),
            cached=sum(1 for e in self._entries.values() if e.value is not None),
            watched_paths=sorted(p or "/" for p in self._watches),
            refresh_interval=self.refresh_interval,
            last_refresh=(
                datetime.fromtimestamp(self.last_refresh, UTC).isoformat(timespec="seconds")
                if self.last_refresh
                else None
            ),
            last_refresh_ok=self.last_refresh_ok,
        )
        return answer

    # -- internals ---------------------------------------------------------------------------------
    async def _load(self, key: APIKey) -> str:
        try:
            value = await self._read(key)
        except SecretStoreError as exc:
            if exc.cause in _STICKY_CAUSES:
                self._entries[key.key_id] = _Entry(key.secret_ref, key=key, error=exc)
            raise
        self._entries[key.key_id] = _Entry(key.secret_ref, key=key, value=value)
        return value

    async def _read(self, key: APIKey) -> str:
        ref = key.secret_ref
        if ref and ref.startswith("env:"):
            raw = env_secret_by_ref(ref, self.environ)
            if raw is None:
                raise SecretStoreError(
                    "env",
                    key.key_id,
                    "not_found",
                    f"variable {ref.removeprefix('env:')} is not set",
                )
            backend = "env"
        else:
            raw = await self._guard(self.impl.read(key), key.key_id)
            backend = self.backend
        value = clean_secret(raw, backend, key.key_id)
        register_secret(value)
        return value

    async def _guard(self, call: Awaitable[T], key_id: str | None) -> T:
        """Await a backend call; anything but a SecretStoreError becomes one (named, no message)."""
        try:
            return await call
        except SecretStoreError:
            raise
        except Exception as exc:
            raise SecretStoreError(self.backend, key_id, "unreachable", type(exc).__name__) from exc

    async def _refresh_keys(self, added: set[str], changed: set[str], removed: set[str]) -> int:
        keys = [e.key for e in self._entries.values() if e.key is not None and e.listing is None]
        gate = asyncio.Semaphore(_REFRESH_CONCURRENCY)

        async def one(key: APIKey) -> tuple[APIKey, str | SecretStoreError]:
            async with gate:
                try:
                    return key, await self._read(key)
                except SecretStoreError as exc:
                    return key, exc

        failures = 0
        for key, outcome in await asyncio.gather(*(one(k) for k in keys)):
            old = self._entries.get(key.key_id)
            if old is None or old.key is not key:
                continue  # forgotten or replaced while we were reading
            if isinstance(outcome, str):
                if old.value is None:
                    added.add(key.key_id)
                elif old.value != outcome:
                    changed.add(key.key_id)
                self._entries[key.key_id] = _Entry(key.secret_ref, key=key, value=outcome)
            elif outcome.cause == "not_found" or old.value is None:
                if old.value is not None:
                    removed.add(key.key_id)
                self._entries[key.key_id] = _Entry(key.secret_ref, key=key, error=outcome)
            else:
                failures += 1  # keep the last good value
                self._warn_failed(outcome, key_id=key.key_id)
        return failures

    def _apply_listing(
        self,
        path: str,
        watch: _Watch,
        listing: dict[str, str],
        added: set[str],
        changed: set[str],
        removed: set[str],
    ) -> None:
        names: dict[str, str] = {}
        for name, value in listing.items():
            kid = watch.key_id_for(name)
            if kid is None:
                continue
            names[name] = kid
            old = self._entries.get(kid)
            if old is None or old.value is None:
                added.add(kid)
            elif old.value != value:
                changed.add(kid)
            ref = self.impl.ref_for(path or None, name)
            self._entries[kid] = _Entry(ref, value=value, listing=path)
        for name, kid in watch.names.items():
            if name not in names:
                removed.add(kid)
                self._entries.pop(kid, None)
        watch.names = names

    def _warn_failed(self, exc: SecretStoreError, **where: str) -> None:
        log.warning(
            "secret_refresh_failed",
            backend=exc.backend,
            cause=exc.cause,
            detail=exc.detail,
            kept="last good value",
            **where,
        )

    async def _publish(self, changes: SecretChanges) -> None:
        for callback in list(self._subscribers):
            try:
                result = callback(changes)
                if inspect.isawaitable(result):
                    await result
            except Exception as exc:
                log.error("secret_change_callback_failed", error=f"{type(exc).__name__}: {exc}")

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_interval * random.uniform(0.9, 1.1))
            try:
                await self.refresh()
            except Exception as exc:  # never let the loop die; the next round tries again
                log.error("secret_refresh_crashed", backend=self.backend, error=type(exc).__name__)


def create_secret_store(
    settings: Settings,
    environ: Mapping[str, str] | None = None,
    *,
    backend: str | None = None,
    **options: Any,
) -> SecretStore:
    """The store named by ``SECRET_STORE_TYPE`` (or ``backend``), configured from ``settings``.

    ``options`` go to the backend (for Azure: ``credential``, ``client_kwargs``).
    Raises :class:`SecretStoreError` with cause ``config`` when a required setting is missing.
    """
    impl = create_backend(backend or settings.SECRET_STORE_TYPE, settings, environ, **options)
    return SecretStore(impl, refresh_interval=settings.SECRET_REFRESH_INTERVAL, environ=environ)


__all__ = [
    "ChangeCallback",
    "SecretChanges",
    "SecretStore",
    "SecretStoreError",
    "check_secret_access",
    "create_secret_store",
    "describe_secret_access",
    "test_secret_access",
]
