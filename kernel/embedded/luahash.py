"""The embedded store's hashes, kept in Lua tables: a script's ``redis.call('HGET', ...)`` (and
HSET, HMGET, HINCRBY, HEXISTS ...) is answered inside Lua, with no crossing into Python.

Hashes are most of what the pool scripts touch (39 of a routed call's ~49 ``redis.call``), and a
crossing plus Python's command path cost ~1.5-2.5 us each where the Lua answer costs a fraction.
There is one copy of a hash's data: its Lua table. The Python keyspace lists the key (its value
is :data:`LUA_HASH`, so SCAN, TYPE, DEL, EXISTS and TTLs see every key in one place) and mirrors
into Lua what a hash command must know of the other keys: every key's TTL (``EXP``, so Lua expires
a hash against the same time as Python) and the names of the keys of other types (``OTHER``, for
WRONGTYPE). Commands from Python (``client.hgetall``, a pipeline) run the same Lua code through
:meth:`LuaHashes.run`.

Lua asks Python only at the edges: an expired key (Python removes it), a new hash (Python lists
it), a hash emptied by HDEL (Python forgets the key), and arithmetic past what a double holds
exactly (HINCRBY beyond 15 digits, every HINCRBYFLOAT: done by the Python code of replies.py, so
the numbers and error texts stay Redis's).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from kernel.embedded.replies import (
    INT_MAX,
    INT_MIN,
    ReplyError,
    Status,
    check_int,
    format_double,
    to_float,
    to_int,
)

if TYPE_CHECKING:
    from kernel.embedded.keyspace import Keyspace

HASH_NOT_INTEGER = b"ERR hash value is not an integer"
HASH_NOT_FLOAT = b"ERR hash value is not a float"


def lua_module() -> Any:
    """lupa's LuaJIT 2.1 (Lua 5.1 semantics, 3-5x faster on the pool scripts) when its build has
    it, else lupa's Lua 5.1 (Redis's own Lua)."""
    try:
        return importlib.import_module("lupa.luajit21")
    except ImportError:
        return importlib.import_module("lupa.lua51")


LUA = lua_module()


class LuaHash:
    """What the Python keyspace holds for a hash: its data is the Lua table of the same key."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<hash in Lua>"


LUA_HASH = LuaHash()


def new_runtime() -> Any:
    return LUA.LuaRuntime(encoding=None, register_eval=False, register_builtins=False)


class LuaHashes:
    """The hash tables of one keyspace, in its Lua runtime."""

    def __init__(self, keyspace: Keyspace, runtime: Any) -> None:
        from kernel.embedded.hash_lua import SOURCE

        self.keyspace = keyspace
        self.lua = runtime
        self._table = runtime.table_from
        exported = runtime.execute(
            SOURCE,
            self._resolve,
            self._dropped,
            self._argument,
            self._int_error,
            self._float_error,
            self._incrby,
            self._incrbyfloat,
        )
        self.commands, self._entry, self.set_now, self._flush = exported[:4]
        #: Lua's tables the Python keyspace writes: a hash to drop (key -> None), every key's TTL
        #: (key -> ms), every key of another type (key -> True): see Keyspace.add / delete.
        self.tables, self.ttls, self.other = exported[4:]
        self._err = runtime.eval("function(m) return {err = m} end")

    # -- Python's side of the keyspace ------------------------------------------------------------
    def flush(self) -> None:
        self._flush()

    def run(self, args: list[bytes]) -> Any:
        """A hash command from Python (``args[0]`` its name), answered as Redis replies."""
        reply = self._entry(self.keyspace.now_ms(), self._table(args), len(args))
        if args[0].upper() == b"HINCRBY" and type(reply) is float:  # past 2**53: read it back
            reply = int(self._entry(self.keyspace.now_ms(), self._table([b"HGET", *args[1:3]]), 3))
        return to_reply(reply)

    # -- what Lua asks ----------------------------------------------------------------------------
    def _resolve(self, key: bytes, create: bool) -> int:
        """A key Lua holds no live hash for: 0 missing, -1 another type, 1 a new hash (create)."""
        ks = self.keyspace
        value = ks.get(key)  # an expired key goes now (its Lua table with it)
        if value is None:
            if not create:
                return 0
            ks.data[key] = LUA_HASH
            return 1
        if value is LUA_HASH:  # Lua lost a table Python still lists: a bug, said loudly
            raise RuntimeError("embedded store: a hash without its Lua table")
        return -1

    def _dropped(self, key: bytes) -> None:
        """HDEL emptied the hash (Lua already dropped its table and TTL): Redis deletes the key."""
        self.keyspace.data.pop(key, None)
        self.keyspace.expires.pop(key, None)

    def _argument(self, value: Any) -> bytes:
        """A number argument as Redis 7.0 formats it (``%.17g``)."""
        return b"%.17g" % value

    def _int_error(self, raw: bytes) -> Any:
        """None when ``raw`` is a Redis integer, else its error reply."""
        try:
            to_int(raw)
        except ReplyError as exc:
            return self._err(exc.message)
        return None

    def _float_error(self, raw: bytes) -> Any:
        """None when ``raw`` is a Redis double, else its error reply."""
        try:
            to_float(raw)
        except ReplyError as exc:
            return self._err(exc.message)
        return None

    def _incrby(self, old: Any, by: bytes) -> Any:
        """HINCRBY's new value (as stored), or its error reply."""
        try:
            base = to_int(old, HASH_NOT_INTEGER) if isinstance(old, bytes) else 0
            return b"%d" % check_int(base + to_int(by))
        except ReplyError as exc:
            return self._err(exc.message)

    def _incrbyfloat(self, old: Any, by: bytes) -> Any:
        """HINCRBYFLOAT's new value (as stored), or its error reply."""
        try:
            increment = to_float(by)
            value = (to_float(old, HASH_NOT_FLOAT) if isinstance(old, bytes) else 0.0) + increment
            if value in (float("inf"), float("-inf")):
                raise ReplyError(b"ERR increment would produce NaN or Infinity")
            return format_double(value)
        except ReplyError as exc:
            return self._err(exc.message)


def to_reply(value: Any) -> Any:
    """A Lua value as Redis answers it (the conversion of a script's result)."""
    kind = type(value)
    if kind is bytes:
        return value
    if kind is int:  # a Lua number (a double) lupa handed over as an int
        return value if INT_MIN <= value <= INT_MAX else INT_MIN
    if value is None or value is False:
        return None
    if value is True:
        return 1
    if kind is float:
        return truncate(value)
    return table_reply(value)


def truncate(value: float) -> int:
    if value != value or value in (float("inf"), float("-inf")):  # C's cast: undefined; x86's
        return INT_MIN
    whole = int(value)
    return whole if INT_MIN <= whole <= INT_MAX else INT_MIN  # past 64 bits: x86's cast too


def table_reply(table: Any) -> Any:
    err = table[b"err"]
    if isinstance(err, bytes):
        raise ReplyError(err)
    status = table[b"ok"]
    if isinstance(status, bytes):
        return Status(status)
    out = []
    i = 1
    while (item := table[i]) is not None:
        out.append(to_reply(item))
        i += 1
    return out
