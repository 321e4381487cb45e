"""``-- include:`` expansion, keeping of a library only the functions a script can reach.

Redis runs a script's whole text on every EVALSHA: each ``local function`` of an included
library is a closure made again per call, whether the script uses it or not (with its upvalues:
a few hundred instructions each). A library's top-level ``local function NAME(...)`` whose name
the script cannot reach (not in its own text, not in a kept part of a library, transitively) is
left out; everything else of a library (constants, ``do`` blocks) is kept as it is.
"""

from __future__ import annotations

import re
from collections.abc import Callable

_FUNCTION = re.compile(r"local function (\w+)\(")
_INCLUDE = "-- include: "


def _chunks(text: str) -> list[tuple[str | None, str]]:
    """A library's text as (function name or None, text) parts, in order. A function is its
    ``local function`` line through the first ``end`` at column 0, or that line alone when the
    next code line is not indented (a one-line function)."""
    lines = text.split("\n")
    out: list[tuple[str | None, str]] = []
    i = 0
    while i < len(lines):
        match = _FUNCTION.match(lines[i])
        if not match:
            out.append((None, lines[i]))
            i += 1
            continue
        end = i
        following = next((x for x in lines[i + 1 :] if x.strip()), "")
        if following[:1].isspace():
            end = next(j for j in range(i + 1, len(lines)) if re.match(r"end\b", lines[j]))
        out.append((match.group(1), "\n".join(lines[i : end + 1])))
        i = end + 1
    return out


def _keep(libraries: list[list[tuple[str | None, str]]], body: str) -> set[str]:
    """Names of the library functions reachable from ``body`` and the libraries' other parts."""
    reach = "\n".join([body, *(t for lib in libraries for n, t in lib if n is None)])
    kept: set[str] = set()
    functions = {n: t for lib in libraries for n, t in lib if n is not None}
    grew = True
    while grew:
        grew = False
        for name, text in functions.items():
            if name not in kept and re.search(rf"\b{name}\b", reach):
                kept.add(name)
                reach += "\n" + text
                grew = True
    return kept


def expand(source: str, read: Callable[[str], str]) -> str:
    """``source`` with its leading ``-- include: <name>`` lines' texts (``read(name)``) before
    it; of the ``lib_*`` ones, only the functions the script can reach."""
    names: list[str] = []
    for line in source.splitlines():
        if not line.startswith(_INCLUDE):
            break
        names.append(line.removeprefix(_INCLUDE).strip())
    texts = [read(name) for name in names]
    libraries = [_chunks(t) for n, t in zip(names, texts, strict=True) if n.startswith("lib_")]
    body = "\n".join(
        [*(t for n, t in zip(names, texts, strict=True) if not n.startswith("lib_")), source]
    )
    kept = _keep(libraries, body)
    parts: list[str] = []
    for name, text in zip(names, texts, strict=True):
        if name.startswith("lib_"):
            text = "\n".join(t for n, t in _chunks(text) if n is None or n in kept)
        parts.append(text)
    return "\n".join([*parts, source])
