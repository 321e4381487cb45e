"""The secret cache's records: what a refresh changed, one cached secret, one watched folder.

:class:`keys.secret_store.SecretStore` keeps an :class:`Entry` per key id and a :class:`Watch` per
folder listed for discovery, and tells its subscribers the :class:`SecretChanges` of each refresh.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from kernel.errors import SecretStoreError
from keys.models import APIKey


@dataclass(frozen=True)
class SecretChanges:
    """What a refresh changed, as key ids. False when nothing changed."""

    added: frozenset[str] = frozenset()
    changed: frozenset[str] = frozenset()
    removed: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.added or self.changed or self.removed)

    def as_dict(self) -> dict[str, list[str]]:
        return {name: sorted(getattr(self, name)) for name in ("added", "changed", "removed")}


ChangeCallback = Callable[[SecretChanges], Awaitable[None] | None]
KeyIdFor = Callable[[str], str | None]


@dataclass
class Entry:
    """One key's cached secret (or its remembered failure)."""

    secret_ref: str | None
    key: APIKey | None = None  # None for secrets that come from a watched listing
    value: str | None = None
    error: SecretStoreError | None = None
    listing: str | None = None


@dataclass
class Watch:
    """A folder listed at every refresh: names mapped to key ids by ``key_id_for``."""

    key_id_for: KeyIdFor
    names: dict[str, str] = field(default_factory=dict)  # secret name -> key id
