"""JSON for the request path: orjson when installed (the ``speed`` extra), else the standard library.

orjson parses and writes the gateway's and the providers' bodies several times faster, which
matters at thousands of requests per second; both produce compact UTF-8 JSON, so answers are the
same either way. What orjson refuses to write (non-string keys, integers past 64 bits) is written
by the standard library.

Parsed JSON is at most :data:`MAX_DEPTH` containers deep: deeper input raises :class:`TooDeepError`
(a ValueError), with either library. (The standard library would raise RecursionError, and orjson
writes at most 254 levels, so a deep body would otherwise fail later, as a 500.)
"""

from __future__ import annotations

import importlib
import json
from typing import Any


def _std_dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str).encode()


#: Containers (objects, arrays) nested in one document, at most: a chat body with a tool whose
#: JSON schema nests deeply uses a few dozen.
MAX_DEPTH = 128


class TooDeepError(ValueError):
    """JSON nested deeper than MAX_DEPTH."""

    def __init__(self) -> None:
        super().__init__(f"JSON nested deeper than {MAX_DEPTH} levels")


def _std_loads(data: bytes | str) -> Any:
    return json.loads(data)


def _opens(data: bytes | str) -> int:
    """Opening brackets in ``data`` (strings included): an upper bound of its depth."""
    if isinstance(data, str):
        return data.count("[") + data.count("{")
    return data.count(b"[") + data.count(b"{")


def _too_deep(value: Any, limit: int) -> bool:
    """Whether ``value`` nests containers deeper than ``limit``: one level at a time, no
    recursion, stopping at the first level past the limit."""
    level = [value]
    for _ in range(limit):
        below: list[Any] = []
        for item in level:
            for child in item.values() if isinstance(item, dict) else item:
                if isinstance(child, dict | list):
                    below.append(child)
        if not below:
            return False
        level = below
    return True


try:
    _orjson: Any = importlib.import_module("orjson")
except ImportError:  # pragma: no cover - depends on the installed extras
    _orjson = None


def dumps(value: Any) -> bytes:
    """Compact JSON as UTF-8 bytes."""
    if _orjson is not None:
        try:
            result: bytes = _orjson.dumps(value, default=str)
            return result
        except TypeError:  # what orjson refuses (non-string keys, huge ints): the standard library
            pass
    return _std_dumps(value)


def loads(data: bytes | str) -> Any:
    """Parse JSON; raises ValueError on invalid input (both libraries' errors derive from it) and
    :class:`TooDeepError` on input nested deeper than :data:`MAX_DEPTH`."""
    try:
        value = _orjson.loads(data) if _orjson is not None else _std_loads(data)
    except RecursionError:
        raise TooDeepError from None
    except ValueError as exc:
        if _opens(data) > MAX_DEPTH and "depth" in str(exc).lower():
            raise TooDeepError from None
        raise
    if isinstance(value, dict | list) and _opens(data) > MAX_DEPTH and _too_deep(value, MAX_DEPTH):
        raise TooDeepError
    return value
