"""Key and string commands of the embedded store: DEL, EXISTS, EXPIRE/PEXPIRE, TTL/PTTL, TYPE,
SCAN/KEYS, TIME, PING, GET/SET/INCR and friends (Redis 7 semantics and error texts)."""

from __future__ import annotations

import re
from typing import Any

from kernel.embedded.keyspace import Keyspace, command
from kernel.embedded.luahash import LuaHash
from kernel.embedded.replies import (
    OK,
    SYNTAX,
    ReplyError,
    Status,
    check_int,
    to_int,
)
from kernel.embedded.streams import Stream
from kernel.embedded.zsets import ZSet

TYPE_NAMES: dict[type, bytes] = {
    bytes: b"string",
    LuaHash: b"hash",
    list: b"list",
    set: b"set",
    ZSet: b"zset",
    Stream: b"stream",
}


def glob_regex(pattern: bytes) -> re.Pattern[bytes]:
    """Redis's glob (``*``, ``?``, ``[a-z]``, ``[^x]``, ``\\`` escapes) as a regular expression."""
    out, i, n = [], 0, len(pattern)
    while i < n:
        c = pattern[i : i + 1]
        if c == b"*":
            out.append(b".*")
        elif c == b"?":
            out.append(b".")
        elif c == b"\\" and i + 1 < n:
            i += 1
            out.append(re.escape(pattern[i : i + 1]))
        elif c == b"[" and b"]" in pattern[i + 1 :]:
            end = pattern.index(b"]", i + 1)
            body = pattern[i + 1 : end]
            negate = body.startswith(b"^")
            body = body[1:] if negate else body
            parts = [re.escape(bytes([b])) for b in body]
            klass = b"".join(parts).replace(b"\\-", b"-") if parts else b"\\x00-\\xff"
            out.append(b"[" + (b"^" if negate else b"") + klass + b"]")
            i = end
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile(b"".join(out) + b"\\Z", re.DOTALL)


@command("PING", -1)
def ping(ks: Keyspace, args: list[bytes]) -> Any:
    return args[0] if args else Status(b"PONG")


