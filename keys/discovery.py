"""Keys discovered from a secret store listing (document 000's Infisical folders of ``KEY_1..N``).

keys.json may declare sources instead of (or besides) single keys::

    {"sources": [{"store": "infisical", "path": "/openai-keys", "provider": "openai",
                  "models": ["gpt-4o", "gpt-4o-mini"], "rpm": 500, "tpm": 200000}]}

Every secret found in a source's folder becomes one :class:`~keys.models.APIKey` with a stable key
id made from the folder and the secret's name (``openai-keys.KEY_1``) and a ``secret_ref`` that
points at the secret. :class:`KeyDiscovery` watches the folders through the store: after each
refresh, :meth:`KeyDiscovery.apply` turns the store's :class:`~keys.secret_store.SecretChanges`
into a :class:`PoolUpdate` (keys to add, key ids to remove, key ids whose secret changed) for the
key manager. A folder that cannot be listed at a refresh keeps its keys (the last good listing).
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kernel.errors import ConfigError
from kernel.log import get_logger
from kernel.validation import first_problem
from keys.models import DEFAULT_MODELS, KEY_ID_PATTERN, APIKey, Provider
from keys.secret_store import SecretChanges, SecretStore

log = get_logger("keys.discovery")

_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_.@:-]")
_MAX_ID = 128


class SecretSource(BaseModel):
    """One ``sources`` entry of keys.json: a folder of keys with the limits they share."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = Field(min_length=1)
    provider: Provider
    store: str | None = None
    models: list[str] = Field(default_factory=list)
    match: str = "*"
    id_prefix: str | None = Field(None, pattern=KEY_ID_PATTERN)
    rpm: int | None = Field(None, ge=1)
    tpm: int | None = Field(None, ge=1)
    rpd: int | None = Field(None, ge=1)
    quota_group: str | None = Field(None, pattern=KEY_ID_PATTERN)
    base_url: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    active: bool = True

    @property
    def prefix(self) -> str:
        """The first part of discovered key ids: ``id_prefix``, else the folder as an id."""
        if self.id_prefix:
            return self.id_prefix
        slug = ".".join(p for p in self.path.strip("/").split("/") if p)
        return _ID_UNSAFE.sub("_", slug) or self.provider

    def wants(self, name: str) -> bool:
        return fnmatch.fnmatchcase(name, self.match)


def discovered_key_id(source: SecretSource, name: str) -> str:
    """Stable key id of secret ``name`` in ``source``: ``{prefix}.{name}``.

    Characters a key id cannot hold become ``_``; when that (or the length cap) made the id lossy,
    6 hex digits of a hash of the exact folder and name keep two secrets apart.
    """
    clean = _ID_UNSAFE.sub("_", name)
    key_id = f"{source.prefix}.{clean}"
    if not key_id[0].isalnum():
        key_id = "k" + key_id
    if clean != name or not _path_is_exact(source) or len(key_id) > _MAX_ID:
        digest = hashlib.sha256(f"{source.path}\0{name}".encode()).hexdigest()[:6]
        key_id = f"{key_id[: _MAX_ID - 7]}-{digest}"
    return key_id


def _path_is_exact(source: SecretSource) -> bool:
    """True when the folder part of the id can be mapped back to exactly one folder."""
    if source.id_prefix:
        return True
    parts = [p for p in source.path.strip("/").split("/") if p]
    return all("." not in p and not _ID_UNSAFE.search(p) for p in parts)


def key_for_secret(source: SecretSource, name: str, secret_ref: str) -> APIKey:
    """The APIKey of secret ``name`` discovered in ``source`` (metadata only)."""
    model = source.models[0] if source.models else DEFAULT_MODELS[source.provider]
    models = source.models or [model, "*"]
    tags = {**source.tags, "source": source.path, "name": name}
    data: dict[str, Any] = {
        "key_id": discovered_key_id(source, name),
        "provider": source.provider,
        "model_name": model,
        "models": [{"model": m} for m in models],
        "rpm": source.rpm,
        "tpm": source.tpm,
        "rpd": source.rpd,
        "quota_group": source.quota_group,
        "base_url": source.base_url,
        "active": source.active,
        "tags": tags,
        "secret_ref": secret_ref,
    }
    return APIKey.model_validate(data)


