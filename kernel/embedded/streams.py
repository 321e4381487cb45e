"""Stream commands of the embedded store: XADD, XTRIM, XRANGE, XREVRANGE, XLEN, XDEL.

A :class:`Stream` keeps its entries in ID order, each ``((ms, seq), [field, value, ...])``.
Trimming with ``~`` removes whole hundreds of entries only (Redis removes whole nodes of up to 100
entries: a stream shorter than that is never trimmed approximately); ``=`` (the scripts') trims
exactly.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from typing import Any

from kernel.embedded.keyspace import Keyspace, command
from kernel.embedded.replies import SYNTAX, ReplyError, to_int, wrong_args

Id = tuple[int, int]
MAX_SEQ = 2**64 - 1
_ID = re.compile(rb"(\d+)(?:-(\d+|\*))?\Z")
NODE = 100  # entries per node of a Redis stream (stream-node-max-entries)
BAD_ID = b"ERR Invalid stream ID specified as stream command argument"


class Stream:
    __slots__ = ("entries", "ids", "last")

    def __init__(self) -> None:
        self.ids: list[Id] = []
        self.entries: list[list[bytes]] = []
        self.last: Id = (0, 0)

    def __len__(self) -> int:
        return len(self.ids)

    def __bool__(self) -> bool:
        return True  # an empty stream still exists (Redis keeps it)

    def trim_before(self, index: int) -> int:
        del self.ids[:index]
        del self.entries[:index]
        return index


def format_id(entry_id: Id) -> bytes:
    return b"%d-%d" % entry_id


def parse_id(raw: bytes, *, missing_seq: int = 0) -> Id:
    match = _ID.match(raw)
    if match is None or match.group(2) == b"*":
        raise ReplyError(BAD_ID)
    ms = int(match.group(1))
    seq = int(match.group(2)) if match.group(2) is not None else missing_seq
    if ms > MAX_SEQ or seq > MAX_SEQ:
        raise ReplyError(BAD_ID)
    return ms, seq


def _trim_spec(words: list[bytes], i: int) -> tuple[tuple[bytes, bytes, bool], int]:
    """((strategy, threshold, approximate), next index) of ``MAXLEN|MINID [=|~] threshold
    [LIMIT n]``."""
    strategy = words[i].upper()
    approximate = False
    i += 1
    if i < len(words) and words[i] in (b"=", b"~"):
        approximate = words[i] == b"~"
        i += 1
    if i >= len(words):
        raise ReplyError(SYNTAX)
    threshold = words[i]
    i += 1
    if i < len(words) and words[i].upper() == b"LIMIT":
        if i + 1 >= len(words):
            raise ReplyError(SYNTAX)
        to_int(words[i + 1])
        i += 2
    return (strategy, threshold, approximate), i


def _trim(stream: Stream, spec: tuple[bytes, bytes, bool]) -> int:
    strategy, threshold, approximate = spec
    if strategy == b"MAXLEN":
        keep = to_int(threshold)
        if keep < 0:
            raise ReplyError(b"ERR The MAXLEN argument must be >= 0.")
        count = max(0, len(stream.ids) - keep)
    else:
        count = bisect_left(stream.ids, parse_id(threshold))
    return stream.trim_before(count - count % NODE if approximate else count)


def _next_id(ks: Keyspace, stream: Stream, raw: bytes) -> Id:
    last = stream.last
    if raw == b"*":
        now = int(ks.clock() * 1000)
        return (now, 0) if now > last[0] else (last[0], last[1] + 1)
    if raw.endswith(b"-*"):
        ms = parse_id(raw[:-2])[0]
        wanted = (ms, 0 if ms > last[0] else last[1] + 1)
    else:
        wanted = parse_id(raw)
    if wanted == (0, 0):
        raise ReplyError(b"ERR The ID specified in XADD must be greater than 0-0")
    if wanted <= last:
        raise ReplyError(
            b"ERR The ID specified in XADD is equal or smaller than the target stream top item"
        )
    return wanted


@command("XADD", -5)
def xadd(ks: Keyspace, args: list[bytes]) -> Any:
    key, i, nomk, trim = args[0], 1, False, None
    while i < len(args) and args[i].upper() in (b"NOMKSTREAM", b"MAXLEN", b"MINID"):
        if args[i].upper() == b"NOMKSTREAM":
            nomk, i = True, i + 1
        else:
            trim, i = _trim_spec(args, i)
    fields = args[i + 1 :]
    if i >= len(args) or not fields or len(fields) % 2:
        raise wrong_args(b"xadd")
    stream = ks.typed(key, Stream)
    if stream is None:
        if nomk:
            return None
        stream = Stream()
    entry_id = _next_id(ks, stream, args[i])
    if key not in ks.data:
        ks.add(key, stream)
    stream.ids.append(entry_id)
    stream.entries.append(list(fields))
    stream.last = entry_id
    if trim is not None:
        _trim(stream, trim)
    return format_id(entry_id)


@command("XTRIM", -4)
def xtrim(ks: Keyspace, args: list[bytes]) -> Any:
    if args[1].upper() not in (b"MAXLEN", b"MINID"):
        raise ReplyError(SYNTAX)
    spec, end = _trim_spec(args, 1)
    if end != len(args):
        raise ReplyError(SYNTAX)
    stream = ks.typed(args[0], Stream)
    if stream is None:
        return 0
    return _trim(stream, spec)


@command("XLEN", 2)
def xlen(ks: Keyspace, args: list[bytes]) -> Any:
    stream = ks.typed(args[0], Stream)
    return 0 if stream is None else len(stream.ids)


@command("XDEL", -3)
def xdel(ks: Keyspace, args: list[bytes]) -> Any:
    stream = ks.typed(args[0], Stream)
    wanted = [parse_id(raw) for raw in args[1:]]
    removed = 0
    for entry_id in wanted if stream is not None else []:
        at = bisect_left(stream.ids, entry_id)
        if at < len(stream.ids) and stream.ids[at] == entry_id:
            del stream.ids[at], stream.entries[at]
            removed += 1
    return removed


def _low(raw: bytes) -> Id:
    if raw == b"-":
        return (0, 0)
    if raw == b"+":
        return (MAX_SEQ, MAX_SEQ)
    if raw[:1] == b"(":
        ms, seq = parse_id(raw[1:])
        return (ms, seq + 1) if seq < MAX_SEQ else (ms + 1, 0)
    return parse_id(raw)


def _high(raw: bytes) -> Id:
    if raw == b"+":
        return (MAX_SEQ, MAX_SEQ)
    if raw == b"-":
        return (0, 0)
    if raw[:1] == b"(":
        ms, seq = parse_id(raw[1:], missing_seq=MAX_SEQ)
        return (ms, seq - 1) if seq > 0 else (ms - 1, MAX_SEQ)
    return parse_id(raw, missing_seq=MAX_SEQ)


def _count(words: list[bytes]) -> int | None:
    if not words:
        return None
    if len(words) != 2 or words[0].upper() != b"COUNT":
        raise ReplyError(SYNTAX)
    return to_int(words[1])


def _entries(stream: Stream, start: int, end: int, rev: bool, count: int | None) -> list[Any]:
    span = range(end - 1, start - 1, -1) if rev else range(start, end)
    if count is not None:
        span = span[: max(count, 0)]
    return [[format_id(stream.ids[n]), list(stream.entries[n])] for n in span]


@command("XRANGE", -4)
def xrange(ks: Keyspace, args: list[bytes]) -> Any:
    low, high, count = _low(args[1]), _high(args[2]), _count(args[3:])
    stream = ks.typed(args[0], Stream)
    if stream is None or low > high:
        return []
    start, end = bisect_left(stream.ids, low), bisect_right(stream.ids, high)
    return _entries(stream, start, end, False, count)


@command("XREVRANGE", -4)
def xrevrange(ks: Keyspace, args: list[bytes]) -> Any:
    high, low, count = _high(args[1]), _low(args[2]), _count(args[3:])
    stream = ks.typed(args[0], Stream)
    if stream is None or low > high:
        return []
    start, end = bisect_left(stream.ids, low), bisect_right(stream.ids, high)
    return _entries(stream, start, end, True, count)
