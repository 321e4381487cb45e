"""A blocking facade over ``KeyManager`` for callers without an event loop (documents 003/004).

    manager = SyncKeyManager(key_store_path="keys.json")
    selection = manager.select_key(model_preference="gemini-2.5-flash", tokens_needed=1200)
    secret = manager.get_secret(selection)
    ...call the provider...
    manager.record_success(selection, actual_tokens=830)
    manager.keys["flash_03"] = new_key      # document 003: added to every process's pool
    manager.save_keys()                     # and written to keys.json

Each method runs the async method of the same name through a portal (kernel/portal.py: a private
event loop that lives as long as the facade), one line each, never a second implementation, as
``router.SyncRequestRouter`` does. Inside a running event loop, await the ``KeyManager`` instead:
the facade raises RuntimeError there.
"""

from __future__ import annotations

from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from kernel.portal import Portal
from kernel.settings import Settings
from kernel.store import Store
from keys.config import KeyConfig
from keys.manager import KeyManager
from keys.models import APIKey
from keys.outcomes import OutcomeKind
from keys.pool_keys import PoolKeys, checked_key
from keys.selection import KeySelection

T = TypeVar("T")


class SyncPoolKeys(PoolKeys):
    """``SyncKeyManager.keys``: assignment adds or replaces a key in every process's pool
    (``put_key``), ``del`` removes it (``remove_key``); keys.json changes on ``save_keys()``."""

    def __init__(self, facade: SyncKeyManager) -> None:
        super().__init__(lambda: facade.manager.pool.keys)
        self._facade = facade

    def __setitem__(self, key_id: str, key: APIKey) -> None:
        self._facade.put_key(checked_key(key_id, key))

    def __delitem__(self, key_id: str) -> None:
        self._facade.remove_key(key_id)


class SyncKeyManager:
    """``KeyManager`` with blocking methods of the same names."""

    def __init__(self, manager: KeyManager | None = None, **kwargs: Any) -> None:
        self._portal = Portal("SyncKeyManager", "await the KeyManager instead")
        self.manager = manager or KeyManager(**kwargs)
        self._keys = SyncPoolKeys(self)

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self._portal.run(coro)

    # -- the pool --------------------------------------------------------------------------------
    @property
    def keys(self) -> SyncPoolKeys:
        return self._keys

    @property
    def settings(self) -> Settings:
        return self.manager.settings

    @property
    def store(self) -> Store:
        return self.manager.store

    @property
    def config(self) -> KeyConfig:
        return self.manager.config

    def start(self) -> None:
        self._run(self.manager.start())

    def masked(self, key_id: str) -> str:
        return self.manager.masked(key_id)

    def default_model(self) -> str:
        return self.manager.default_model()

    def strategy_for_model(self, model: str) -> str:
        return self.manager.strategy_for_model(model)

    def get_secret(self, selection: KeySelection | str) -> str:
        return self._run(self.manager.get_secret(selection))

    # -- selection and outcomes ------------------------------------------------------------------
    def select_key(self, *args: Any, **kwargs: Any) -> KeySelection:
        return self._run(self.manager.select_key(*args, **kwargs))

    def record_success(self, selection: KeySelection, *args: Any, **kwargs: Any) -> bool:
        return self._run(self.manager.record_success(selection, *args, **kwargs))

    def record_failure(
        self, selection: KeySelection, error: BaseException, *args: Any, **kwargs: Any
    ) -> OutcomeKind:
        return self._run(self.manager.record_failure(selection, error, *args, **kwargs))

    def release(self, selection: KeySelection) -> bool:
        return self._run(self.manager.release(selection))

    def extend_reservation(self, selection: KeySelection) -> str:
        return self._run(self.manager.extend_reservation(selection))

    def flush(self) -> None:
        self._run(self.manager.flush())

    # -- health actions and live management ------------------------------------------------------
    def mark_key_unhealthy(self, key_id: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return self._run(self.manager.mark_key_unhealthy(key_id, *args, **kwargs))

    def clear_cooldown(self, key_id: str) -> dict[str, Any]:
        return self._run(self.manager.clear_cooldown(key_id))

    def add_key(self, key: APIKey, *, persist: bool = False) -> APIKey:
        return self._run(self.manager.add_key(key, persist=persist))

    def put_key(self, key: APIKey, *, persist: bool = False) -> APIKey:
        return self._run(self.manager.put_key(key, persist=persist))

    def update_key(self, key_id: str, *, persist: bool = False, **changes: Any) -> APIKey:
        return self._run(self.manager.update_key(key_id, persist=persist, **changes))

    def deactivate_key(self, key_id: str) -> APIKey:
        return self._run(self.manager.deactivate_key(key_id))

    def activate_key(self, key_id: str) -> APIKey:
        return self._run(self.manager.activate_key(key_id))

    def remove_key(self, key_id: str, *, persist: bool = False) -> None:
        self._run(self.manager.remove_key(key_id, persist=persist))

    def reload_keys(self) -> int:
        return self._run(self.manager.reload_keys())

    def save_keys(self, path: str | Path | None = None) -> Path:
        return self._run(self.manager.save_keys(path))

    # -- status ----------------------------------------------------------------------------------
    def get_key_status(self, key_id: str) -> dict[str, Any]:
        return self._run(self.manager.get_key_status(key_id))

    def get_all_key_statuses(self) -> list[dict[str, Any]]:
        return self._run(self.manager.get_all_key_statuses())

    def get_health_status(self) -> dict[str, dict[str, Any]]:
        return self._run(self.manager.get_health_status())

    def get_stats(self) -> dict[str, Any]:
        return self._run(self.manager.get_stats())

    def get_rpm_usage(self, key_id: str) -> dict[str, Any]:
        return self._run(self.manager.get_rpm_usage(key_id))

    def get_tpm_usage(self, key_id: str) -> dict[str, Any]:
        return self._run(self.manager.get_tpm_usage(key_id))

    def health_check(self) -> dict[str, Any]:
        return self._run(self.manager.health_check())

    def close(self) -> None:
        try:
            self._run(self.manager.close())
        finally:
            self._portal.close()

    def __enter__(self) -> SyncKeyManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["SyncKeyManager", "SyncPoolKeys"]