def parse_sources(data: Any, *, source: str) -> list[SecretSource]:
    """The ``sources`` list of a parsed keys.json (``[]`` when absent); errors name the entry."""
    if not isinstance(data, dict) or "sources" not in data:
        return []
    entries = data["sources"]
    if not isinstance(entries, list):
        raise ConfigError("must be a list", source=source, field="sources")
    sources: list[SecretSource] = []
    for index, entry in enumerate(entries):
        try:
            sources.append(SecretSource.model_validate(entry))
        except ValidationError as exc:
            loc, message = first_problem(exc)
            raise ConfigError(
                message, source=source, entry=f"sources #{index}", field=loc
            ) from None
    return sources


def load_sources(path: str | os.PathLike[str]) -> list[SecretSource]:
    """The ``sources`` of the keys.json at ``path``."""
    where = str(path)
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError("file not found", source=where) from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read: {type(exc).__name__}", source=where) from None
    return parse_sources(data, source=where)


@dataclass(frozen=True)
class PoolUpdate:
    """What the key manager must do after a refresh: add keys, remove ids, reload secrets."""

    add: list[APIKey] = field(default_factory=list)
    remove: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.add or self.remove or self.changed)


class KeyDiscovery:
    """Keys of every source, kept in step with the store's listings."""

    def __init__(self, store: SecretStore, sources: list[SecretSource]) -> None:
        for index, src in enumerate(sources):
            if src.store is not None and src.store != store.backend:
                raise ConfigError(
                    f"source uses store {src.store!r} but SECRET_STORE_TYPE is {store.backend!r}",
                    entry=f"sources #{index}",
                    field="store",
                )
        self.store = store
        self.sources = list(sources)
        self._keys: dict[str, APIKey] = {}
        self._origin: dict[str, tuple[SecretSource, str]] = {}  # key id -> (source, secret name)

    def discovered_keys(self) -> list[APIKey]:
        return list(self._keys.values())

    async def discover(self) -> list[APIKey]:
        """List every source's folder (and watch it from now on); the keys found."""
        for src in self.sources:
            found = await self.store.watch(src.path, self._id_mapper(src))
            for key_id, name in found.items():
                self._origin[key_id] = (src, name)
                self._keys[key_id] = key_for_secret(src, name, self.store.ref_for(src.path, name))
        return self.discovered_keys()

    def apply(self, changes: SecretChanges) -> PoolUpdate:
        """The pool update for ``changes``; ids that are not discovered keys are left out."""
        add = []
        for key_id in sorted(changes.added):
            origin = self._origin.get(key_id)
            if origin is not None and key_id not in self._keys:
                src, name = origin
                key = key_for_secret(src, name, self.store.ref_for(src.path, name))
                self._keys[key_id] = key
                add.append(key)
        remove = sorted(k for k in changes.removed if self._keys.pop(k, None) is not None)
        changed = sorted(k for k in changes.changed if k in self._keys)
        return PoolUpdate(add=add, remove=remove, changed=changed)

    def _id_mapper(self, src: SecretSource) -> Callable[[str], str | None]:
        def key_id_for(name: str) -> str | None:
            if not src.wants(name):
                return None
            key_id = discovered_key_id(src, name)
            owner = self._origin.get(key_id)
            if owner is not None and owner[0] is not src:
                log.warning(
                    "discovered_key_id_clash",
                    key_id=key_id,
                    path=src.path,
                    advice="two sources produce this key id; give one an 'id_prefix'",
                )
                return None
            self._origin[key_id] = (src, name)
            return key_id

        return key_id_for
