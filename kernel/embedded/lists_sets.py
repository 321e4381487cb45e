"""List and set commands of the embedded store (a list is a Python ``list``, a set a ``set``)."""

from __future__ import annotations

from typing import Any

from kernel.embedded.keyspace import Keyspace, command
from kernel.embedded.replies import OK, ReplyError, to_int


@command("RPUSH", -3)
def rpush(ks: Keyspace, args: list[bytes]) -> Any:
    values = ks.create(args[0], list)
    values.extend(args[1:])
    return len(values)


@command("LPUSH", -3)
def lpush(ks: Keyspace, args: list[bytes]) -> Any:
    values = ks.create(args[0], list)
    values[:0] = args[:0:-1]
    return len(values)


def _pop(ks: Keyspace, args: list[bytes], left: bool) -> Any:
    if len(args) > 2:
        raise ReplyError(b"ERR syntax error")
    count = None
    if len(args) == 2:
        count = to_int(args[1], b"ERR value is out of range, must be positive")
        if count < 0:
            raise ReplyError(b"ERR value is out of range, must be positive")
    values = ks.typed(args[0], list)
    if values is None:
        return None
    n = 1 if count is None else count
    taken = values[:n] if left else values[: -n - 1 : -1] if n else []
    if left:
        del values[:n]
    elif n:
        del values[-n:]
    ks.drop_if_empty(args[0], values)
    if count is None:
        return taken[0] if taken else None
    return taken


@command("LPOP", -2)
def lpop(ks: Keyspace, args: list[bytes]) -> Any:
    return _pop(ks, args, True)


@command("RPOP", -2)
def rpop(ks: Keyspace, args: list[bytes]) -> Any:
    return _pop(ks, args, False)


@command("LLEN", 2)
def llen(ks: Keyspace, args: list[bytes]) -> Any:
    return len(ks.typed(args[0], list) or ())


@command("LINDEX", 3)
def lindex(ks: Keyspace, args: list[bytes]) -> Any:
    values = ks.typed(args[0], list)
    index = to_int(args[1])
    if values is None or not -len(values) <= index < len(values):
        return None
    return values[index]


def _span(n: int, start: int, stop: int) -> tuple[int, int]:
    start, stop = (start + n if start < 0 else start), (stop + n if stop < 0 else stop)
    return max(start, 0), min(stop, n - 1)


@command("LRANGE", 4)
def lrange(ks: Keyspace, args: list[bytes]) -> Any:
    values = ks.typed(args[0], list)
    start, stop = to_int(args[1]), to_int(args[2])
    if values is None:
        return []
    start, stop = _span(len(values), start, stop)
    return values[start : stop + 1] if start <= stop else []


@command("LTRIM", 4)
def ltrim(ks: Keyspace, args: list[bytes]) -> Any:
    values = ks.typed(args[0], list)
    start, stop = to_int(args[1]), to_int(args[2])
    if values is not None:
        start, stop = _span(len(values), start, stop)
        values[:] = values[start : stop + 1] if start <= stop else []
        ks.drop_if_empty(args[0], values)
    return OK


@command("SADD", -3)
def sadd(ks: Keyspace, args: list[bytes]) -> Any:
    members = ks.create(args[0], set)
    before = len(members)
    members.update(args[1:])
    return len(members) - before


@command("SREM", -3)
def srem(ks: Keyspace, args: list[bytes]) -> Any:
    members = ks.typed(args[0], set)
    if members is None:
        return 0
    before = len(members)
    members.difference_update(args[1:])
    ks.drop_if_empty(args[0], members)
    return before - len(members)


@command("SMEMBERS", 2)
def smembers(ks: Keyspace, args: list[bytes]) -> Any:
    return list(ks.typed(args[0], set) or ())


@command("SISMEMBER", 3)
def sismember(ks: Keyspace, args: list[bytes]) -> Any:
    return int(args[1] in (ks.typed(args[0], set) or ()))


@command("SCARD", 2)
def scard(ks: Keyspace, args: list[bytes]) -> Any:
    return len(ks.typed(args[0], set) or ())


@command("LSET", 4)
def lset(ks: Keyspace, args: list[bytes]) -> Any:
    values = ks.typed(args[0], list)
    index = to_int(args[1])
    if values is None:
        raise ReplyError(b"ERR no such key")
    if not -len(values) <= index < len(values):
        raise ReplyError(b"ERR index out of range")
    values[index] = args[2]
    return OK
