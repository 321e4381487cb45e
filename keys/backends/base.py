"""What every secret backend implements, and the small helpers they share.

A backend does I/O only: read one secret by its store-native name, list a folder, ping. Caching,
refresh, change detection and the ``env:`` override live in :class:`keys.secret_store.SecretStore`,
so each backend stays a thin translation of one client library (and its exceptions) into
:class:`~kernel.errors.SecretStoreError`.

Names: every backend has a *default name* for a key id (document 003/004 conventions, see
docs/secret-stores.md) and accepts an explicit ``secret_ref``. A ``#field`` suffix on a name picks a
field of a structured secret (Vault data, a JSON string in AWS or Azure); without it the fields
``api_key`` then ``value`` are tried.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

from kernel.errors import SecretStoreError
from kernel.masking import redact
from keys.models import APIKey

#: Fields of a structured secret that hold the key, in the order they are tried (documents 003/004).
SECRET_FIELDS = ("api_key", "value")
_MAX_DETAIL = 240


class SecretBackend(ABC):
    """One secret store's I/O. Subclasses translate their client's errors at this boundary."""

    name: ClassVar[str]

    # -- names -------------------------------------------------------------------------------------
    @abstractmethod
    def default_name(self, key_id: str) -> str:
        """The store-native name of ``key_id``'s secret when the key has no ``secret_ref``."""

    def locate(self, key: APIKey) -> str:
        """Where ``key``'s secret lives in this store (shown in errors and ``secrets check``)."""
        return key.secret_ref or self.default_name(key.key_id)

    def found_in(self, key: APIKey) -> str:
        """Where ``key``'s secret was found (backends with several candidate names override)."""
        return self.locate(key)

    def ref_for(self, path: str | None, name: str) -> str:
        """The ``secret_ref`` of secret ``name`` found by listing ``path`` (used by discovery)."""
        base = (path or "").rstrip("/")
        return f"{base}/{name}" if base else name

    # -- I/O ---------------------------------------------------------------------------------------
    async def read(self, key: APIKey) -> str:
        """``key``'s secret; raises :class:`SecretStoreError`."""
        return await self.fetch(self.locate(key), key.key_id)

    @abstractmethod
    async def fetch(self, name: str, key_id: str | None) -> str:
        """The secret stored under ``name`` (``key_id`` only names the key in errors)."""

    @abstractmethod
    async def list_secrets(self, path: str | None) -> dict[str, str]:
        """Every secret directly in ``path`` (default: the backend's folder): name -> value."""

    async def ping(self) -> None:
        """Raise :class:`SecretStoreError` when the store cannot be used (unreachable, denied)."""
        return None

    async def close(self) -> None:
        """Release clients and connections."""
        return None

    def describe(self) -> dict[str, Any]:
        """Non-secret facts about the configuration (address, path), for health answers."""
        return {}

    # -- helpers -----------------------------------------------------------------------------------
    def error(self, key_id: str | None, cause: str, detail: str = "") -> SecretStoreError:
        return SecretStoreError(self.name, key_id, cause, safe_detail(detail))


def safe_detail(text: str) -> str:
    """A third-party message fit for an error: secrets redacted, one line, bounded length."""
    one_line = " ".join(redact(str(text)).split())
    return one_line if len(one_line) <= _MAX_DETAIL else one_line[: _MAX_DETAIL - 3] + "..."


def split_field(name: str) -> tuple[str, str | None]:
    """``"path/to/secret#api_key"`` -> (``"path/to/secret"``, ``"api_key"``)."""
    base, sep, field = name.partition("#")
    return base, (field or None) if sep else None


def pick_field(data: Mapping[str, Any], field: str | None, backend: str, key_id: str | None) -> str:
    """The key inside a structured secret: ``field`` if given, else ``api_key`` or ``value``.

    Only field *names* ever reach an error message, never their values.
    """
    candidates = (field,) if field else SECRET_FIELDS
    for candidate in candidates:
        if candidate in data:
            value = data[candidate]
            if not isinstance(value, str):
                raise SecretStoreError(
                    backend, key_id, "malformed", f"field {candidate!r} is not a string"
                )
            return value
    wanted = " or ".join(repr(c) for c in candidates)
    fields = ", ".join(sorted(repr(str(k)) for k in data)) or "none"
    raise SecretStoreError(backend, key_id, "malformed", f"no field {wanted} (fields: {fields})")


def value_of_string(raw: str, field: str | None, backend: str, key_id: str | None) -> str:
    """A secret stored as a string: plain, or JSON ``{"api_key": ...}`` (AWS, Azure)."""
    text = raw.strip()
    if field is None and not text.startswith("{"):
        return raw
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        if field is None:
            return raw  # a plain secret that happens to start with "{"
        raise SecretStoreError(
            backend, key_id, "malformed", f"field {field!r} asked for but the secret is not JSON"
        ) from None
    if not isinstance(data, dict):
        raise SecretStoreError(backend, key_id, "malformed", "JSON secret is not an object")
    return pick_field(data, field, backend, key_id)


def clean_secret(value: str, backend: str, key_id: str | None) -> str:
    """Strip surrounding whitespace; refuse empty values and control characters.

    A secret goes into an HTTP header: a newline inside it would be a header injection, and an
    empty one would only produce confusing 401s later.
    """
    cleaned = value.strip()
    if not cleaned:
        raise SecretStoreError(backend, key_id, "malformed", "the secret is empty")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in cleaned):
        raise SecretStoreError(
            backend, key_id, "malformed", "the secret contains control characters"
        )
    return cleaned
