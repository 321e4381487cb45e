"""Realistic provider keys, generated at run time.

The repository is scanned for secrets (keys/scanner.py), so no key-looking literal is committed:
tests build keys of the real shapes from random characters when they run.
"""

from __future__ import annotations

import secrets
import string

_URLSAFE = string.ascii_letters + string.digits + "_-"
_ALNUM = string.ascii_letters + string.digits
_BASE32 = string.ascii_uppercase + "234567"
_BASE64 = string.ascii_letters + string.digits + "+/"


def _random(alphabet: str, length: int) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


def openai_project_key() -> str:
    """``sk-proj-`` and 156 URL-safe characters (OpenAI's project keys)."""
    return "sk-proj-" + _random(_URLSAFE, 156)


def openai_legacy_key() -> str:
    """``sk-`` and 48 letters and digits (OpenAI's older user keys)."""
    return "sk-" + _random(_ALNUM, 48)


def anthropic_key() -> str:
    """``sk-ant-api03-``, 93 URL-safe characters and ``AA`` (Anthropic's API keys)."""
    return "sk-ant-api03-" + _random(_URLSAFE, 93) + "AA"


def gemini_key() -> str:
    """``AIza`` and 35 URL-safe characters (Google AI Studio / Gemini keys)."""
    return "AIza" + _random(_URLSAFE, 35)


def aws_access_key_id() -> str:
    """``AKIA`` and 16 base-32 characters."""
    return "AKIA" + _random(_BASE32, 16)


def aws_secret_access_key() -> str:
    """40 base-64 characters."""
    return _random(_BASE64, 40)


def opaque_secret(length: int = 32) -> str:
    """A secret of no known shape (a self-hosted gateway's token, say)."""
    return _random(_ALNUM, length)
