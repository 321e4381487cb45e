"""Sorted-set commands of the embedded store.

A :class:`ZSet` keeps ``member -> score`` and the ``(score, member)`` pairs in order (a sorted
list kept with bisect: the pool's sets hold one entry per key, a few thousand at most).
"""

from __future__ import annotations

import math
from bisect import bisect_left, insort
from typing import Any

from kernel.embedded.keyspace import Keyspace, command
from kernel.embedded.replies import SYNTAX, ReplyError, format_double, to_float, to_int

MIN_MAX = b"ERR min or max is not a float"


class ZSet:
    """Members, their scores, and the pairs in Redis's order (score, then member bytes)."""

    __slots__ = ("order", "scores")

    def __init__(self) -> None:
        self.scores: dict[bytes, float] = {}
        self.order: list[tuple[float, bytes]] = []

    def __len__(self) -> int:
        return len(self.scores)

    def put(self, member: bytes, score: float) -> None:
        old = self.scores.get(member)
        if old is not None:
            if old == score:
                return
            del self.order[bisect_left(self.order, (old, member))]
        self.scores[member] = score
        insort(self.order, (score, member))

    def remove(self, member: bytes) -> bool:
        old = self.scores.pop(member, None)
        if old is None:
            return False
        del self.order[bisect_left(self.order, (old, member))]
        return True

    def score_span(self, low: bytes, high: bytes) -> tuple[int, int]:
        """Positions [start, end) of the scores between two Redis bounds (``(`` = exclusive)."""
        lo, lo_open = _bound(low)
        hi, hi_open = _bound(high)
        if lo_open:
            start = (
                len(self.order)
                if lo == math.inf
                else _first_at(self.order, math.nextafter(lo, math.inf))
            )
        else:
            start = _first_at(self.order, lo)
        if hi_open:
            end = _first_at(self.order, hi)
        else:
            end = (
                len(self.order)
                if hi == math.inf
                else _first_at(self.order, math.nextafter(hi, math.inf))
            )
        return start, max(start, end)


def _first_at(order: list[tuple[float, bytes]], score: float) -> int:
    return bisect_left(order, (score, b""))


def _bound(raw: bytes) -> tuple[float, bool]:
    if raw[:1] == b"(":
        return to_float(raw[1:], MIN_MAX), True
    return to_float(raw, MIN_MAX), False


def _flags(words: list[bytes]) -> tuple[set[bytes], int]:
    flags: set[bytes] = set()
    i = 0
    while i < len(words) and words[i].upper() in (b"NX", b"XX", b"GT", b"LT", b"CH", b"INCR"):
        flags.add(words[i].upper())
        i += 1
    if {b"NX", b"XX"} <= flags:
        raise ReplyError(b"ERR XX and NX options at the same time are not compatible")
    if len(flags & {b"NX", b"GT", b"LT"}) > 1:
        raise ReplyError(b"ERR GT, LT, and/or NX options at the same time are not compatible")
    return flags, i


@command("ZADD", -4)
def zadd(ks: Keyspace, args: list[bytes]) -> Any:
    flags, used = _flags(args[1:])
    pairs = args[1 + used :]
    if not pairs or len(pairs) % 2:
        raise ReplyError(SYNTAX)
    if b"INCR" in flags and len(pairs) != 2:
        raise ReplyError(b"ERR INCR option supports a single increment-element pair")
    scores = [to_float(s) for s in pairs[::2]]
    z = ks.typed(args[0], ZSet)
    if z is None:
        if b"XX" in flags:
            return None if b"INCR" in flags else 0
        z = ZSet()
        ks.add(args[0], z)
    added = changed = 0
    result: float | None = None
    for score, member in zip(scores, pairs[1::2], strict=True):
        old = z.scores.get(member)
        new = _new_score(flags, old, score)
        if new is None:
            continue
        result = new
        if old is None:
            added += 1
        elif new != old:
            changed += 1
        z.put(member, new)
    ks.drop_if_empty(args[0], z)
    if b"INCR" in flags:
        return None if result is None else format_double(result)
    return added + changed if b"CH" in flags else added


def _new_score(flags: set[bytes], old: float | None, score: float) -> float | None:
    """The score a ZADD element ends with, or None when its flags leave it alone."""
    if old is None:
        return None if b"XX" in flags else score
    if b"NX" in flags:
        return None
    new = old + score if b"INCR" in flags else score
    if math.isnan(new):
        raise ReplyError(b"ERR resulting score is not a number (NaN)")
    if (b"GT" in flags and new <= old) or (b"LT" in flags and new >= old):
        return None
    return new


@command("ZINCRBY", 4)
def zincrby(ks: Keyspace, args: list[bytes]) -> Any:
    by = to_float(args[1])
    z = ks.create(args[0], ZSet)
    new = z.scores.get(args[2], 0.0) + by
    if math.isnan(new):
        ks.drop_if_empty(args[0], z)
        raise ReplyError(b"ERR resulting score is not a number (NaN)")
    z.put(args[2], new)
    return format_double(new)


