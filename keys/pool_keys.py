"""``KeyManager.keys``: the pool's keys by id, read-only (document 003's ``manager.keys[...]``).

Document 003 adds a key with ``manager.keys['flash_03'] = new_key`` then ``manager.save_keys()``.
On the async :class:`~keys.manager.KeyManager` an assignment cannot reach the other processes (the
change goes through Redis: it must be awaited), so it raises a :class:`~kernel.errors.ConfigError`
saying what to call instead, rather than changing this process's copy alone. On the blocking
facade (keys/sync.py) the assignment works: it adds the key, or replaces the key of that id, in the
pool of every process (``put_key``), as ``add_key`` does; ``save_keys()`` writes keys.json.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from kernel.errors import ConfigError
from keys.models import APIKey

SOURCE = "KeyManager.keys"


class PoolKeys(Mapping[str, APIKey]):
    """The pool's keys by id, read live; item assignment and deletion raise, naming the call."""

    def __init__(self, read: Callable[[], Mapping[str, APIKey]]) -> None:
        self._read = read

    def __getitem__(self, key_id: str) -> APIKey:
        return self._read()[key_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._read())

    def __len__(self) -> int:
        return len(self._read())

    def __repr__(self) -> str:
        return f"PoolKeys({sorted(self._read())!r})"

    def __setitem__(self, key_id: str, key: APIKey) -> None:
        raise ConfigError(
            "the pool's keys are read-only here (an assignment would change no process's pool): "
            "call 'await manager.put_key(key)' (adds it, or replaces the key of that id; "
            "'await manager.add_key(key)' only adds), then 'await manager.save_keys()' to write "
            "keys.json; or use keys.sync.SyncKeyManager, where 'manager.keys[key_id] = key' works",
            source=SOURCE,
            field=key_id,
        )

    def __delitem__(self, key_id: str) -> None:
        raise ConfigError(
            "the pool's keys are read-only here: call 'await manager.remove_key(key_id)' "
            "(or 'del' on keys.sync.SyncKeyManager().keys)",
            source=SOURCE,
            field=key_id,
        )


def checked_key(key_id: str, key: object) -> APIKey:
    """``key`` for ``keys[key_id] = key``: an APIKey whose id is ``key_id``, else ConfigError."""
    if not isinstance(key, APIKey):
        raise ConfigError(
            f"expected a keys.models.APIKey, got {type(key).__name__}", source=SOURCE, field=key_id
        )
    if key.key_id != key_id:
        raise ConfigError(
            f"the key's key_id is {key.key_id!r}: assign it as keys[{key.key_id!r}]",
            source=SOURCE,
            field=key_id,
        )
    return key
