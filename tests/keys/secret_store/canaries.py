"""Planted secrets: random values shaped like real provider keys, made at run time.

They are generated, never written in the source, so the repository itself stays clean for the
secret scanner. Every value made here is remembered in :data:`PLANTED`; the no-leak tests assert
that none of them ever appears in a log line, an error message or a status answer.
"""

from __future__ import annotations

import secrets
import string

_BASE62 = string.ascii_letters + string.digits
PLANTED: set[str] = set()


def _random(n: int, alphabet: str = _BASE62) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(n))


def _plant(value: str) -> str:
    PLANTED.add(value)
    return value


def openai_key() -> str:
    return _plant("sk-" + "proj-" + _random(48))


def anthropic_key() -> str:
    return _plant("sk-" + "ant-api03-" + _random(93))


def gemini_key() -> str:
    return _plant("AI" + "za" + _random(35))


def opaque_secret() -> str:
    """A secret that matches no provider pattern: only registration can mask it."""
    return _plant("opq" + _random(29))


def aws_access_key_id() -> str:
    return _plant("AK" + "IA" + _random(16, string.ascii_uppercase + "234567"))


def aws_secret_access_key() -> str:
    return _plant(_random(40))


def leaked_in(text: str) -> list[str]:
    """The planted values found in ``text`` (shown masked, for the assertion message)."""
    return [v[:6] + "..." + v[-4:] for v in PLANTED if v in text]
