"""The ``vault`` backend: HashiCorp Vault (or OpenBao) KV version 2, through ``hvac``.

Settings: ``VAULT_ADDR``, ``VAULT_TOKEN`` or AppRole (``VAULT_ROLE_ID`` + ``VAULT_SECRET_ID``),
``VAULT_NAMESPACE``, ``VAULT_CACERT``, ``VAULT_SECRET_PATH`` (default ``secret/llm``: the first
segment is the KV v2 mount). Key ``flash_01``'s secret is ``{VAULT_SECRET_PATH}/flash_01``, field
``api_key`` or ``value`` (documents 003 and 004 show both)::

    vault kv put secret/llm/flash_01 value=AIza...

hvac is synchronous: every call runs in a worker thread so the event loop never blocks. With
AppRole the client logs in on first use and again when Vault answers 403 (the token expired).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from kernel.errors import SecretStoreError
from kernel.settings import Settings
from keys.backends.base import SecretBackend, pick_field, safe_detail, split_field

T = TypeVar("T")


def _hvac() -> Any:
    try:
        import hvac
    except ImportError:  # pragma: no cover - the extra is installed in development
        raise SecretStoreError(
            "vault",
            None,
            "config",
            "hvac is not installed: pip install 'llm-keypool-router[vault]'",
        ) from None
    return hvac


class VaultBackend(SecretBackend):
    name = "vault"

    def __init__(self, settings: Settings) -> None:
        if not settings.VAULT_ADDR:
            raise SecretStoreError("vault", None, "config", "VAULT_ADDR is not set")
        self.addr = settings.VAULT_ADDR
        self.secret_path = settings.VAULT_SECRET_PATH.strip("/")
        self._token = settings.VAULT_TOKEN.get_secret_value() if settings.VAULT_TOKEN else None
        self._role_id = settings.VAULT_ROLE_ID
        self._secret_id = (
            settings.VAULT_SECRET_ID.get_secret_value() if settings.VAULT_SECRET_ID else None
        )
        if not self._token and not (self._role_id and self._secret_id):
            raise SecretStoreError(
                "vault", None, "config", "set VAULT_TOKEN, or VAULT_ROLE_ID and VAULT_SECRET_ID"
            )
        hvac = _hvac()
        self._client = hvac.Client(
            url=self.addr,
            token=self._token or "",
            namespace=settings.VAULT_NAMESPACE,
            verify=settings.VAULT_CACERT or True,
            timeout=settings.SECRET_STORE_TIMEOUT_SECONDS,
        )
        self._exc = hvac.exceptions
        self._login_lock = threading.Lock()
        self._logged_in = bool(self._token)

    @property
    def uses_approle(self) -> bool:
        return not self._token

    def default_name(self, key_id: str) -> str:
        return f"{self.secret_path}/{key_id}"

    async def fetch(self, name: str, key_id: str | None) -> str:
        path, field = split_field(name)
        mount, rel = self._split_mount(path, key_id)
        response = await self._call(
            lambda: self._client.secrets.kv.v2.read_secret_version(
                path=rel, mount_point=mount, raise_on_deleted_version=True
            ),
            key_id,
            path,
        )
        data = (response.get("data") or {}).get("data")
        if not isinstance(data, dict):
            raise self.error(key_id, "malformed", f"{path} is not a KV v2 secret")
        return pick_field(data, field, self.name, key_id)

    async def list_secrets(self, path: str | None) -> dict[str, str]:
        folder = (path or self.secret_path).strip("/")
        mount, rel = self._split_mount(folder, None)
        try:
            response = await self._call(
                lambda: self._client.secrets.kv.v2.list_secrets(path=rel, mount_point=mount),
                None,
                folder,
            )
        except SecretStoreError as exc:
            if exc.cause == "not_found":  # Vault answers 404 for a folder with nothing in it
                return {}
            raise
        names = [n for n in (response.get("data") or {}).get("keys", []) if not n.endswith("/")]
        values = await asyncio.gather(*(self.fetch(f"{folder}/{n}", None) for n in names))
        return dict(zip(names, values, strict=True))

    async def ping(self) -> None:
        await self._call(
            lambda: self._client.auth.token.lookup_self(), None, "auth/token/lookup-self"
        )

    def describe(self) -> dict[str, Any]:
        return {
            "addr": self.addr,
            "secret_path": self.secret_path,
            "auth": "approle" if self.uses_approle else "token",
        }

    async def close(self) -> None:
        await asyncio.to_thread(self._client.adapter.close)

    # -- internals ---------------------------------------------------------------------------------
    def _split_mount(self, path: str, key_id: str | None) -> tuple[str, str]:
        mount, _, rel = path.strip("/").partition("/")
        if not mount or not rel:
            raise self.error(
                key_id, "config", f"{path!r} needs a mount and a path, e.g. secret/llm/<key>"
            )
        return mount, rel

    async def _call(self, fn: Callable[[], T], key_id: str | None, where: str) -> T:
        return await asyncio.to_thread(self._call_sync, fn, key_id, where)

    def _call_sync(self, fn: Callable[[], T], key_id: str | None, where: str) -> T:
        try:
            self._ensure_login()
            try:
                return fn()
            except self._exc.Forbidden:
                if not self.uses_approle:
                    raise
                self._login(force=True)  # the AppRole token may have expired: one fresh login
                return fn()
        except SecretStoreError:
            raise
        except Exception as exc:
            raise self._translate(exc, key_id, where) from exc

    def _ensure_login(self) -> None:
        if not self._logged_in:
            self._login(force=False)

    def _login(self, *, force: bool) -> None:
        with self._login_lock:
            if self._logged_in and not force:
                return
            try:
                self._client.auth.approle.login(role_id=self._role_id, secret_id=self._secret_id)
            except (self._exc.InvalidRequest, self._exc.Forbidden, self._exc.Unauthorized) as exc:
                raise self.error(None, "denied", f"AppRole login refused: {exc}") from exc
            self._logged_in = True

    def _translate(self, exc: Exception, key_id: str | None, where: str) -> SecretStoreError:
        errors = self._exc
        cause = "unreachable"
        if isinstance(exc, errors.InvalidPath):
            cause = "not_found"
        elif isinstance(exc, errors.Forbidden | errors.Unauthorized):
            cause = "denied"
        elif isinstance(exc, errors.InvalidRequest | errors.UnsupportedOperation):
            cause = "config"
        detail = f"{where}: {type(exc).__name__}"
        if cause != "unreachable" or isinstance(exc, errors.VaultError):
            detail += f": {safe_detail(str(exc))}"
        return self.error(key_id, cause, detail)
