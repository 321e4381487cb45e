"""Masking of secrets: one masked form for display, and redaction of free text.

``mask_secret("sk-proj-abcdefghijklmnopxyz1")`` gives ``"sk-proj-abc...xyz1"`` (the form of
source document 001): the provider prefix, three characters, an ellipsis and the last four.

``redact(text)`` replaces everything in ``text`` that looks like a provider key (OpenAI, Anthropic,
Google, AWS access key ids, Vault tokens), every credential announced by its context (bearer tokens,
``x-api-key``/``x-goog-api-key`` headers, ``key=`` query parameters, ``api_key``/``secret``/
``token``/``password``/AWS ``secret_access_key`` assignments, the password of a URL) and every value
registered with :func:`register_secret` (every secret the secret store hands out is registered) by
its masked form. The logging pipeline, error answers, status and metrics all pass through it.

Key patterns only match at the start of a word: ``desk-reservation-service`` is not a key.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable

_PREFIXES = (
    "sk-ant-admin01-",
    "sk-ant-api03-",
    "sk-ant-",
    "sk-proj-",
    "sk-svcacct-",
    "sk-admin-",
    "sk-",
    "AIza",
    "AKIA",
    "ASIA",
    "hvs.",
)

#: Below this many characters after the provider prefix nothing of the value is shown: the
#: 3 + 4 characters of the masked form must stay a small part of what is hidden.
_SHORTEST_SHOWN = 16

# Values that look like keys of the providers and stores this product talks to, at a word start.
_PATTERNS = re.compile(
    r"(?<![A-Za-z0-9])(?:"
    r"sk-ant-[A-Za-z0-9_\-]{16,}"
    r"|sk-[A-Za-z0-9_\-]{16,}"
    r"|AIza[0-9A-Za-z_\-]{30,}"
    r"|(?:AKIA|ASIA)[0-9A-Z]{16}"
    r"|hvs\.[A-Za-z0-9_\-]{16,}"
    r")"
)
# Credentials announced by their context: "Bearer x", "x-api-key: x", "key=x", "api_key": "x".
_CONTEXTUAL = re.compile(
    r"(?i)(bearer\s+|x-api-key[\"']?\s*[:=]\s*[\"']?|x-goog-api-key[\"']?\s*[:=]\s*[\"']?"
    r"|api[-_]?key[\"']?\s*[:=]\s*[\"']?|[?&]key=|secret[\"']?\s*[:=]\s*[\"']?"
    r"|secret[-_]?access[-_]?key[\"']?\s*[:=]\s*[\"']?|password[\"']?\s*[:=]\s*[\"']?"
    r"|token[\"']?\s*[:=]\s*[\"']?)"
    r"([A-Za-z0-9_\-\.+/=]{8,})"
)
# The password of a URL (redis://user:password@host, https://user:password@host).
_URL_PASSWORD = re.compile(r"(?i)(\b[a-z][a-z0-9+.\-]*://[^\s:/@]*:)([^\s@/]+)(@)")
# Candidate tokens to look up among registered secrets: coarse, then split on URL/assignment marks.
_TOKEN = re.compile(r"[^\s\"'`,;<>(){}\[\]|]{6,}")
_FINE_TOKEN = re.compile(r"[^\s\"'`,;<>(){}\[\]|=&?:/\\]{6,}")


def mask_secret(value: str | None) -> str:
    """The display form of a secret: provider prefix + 3 characters + '...' + last 4."""
    if not value:
        return ""
    prefix = next((p for p in _PREFIXES if value.startswith(p)), "")
    if len(value) - len(prefix) < _SHORTEST_SHOWN:
        return "****"
    head = value[: len(prefix) + 3]
    return f"{head}...{value[-4:]}"


class _Registry:
    """Exact secret values to redact even when they match no pattern."""

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._lock = threading.Lock()

    def add(self, value: str) -> None:
        if value and len(value) >= 6:
            with self._lock:
                self._values.add(value)

    def discard(self, value: str) -> None:
        with self._lock:
            self._values.discard(value)

    def __contains__(self, value: str) -> bool:
        return value in self._values

    def __bool__(self) -> bool:
        return bool(self._values)


_registry = _Registry()


def register_secret(value: str) -> None:
    """Make ``value`` redacted wherever it appears in text that passes through :func:`redact`."""
    _registry.add(value)


def register_secrets(values: Iterable[str]) -> None:
    for value in values:
        _registry.add(value)


def forget_secret(value: str) -> None:
    _registry.discard(value)


def _redact_registered(text: str) -> str:
    if not _registry:
        return text
    found = {m.group(0) for m in _TOKEN.finditer(text) if m.group(0) in _registry}
    # A registered secret can sit inside a longer token ("key=SECRET&x=1", "Bearer:SECRET").
    found.update(m.group(0) for m in _FINE_TOKEN.finditer(text) if m.group(0) in _registry)
    out = text
    for value in sorted(found, key=len, reverse=True):
        out = out.replace(value, mask_secret(value))
    return out


def redact(text: str) -> str:
    """``text`` with every secret-looking value replaced by its masked form."""
    if not text:
        return text
    out = _redact_registered(text)
    out = _PATTERNS.sub(lambda m: _mask_if_needed(m.group(0)), out)
    out = _URL_PASSWORD.sub(lambda m: m.group(1) + "****" + m.group(3), out)
    return _CONTEXTUAL.sub(lambda m: m.group(1) + _mask_if_needed(m.group(2)), out)


def _mask_if_needed(value: str) -> str:
    return value if "..." in value or value == "****" else mask_secret(value)


def looks_like_secret(value: str) -> bool:
    """True when ``value`` matches one of the provider key patterns."""
    return bool(_PATTERNS.fullmatch(value))
