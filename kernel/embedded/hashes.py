"""Hash commands of the embedded store (a hash is a ``dict`` of bytes to bytes)."""

from __future__ import annotations

from typing import Any

from kernel.embedded.keyspace import Keyspace, command
from kernel.embedded.replies import (
    OK,
    ReplyError,
    check_int,
    format_double,
    to_float,
    to_int,
    wrong_args,
)

HASH_NOT_INTEGER = b"ERR hash value is not an integer"
HASH_NOT_FLOAT = b"ERR hash value is not a float"


@command("HGET", 3)
def hget(ks: Keyspace, args: list[bytes]) -> Any:
    h = ks.typed(args[0], dict)
    return None if h is None else h.get(args[1])


@command("HMGET", -3)
def hmget(ks: Keyspace, args: list[bytes]) -> Any:
    h = ks.typed(args[0], dict)
    if h is None:
        return [None] * (len(args) - 1)
    return [h.get(f) for f in args[1:]]


@command("HGETALL", 2)
def hgetall(ks: Keyspace, args: list[bytes]) -> Any:
    h = ks.typed(args[0], dict)
    out: list[bytes] = []
    for pair in (h or {}).items():
        out.extend(pair)
    return out


@command("HKEYS", 2)
def hkeys(ks: Keyspace, args: list[bytes]) -> Any:
    return list(ks.typed(args[0], dict) or ())


@command("HVALS", 2)
def hvals(ks: Keyspace, args: list[bytes]) -> Any:
    return list((ks.typed(args[0], dict) or {}).values())


@command("HLEN", 2)
def hlen(ks: Keyspace, args: list[bytes]) -> Any:
    return len(ks.typed(args[0], dict) or ())


@command("HEXISTS", 3)
def hexists(ks: Keyspace, args: list[bytes]) -> Any:
    return int(args[1] in (ks.typed(args[0], dict) or ()))


def _hset(ks: Keyspace, args: list[bytes], name: bytes) -> int:
    if len(args) % 2 == 0:
        raise wrong_args(name)
    h = ks.create(args[0], dict)
    before = len(h)
    for i in range(1, len(args), 2):
        h[args[i]] = args[i + 1]
    return len(h) - before


@command("HSET", -4)
def hset(ks: Keyspace, args: list[bytes]) -> Any:
    return _hset(ks, args, b"hset")


@command("HMSET", -4)
def hmset(ks: Keyspace, args: list[bytes]) -> Any:
    _hset(ks, args, b"hmset")
    return OK


@command("HSETNX", 4)
def hsetnx(ks: Keyspace, args: list[bytes]) -> Any:
    h = ks.create(args[0], dict)
    if args[1] in h:
        return 0
    h[args[1]] = args[2]
    return 1


@command("HDEL", -3)
def hdel(ks: Keyspace, args: list[bytes]) -> Any:
    h = ks.typed(args[0], dict)
    if h is None:
        return 0
    removed = sum(1 for f in args[1:] if h.pop(f, None) is not None)
    ks.drop_if_empty(args[0], h)
    return removed


@command("HINCRBY", 4)
def hincrby(ks: Keyspace, args: list[bytes]) -> Any:
    by = to_int(args[2])
    h = ks.create(args[0], dict)
    old = h.get(args[1])
    value = check_int((to_int(old, HASH_NOT_INTEGER) if old is not None else 0) + by)
    h[args[1]] = b"%d" % value
    return value


@command("HINCRBYFLOAT", 4)
def hincrbyfloat(ks: Keyspace, args: list[bytes]) -> Any:
    by = to_float(args[2])
    h = ks.create(args[0], dict)
    old = h.get(args[1])
    value = (to_float(old, HASH_NOT_FLOAT) if old is not None else 0.0) + by
    if value in (float("inf"), float("-inf")):
        raise ReplyError(b"ERR increment would produce NaN or Infinity")
    h[args[1]] = text = format_double(value)
    return text