@command("TIME", 1)
def time_(ks: Keyspace, args: list[bytes]) -> Any:
    micros = int(ks.clock() * 1_000_000)
    return [b"%d" % (micros // 1_000_000), b"%d" % (micros % 1_000_000)]


@command("DEL", -2)
def delete(ks: Keyspace, args: list[bytes]) -> Any:
    return sum(1 for key in args if ks.get(key) is not None and ks.delete(key))


COMMANDS_ALIAS = command("UNLINK", -2)(delete)


@command("EXISTS", -2)
def exists(ks: Keyspace, args: list[bytes]) -> Any:
    return sum(1 for key in args if ks.get(key) is not None)


@command("TYPE", 2)
def type_(ks: Keyspace, args: list[bytes]) -> Any:
    value = ks.get(args[0])
    return Status(b"none" if value is None else TYPE_NAMES[type(value)])


_NO_FLAGS: frozenset[bytes] = frozenset()


def _expire(ks: Keyspace, args: list[bytes], unit: int, name: bytes) -> int:
    key, amount = args[0], to_int(args[1])
    flags = {a.upper() for a in args[2:]} if len(args) > 2 else _NO_FLAGS
    if not flags <= {b"NX", b"XX", b"GT", b"LT"}:
        raise ReplyError(
            b"ERR Unsupported option " + sorted(flags - {b"NX", b"XX", b"GT", b"LT"})[0]
        )
    if ks.get(key) is None:
        return 0
    now = ks.now_ms()
    at = amount * unit + now
    if abs(amount) > 2**62 // unit:
        raise ReplyError(b"ERR invalid expire time in '%s' command" % name)
    current = ks.expires.get(key)
    if not _expire_allowed(flags, current, at):
        return 0
    if at <= now:
        ks.delete(key)
    else:
        ks.set_expire(key, at)
    return 1


def _expire_allowed(flags: set[bytes] | frozenset[bytes], current: int | None, at: int) -> bool:
    if b"NX" in flags and current is not None:
        return False
    if b"XX" in flags and current is None:
        return False
    if b"GT" in flags and (current is None or at <= current):
        return False
    return not (b"LT" in flags and current is not None and at >= current)


@command("EXPIRE", -3)
def expire(ks: Keyspace, args: list[bytes]) -> Any:
    return _expire(ks, args, 1000, b"expire")


@command("PEXPIRE", -3)
def pexpire(ks: Keyspace, args: list[bytes]) -> Any:
    return _expire(ks, args, 1, b"pexpire")


@command("PERSIST", 2)
def persist(ks: Keyspace, args: list[bytes]) -> Any:
    if ks.get(args[0]) is None:
        return 0
    return int(ks.persist(args[0]))


def _ttl_ms(ks: Keyspace, key: bytes) -> int:
    if ks.get(key) is None:
        return -2
    at = ks.expires.get(key)
    return -1 if at is None else max(0, at - ks.now_ms())


@command("PTTL", 2)
def pttl(ks: Keyspace, args: list[bytes]) -> Any:
    return _ttl_ms(ks, args[0])


@command("TTL", 2)
def ttl(ks: Keyspace, args: list[bytes]) -> Any:
    ms = _ttl_ms(ks, args[0])
    return ms if ms < 0 else (ms + 500) // 1000


@command("SCAN", -2)
def scan(ks: Keyspace, args: list[bytes]) -> Any:
    """Every matching key in one answer (cursor 0): what SCAN guarantees, in one step."""
    to_int(args[0], b"ERR invalid cursor")
    pattern, kind = None, None
    options = args[1:]
    if len(options) % 2:
        raise ReplyError(SYNTAX)
    for name, value in zip(options[::2], options[1::2], strict=True):
        upper = name.upper()
        if upper == b"MATCH":
            pattern = glob_regex(value)
        elif upper == b"TYPE":
            kind = value.lower()
        elif upper == b"COUNT":
            if to_int(value) < 1:
                raise ReplyError(SYNTAX)
        else:
            raise ReplyError(SYNTAX)
    found = [
        key
        for key in ks.live_keys()
        if (pattern is None or pattern.match(key))
        and (kind is None or TYPE_NAMES[type(ks.data[key])] == kind)
    ]
    return [b"0", found]


@command("KEYS", 2)
def keys(ks: Keyspace, args: list[bytes]) -> Any:
    pattern = glob_regex(args[0])
    return [key for key in ks.live_keys() if pattern.match(key)]


@command("DBSIZE", 1)
def dbsize(ks: Keyspace, args: list[bytes]) -> Any:
    return len(ks.live_keys())


@command("FLUSHDB", -1)
def flushdb(ks: Keyspace, args: list[bytes]) -> Any:
    ks.flush()
    return OK


command("FLUSHALL", -1)(flushdb)


# -- strings --------------------------------------------------------------------------------------
@command("GET", 2)
def get(ks: Keyspace, args: list[bytes]) -> Any:
    return ks.typed(args[0], bytes)


@command("MGET", -2)
def mget(ks: Keyspace, args: list[bytes]) -> Any:
    return [v if type(v := ks.get(key)) is bytes else None for key in args]


def _set_options(ks: Keyspace, options: list[bytes]) -> tuple[set[bytes], int | None]:
    flags: set[bytes] = set()
    deadline = None
    i = 0
    while i < len(options):
        word = options[i].upper()
        if word in (b"NX", b"XX", b"GET", b"KEEPTTL"):
            flags.add(word)
        elif word in (b"EX", b"PX", b"EXAT", b"PXAT") and i + 1 < len(options) and deadline is None:
            amount = to_int(options[i + 1])
            if amount <= 0:
                raise ReplyError(b"ERR invalid expire time in 'set' command")
            scale = 1000 if word in (b"EX", b"EXAT") else 1
            base = ks.now_ms() if word in (b"EX", b"PX") else 0
            deadline = base + amount * scale
            i += 1
        else:
            raise ReplyError(SYNTAX)
        i += 1
    if {b"NX", b"XX"} <= flags or (b"KEEPTTL" in flags and deadline is not None):
        raise ReplyError(SYNTAX)
    return flags, deadline


@command("SET", -3)
def set_(ks: Keyspace, args: list[bytes]) -> Any:
    key, value = args[0], args[1]
    flags, deadline = _set_options(ks, args[2:])
    old = ks.typed(key, bytes) if b"GET" in flags else ks.get(key)
    if (b"NX" in flags and old is not None) or (b"XX" in flags and old is None):
        return old if b"GET" in flags else None
    ks.set_value(key, value, keep_ttl=b"KEEPTTL" in flags)
    if deadline is not None:
        ks.set_expire(key, deadline)
    return old if b"GET" in flags else OK


@command("SETNX", 3)
def setnx(ks: Keyspace, args: list[bytes]) -> Any:
    if ks.get(args[0]) is not None:
        return 0
    ks.set_value(args[0], args[1])
    return 1


def _incr(ks: Keyspace, key: bytes, by: int) -> int:
    old = ks.typed(key, bytes)
    value = check_int((to_int(old) if old is not None else 0) + by)
    ks.set_value(key, b"%d" % value, keep_ttl=True)
    return value


@command("INCR", 2)
def incr(ks: Keyspace, args: list[bytes]) -> Any:
    return _incr(ks, args[0], 1)


@command("DECR", 2)
def decr(ks: Keyspace, args: list[bytes]) -> Any:
    return _incr(ks, args[0], -1)


@command("INCRBY", 3)
def incrby(ks: Keyspace, args: list[bytes]) -> Any:
    return _incr(ks, args[0], to_int(args[1]))


@command("DECRBY", 3)
def decrby(ks: Keyspace, args: list[bytes]) -> Any:
    return _incr(ks, args[0], -to_int(args[1]))
