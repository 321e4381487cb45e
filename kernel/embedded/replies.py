"""What the embedded store's commands answer, as Redis answers it (RESP2), and how numbers and
arguments are read: the pieces shared by the keyspace, the Lua bridge and the client.

Values are ``bytes`` (bulk strings), ``int`` (integers), ``None`` (nil), lists (arrays),
:class:`Status` (simple strings such as ``OK``) and :class:`ReplyError` (error replies). Messages
are Redis 7's own, so callers (and tests) see the same text on every backend.
"""

from __future__ import annotations

import math
import re

WRONGTYPE = b"WRONGTYPE Operation against a key holding the wrong kind of value"
NOT_INTEGER = b"ERR value is not an integer or out of range"
NOT_FLOAT = b"ERR value is not a valid float"
SYNTAX = b"ERR syntax error"
OVERFLOW = b"ERR increment or decrement would overflow"
INT_MIN, INT_MAX = -(2**63), 2**63 - 1
_SPACES = frozenset(b" \t\n\r\x0b\x0c")
_INTEGER = re.compile(rb"(0|-?[1-9][0-9]*)\Z")


class Status(bytes):
    """A simple string reply (``+OK``)."""


OK = Status(b"OK")


class ReplyError(Exception):
    """An error reply; raised by a command, answered as an error by the server."""

    def __init__(self, message: bytes) -> None:
        super().__init__(message)
        self.message = message


def wrong_args(name: bytes) -> ReplyError:
    return ReplyError(b"ERR wrong number of arguments for '%s' command" % name.lower())


def to_int(raw: bytes, error: bytes = NOT_INTEGER) -> int:
    """A Redis integer argument (no spaces, no sign on zero's leading digits, 64 bits)."""
    if raw.isdigit() and len(raw) < 19 and (raw[0] != 48 or len(raw) == 1):  # the common case
        return int(raw)
    if _INTEGER.match(raw) is None:
        raise ReplyError(error)
    value = int(raw)
    if not INT_MIN <= value <= INT_MAX:
        raise ReplyError(error)
    return value


def to_float(raw: bytes, error: bytes = NOT_FLOAT) -> float:
    """A Redis double argument (``inf``, ``-inf``, ``+inf`` accepted; NaN refused)."""
    try:
        value = float(raw)
    except ValueError:
        raise ReplyError(error) from None
    if value != value or raw[0] in _SPACES or raw[-1] in _SPACES or b"_" in raw:
        raise ReplyError(error)
    return value


def format_double(value: float) -> bytes:
    """A double as Redis 7.0 writes it (``%.17g``; ``inf``/``-inf``)."""
    if math.isinf(value):
        return b"inf" if value > 0 else b"-inf"
    return b"%.17g" % value


def check_int(value: int) -> int:
    if not INT_MIN <= value <= INT_MAX:
        raise ReplyError(OVERFLOW)
    return value
