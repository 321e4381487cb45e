"""Hash commands of the embedded store. A hash's fields live in a Lua table (kernel/embedded/
luahash.py): a script's ``redis.call`` reaches them without leaving Lua, and these commands from
Python (the client, pipelines) run the very same Lua code."""

from __future__ import annotations

from typing import Any

from kernel.embedded.keyspace import Keyspace, command

#: Name -> arity as Redis counts it (kernel/embedded/hash_lua.py checks the same in scripts).
HASH_COMMANDS = {
    "HGET": 3,
    "HMGET": -3,
    "HGETALL": 2,
    "HKEYS": 2,
    "HVALS": 2,
    "HLEN": 2,
    "HEXISTS": 3,
    "HSET": -4,
    "HMSET": -4,
    "HSETNX": 4,
    "HDEL": -3,
    "HINCRBY": 4,
    "HINCRBYFLOAT": 4,
}


def _in_lua(ks: Keyspace, args: list[bytes], name: bytes) -> Any:
    return ks.hashes.run([name, *args])


def _register(name: str, arity: int) -> None:
    encoded = name.encode()

    def handler(ks: Keyspace, args: list[bytes]) -> Any:
        return _in_lua(ks, args, encoded)

    handler.__name__ = name.lower()
    command(name, arity)(handler)


for _name, _arity in HASH_COMMANDS.items():
    _register(_name, _arity)
