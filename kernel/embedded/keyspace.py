"""The embedded store's keyspace: one process's keys, their values and their TTLs.

Values are Python objects by type: ``bytes`` (string), :data:`~.luahash.LUA_HASH` (a hash: its
fields live in a Lua table, kernel/embedded/luahash.py), :class:`~.zsets.ZSet` (sorted set),
``list`` (list), ``set`` (set), :class:`~.streams.Stream` (stream). A key's TTL is an
absolute deadline in milliseconds of ``clock`` (injectable: tests drive time by hand); an expired
key is removed when it is next looked up, as Redis does lazily, or by the active expiry cycle
(kernel/embedded/expiry.py) run between commands, whichever comes first. While a script runs, the time keys
expire at is frozen at the script's start (Redis 7 semantics).

Commands are registered in :data:`COMMANDS` (name, arity as Redis counts it, function) by the
modules beside this one; :meth:`Keyspace.execute` runs one. A command not registered answers an
error naming it: the embedded store never guesses.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from heapq import heappush
from typing import Any

from kernel.embedded.expiry import PLAIN_EVERY, SLACK, compact, expire_cycle
from kernel.embedded.luahash import LUA_HASH, LuaHashes, new_runtime
from kernel.embedded.replies import WRONGTYPE, ReplyError, wrong_args

Handler = Callable[["Keyspace", list[bytes]], Any]
#: Upper-case command name -> (arity, handler). Arity as Redis counts it (the name included):
#: positive = exactly, negative = at least.
COMMANDS: dict[bytes, tuple[int, Handler]] = {}
SCRIPT_ARITY = b"ERR Wrong number of args calling Redis command from script"


def command(name: str, arity: int) -> Callable[[Handler], Handler]:
    """Register a command handler (``handler(keyspace, args)``, args after the name)."""

    def register(handler: Handler) -> Handler:
        COMMANDS[name.encode()] = (arity, handler)
        return handler

    return register


def unknown(name: bytes) -> ReplyError:
    shown = name.decode("utf-8", "replace")
    return ReplyError(
        f"ERR unknown command '{shown}': the embedded store does not implement it "
        "(set REDIS_URL to use a Redis server)".encode()
    )


class Keyspace:
    """The keys of one embedded server."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.data: dict[bytes, Any] = {}
        self.expires: dict[bytes, int] = {}
        self.frozen_ms: int | None = None
        #: (deadline, key) of every TTL set, stale ones included: the active expiry's index.
        self.deadlines: list[tuple[int, bytes]] = []
        self.next_cycle_ms = 0
        self.plain_commands = 0
        #: The Lua runtime the hashes live in (and the scripts run in: kernel/embedded/scripting.py).
        self.lua = new_runtime()
        self.hashes = LuaHashes(self, self.lua)

    # -- time -----------------------------------------------------------------------------------
    def now_ms(self) -> int:
        """What keys expire against: the script's start while one runs, else the clock."""
        if self.frozen_ms is not None:
            return self.frozen_ms
        return int(self.clock() * 1000)

    # -- lookups --------------------------------------------------------------------------------
    def get(self, key: bytes) -> Any:
        """The live value at ``key`` (None when missing or expired; expired keys are removed)."""
        at = self.expires.get(key)
        if at is not None and at <= self.now_ms():
            self.delete(key)
            return None
        return self.data.get(key)

    def typed(self, key: bytes, kind: type) -> Any:
        """The value at ``key`` when it has type ``kind``; None when missing; WRONGTYPE else."""
        value = self.get(key)
        if value is not None and type(value) is not kind:
            raise ReplyError(WRONGTYPE)
        return value

    def create(self, key: bytes, kind: type) -> Any:
        """The value at ``key`` of type ``kind``, created empty when missing."""
        value = self.typed(key, kind)
        if value is None:
            value = kind()
            self.add(key, value)
        return value

    def add(self, key: bytes, value: Any) -> None:
        """A new key (missing until now) of a Python type; Lua learns its name, for WRONGTYPE."""
        self.data[key] = value
        self.hashes.other[key] = True

    def drop_if_empty(self, key: bytes, value: Any) -> None:
        """Redis deletes a hash, set, list or sorted set left empty."""
        if not value:
            self.delete(key)

    def delete(self, key: bytes) -> bool:
        if self.expires.pop(key, None) is not None:
            self.hashes.ttls[key] = None
        value = self.data.pop(key, None)
        if value is LUA_HASH:
            self.hashes.tables[key] = None
        elif value is not None:
            self.hashes.other[key] = None
        return value is not None

    def set_value(self, key: bytes, value: Any, *, keep_ttl: bool = False) -> None:
        """The key's value becomes ``value`` (a string)."""
        old = self.data.get(key)
        if old is LUA_HASH:
            self.hashes.tables[key] = None
        if old is None or old is LUA_HASH:
            self.hashes.other[key] = True
        self.data[key] = value
        if not keep_ttl and self.expires.pop(key, None) is not None:
            self.hashes.ttls[key] = None

    def set_expire(self, key: bytes, at: int) -> None:
        """The key (live) expires at ``at`` ms (Lua sees the same TTL)."""
        expires = self.expires
        expires[key] = at
        self.hashes.ttls[key] = at
        heap = self.deadlines
        heappush(heap, (at, key))
        if len(heap) > 2 * len(expires) + SLACK:
            self.deadlines = compact(expires)

    def persist(self, key: bytes) -> bool:
        """Remove the key's TTL; False when it had none."""
        if self.expires.pop(key, None) is None:
            return False
        self.hashes.ttls[key] = None
        return True

    def live_keys(self) -> list[bytes]:
        """Every key that has not expired (removing the ones that have)."""
        now = self.now_ms()
        for key in [k for k, at in self.expires.items() if at <= now]:
            self.delete(key)
        return list(self.data)

    def tick(self, now: int) -> None:
        """Between commands: run the active expiry cycle when it is due."""
        if now >= self.next_cycle_ms:
            expire_cycle(self, now)

    def after_plain_command(self) -> None:
        """After a command that is not a script: every few, look at the clock (tick)."""
        self.plain_commands += 1
        if self.plain_commands % PLAIN_EVERY == 0:
            self.tick(int(self.clock() * 1000))

    def flush(self) -> None:
        self.data.clear()
        self.expires.clear()
        self.deadlines.clear()
        self.hashes.flush()

    # -- commands -------------------------------------------------------------------------------
    def execute(self, args: list[bytes], from_script: bool = False) -> Any:
        """Run one command (``args[0]`` its name); ReplyError for an error reply. A script's
        command of the wrong arity gets Redis's error for scripts."""
        name = args[0]
        entry = COMMANDS.get(name)
        if entry is None:
            entry = COMMANDS.get(name.upper())
            if entry is None:
                raise unknown(name)
        arity, handler = entry
        count = len(args)
        if count != arity and (arity >= 0 or count < -arity):
            raise ReplyError(SCRIPT_ARITY) if from_script else wrong_args(name)
        return handler(self, args[1:])
