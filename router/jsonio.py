"""JSON for the request path: orjson when installed (the ``speed`` extra), else the standard library.

orjson parses and writes the gateway's and the providers' bodies several times faster, which
matters at thousands of requests per second; both produce compact UTF-8 JSON, so answers are the
same either way. What orjson refuses to write (non-string keys, integers past 64 bits) is written
by the standard library.
"""

from __future__ import annotations

import importlib
import json
from typing import Any


def _std_dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def _std_loads(data: bytes | str) -> Any:
    return json.loads(data)


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
    """Parse JSON; raises ValueError on invalid input (both libraries' errors derive from it)."""
    if _orjson is not None:
        return _orjson.loads(data)
    return _std_loads(data)
