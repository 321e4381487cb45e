"""The one encoding of free text inside the key pool's records (the twin of lib_pool.lua's).

Records are tab-separated strings in Redis hash fields (lua/lib_pool.lua); the reserve script's
notes are ``key|reason|until``; tags are ``;k=v;`` lists matched against ``k=v,k=v`` wants. Free
text inside them (health reasons, tag names and values) is percent-encoded on write: ``%``, every
control character (tab and newline included) and the separators ``| ; = ,`` become ``%XX``, so no
value can add or move a field. Both sides decode on read; the Lua functions ``enc``/``dec`` in
lib_pool.lua do exactly what :func:`encode_text`/:func:`decode_text` do.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

_UNSAFE = re.compile(r"[%\x00-\x1f\x7f|;=,]")
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")


def encode_text(value: str) -> str:
    """``value`` safe inside any record: the unsafe characters as ``%XX`` (UTF-8 bytes are kept)."""
    return _UNSAFE.sub(lambda m: f"%{ord(m.group()):02X}", value)


def decode_text(value: str) -> str:
    """The inverse of :func:`encode_text` (and of lib_pool.lua's ``enc``)."""
    if "%" not in value:
        return value
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), value)


def tags_record(tags: Mapping[str, str]) -> str:
    """A key's tags as the pool's records hold them: ``;k=v;k=v;`` (sorted, encoded)."""
    return ";" + "".join(f"{encode_text(k)}={encode_text(v)};" for k, v in sorted(tags.items()))


def tags_wanted(tags: Mapping[str, str]) -> str:
    """Required tags as the reserve script takes them: ``k=v,k=v`` (sorted, encoded)."""
    return ",".join(f"{encode_text(k)}={encode_text(v)}" for k, v in sorted(tags.items()))