@command("ZREM", -3)
def zrem(ks: Keyspace, args: list[bytes]) -> Any:
    z = ks.typed(args[0], ZSet)
    if z is None:
        return 0
    removed = sum(1 for m in args[1:] if z.remove(m))
    ks.drop_if_empty(args[0], z)
    return removed


@command("ZSCORE", 3)
def zscore(ks: Keyspace, args: list[bytes]) -> Any:
    z = ks.typed(args[0], ZSet)
    score = None if z is None else z.scores.get(args[1])
    return None if score is None else format_double(score)


@command("ZCARD", 2)
def zcard(ks: Keyspace, args: list[bytes]) -> Any:
    return len(ks.typed(args[0], ZSet) or ())


@command("ZCOUNT", 4)
def zcount(ks: Keyspace, args: list[bytes]) -> Any:
    z = ks.typed(args[0], ZSet)
    if z is None:
        _bound(args[1]), _bound(args[2])
        return 0
    start, end = z.score_span(args[1], args[2])
    return end - start


@command("ZRANK", 3)
def zrank(ks: Keyspace, args: list[bytes]) -> Any:
    z = ks.typed(args[0], ZSet)
    score = None if z is None else z.scores.get(args[1])
    return None if score is None else bisect_left(z.order, (score, args[1]))


def _reply(pairs: list[tuple[float, bytes]], scores: bool) -> list[bytes]:
    if not scores:
        return [m for _, m in pairs]
    out: list[bytes] = []
    for score, member in pairs:
        out += (member, format_double(score))
    return out


_RANGE_WORDS = frozenset((b"WITHSCORES", b"BYSCORE", b"REV", b"LIMIT"))


def _range_options(words: list[bytes]) -> tuple[bool, bool, bool, tuple[int, int] | None]:
    """(withscores, byscore, rev, limit) of ZRANGE's / ZRANGEBYSCORE's trailing words."""
    scores = byscore = rev = False
    limit = None
    i = 0
    while i < len(words):
        word = words[i]
        if word not in _RANGE_WORDS:
            word = word.upper()
        if word == b"WITHSCORES":
            scores = True
        elif word == b"BYSCORE":
            byscore = True
        elif word == b"REV":
            rev = True
        elif word == b"LIMIT" and i + 2 < len(words):
            limit = (to_int(words[i + 1]), to_int(words[i + 2]))
            i += 2
        else:
            raise ReplyError(SYNTAX)
        i += 1
    return scores, byscore, rev, limit


def _by_index(z: ZSet, start: int, stop: int, rev: bool) -> list[tuple[float, bytes]]:
    n = len(z.order)
    start, stop = (start + n if start < 0 else start), (stop + n if stop < 0 else stop)
    start, stop = max(start, 0), min(stop, n - 1)
    if start > stop:
        return []
    if rev:
        return z.order[n - 1 - stop : n - start][::-1]
    return z.order[start : stop + 1]


def _by_score(z: ZSet, low: bytes, high: bytes, rev: bool, limit: tuple[int, int] | None) -> Any:
    start, end = z.score_span(high, low) if rev else z.score_span(low, high)
    found = z.order[start:end]
    if rev:
        found.reverse()
    if limit is not None:
        offset, count = limit
        if offset < 0:
            return []
        found = found[offset:] if count < 0 else found[offset : offset + count]
    return found


def _range(
    ks: Keyspace, key: bytes, low: bytes, high: bytes, words: list[bytes], **fixed: bool
) -> Any:
    scores, byscore, rev, limit = _range_options(words)
    byscore, rev = byscore or fixed.get("byscore", False), rev or fixed.get("rev", False)
    if limit is not None and not byscore:
        raise ReplyError(
            b"ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX"
        )
    z = ks.typed(key, ZSet)
    if byscore:
        if z is None:
            _bound(low), _bound(high)
            return []
        return _reply(_by_score(z, low, high, rev, limit), scores)
    start, stop = to_int(low), to_int(high)
    return [] if z is None else _reply(_by_index(z, start, stop, rev), scores)


@command("ZRANGE", -4)
def zrange(ks: Keyspace, args: list[bytes]) -> Any:
    return _range(ks, args[0], args[1], args[2], args[3:])


@command("ZREVRANGE", -4)
def zrevrange(ks: Keyspace, args: list[bytes]) -> Any:
    return _range(ks, args[0], args[1], args[2], args[3:], rev=True)


@command("ZRANGEBYSCORE", -4)
def zrangebyscore(ks: Keyspace, args: list[bytes]) -> Any:
    return _range(ks, args[0], args[1], args[2], args[3:], byscore=True)


@command("ZREVRANGEBYSCORE", -4)
def zrevrangebyscore(ks: Keyspace, args: list[bytes]) -> Any:
    return _range(ks, args[0], args[1], args[2], args[3:], byscore=True, rev=True)


@command("ZREMRANGEBYSCORE", 4)
def zremrangebyscore(ks: Keyspace, args: list[bytes]) -> Any:
    z = ks.typed(args[0], ZSet)
    if z is None:
        _bound(args[1]), _bound(args[2])
        return 0
    start, end = z.score_span(args[1], args[2])
    for _, member in z.order[start:end]:
        del z.scores[member]
    del z.order[start:end]
    ks.drop_if_empty(args[0], z)
    return end - start
