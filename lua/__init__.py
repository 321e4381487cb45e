"""The Redis Lua scripts, one file per atomic operation, shipped as package data.

Scripts are read once with :mod:`importlib.resources` and called by SHA (EVALSHA); the store
reloads them transparently when Redis answers NOSCRIPT (a restart or a failover).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from importlib import resources


@dataclass(frozen=True)
class Script:
    """A Lua script: its name (file stem), source and SHA1 (the EVALSHA handle)."""

    name: str
    source: str
    sha: str


@cache
def load(name: str) -> Script:
    """The script ``lua/<name>.lua``; raises FileNotFoundError for an unknown name."""
    source = (resources.files(__name__) / f"{name}.lua").read_text(encoding="utf-8")
    return Script(name=name, source=source, sha=hashlib.sha1(source.encode()).hexdigest())  # noqa: S324


def available() -> list[str]:
    """Names of every shipped script."""
    return sorted(
        entry.name.removesuffix(".lua")
        for entry in resources.files(__name__).iterdir()
        if entry.name.endswith(".lua")
    )
