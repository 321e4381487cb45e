"""The Redis Lua scripts, one file per atomic operation, shipped as package data.

Scripts are read once with :mod:`importlib.resources` and called by SHA (EVALSHA); the store
reloads them transparently when Redis answers NOSCRIPT (a restart or a failover).

Redis scripts cannot import each other. A script whose first lines are ``-- include: <lib>``
comments gets ``lua/<lib>.lua`` prepended when it is loaded, so the key-pool scripts share one
library (``lib_pool.lua``: GCRA, state records, health) instead of copies of it, and those that
keep budgets or write the usage log a second (``lib_usage.lua``, included after it).

Each script has a typed binding beside it (``lua/<name>.py``): its KEYS in order, its ARGV from
named arguments, its reply as a dataclass; nothing else knows a position. The pool's record
formats are defined once in Python in ``lua/records.py`` (and once in Lua in lib_pool.lua). This
package is the bottom layer: it imports nothing but the standard library and itself.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from importlib import resources

from lua.includes import expand


@dataclass(frozen=True)
class Script:
    """A Lua script: its name (file stem), source and SHA1 (the EVALSHA handle)."""

    name: str
    source: str
    sha: str


def _read(name: str) -> str:
    return (resources.files(__name__) / f"{name}.lua").read_text(encoding="utf-8")


def _expand(source: str) -> str:
    return expand(source, _read)


@cache
def load(name: str) -> Script:
    """The script ``lua/<name>.lua`` with its includes; FileNotFoundError for an unknown name."""
    return inline(name, _read(name))


def inline(name: str, source: str) -> Script:
    """A script from source text, its ``-- include:`` lines expanded (tests run the libraries'
    record readers and writers this way)."""
    source = _expand(source)
    return Script(name=name, source=source, sha=hashlib.sha1(source.encode()).hexdigest())  # noqa: S324


def available() -> list[str]:
    """Names of every shipped script."""
    return sorted(
        entry.name.removesuffix(".lua")
        for entry in resources.files(__name__).iterdir()
        if entry.name.endswith(".lua") and not entry.name.startswith("lib_")
    )
