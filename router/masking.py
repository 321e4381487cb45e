"""Masking of secrets: one masked form for display, and redaction of free text.

``mask_secret("sk-proj-abcdefghijklmnopxyz1")`` gives ``"sk-proj-abc...xyz1"`` (the form of
source document 001): the provider prefix, three characters, an ellipsis and the last four.

``redact(text)`` replaces everything in ``text`` that looks like a provider key (OpenAI, Anthropic,
Google, AWS access key ids, Vault tokens, bearer tokens, ``key=`` query parameters) or that was
registered with :func:`register_secret` (every secret the secret store hands out is registered), by
its masked form. The logging pipeline, error answers, status and metrics all pass through it.
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

_SHORTEST_SHOWN = 16  # below this length nothing of the value is shown

# Values that look like keys of the providers and stores this product talks to.
_PATTERNS = re.compile(
    r"sk-ant-[A-Za-z0-9_\-]{16,}"
    r"|sk-[A-Za-z0-9_\-]{16,}"
    r"|AIza[0-9A-Za-z_\-]{30,}"
    r"|(?:AKIA|ASIA)[0-9A-Z]{16}"
    r"|hvs\.[A-Za-z0-9_\-]{16,}"
)
# Credentials announced by their context: "Bearer x", "x-api-key: x", "key=x", "api_key": "x".
_CONTEXTUAL = re.compile(
    r"(?i)(bearer\s+|x-api-key[\"']?\s*[:=]\s*[\"']?|x-goog-api-key[\"']?\s*[:=]\s*[\"']?"
    r"|api[-_]?key[\"']?\s*[:=]\s*[\"']?|[?&]key=|secret[\"']?\s*[:=]\s*[\"']?"
    r"|token[\"']?\s*[:=]\s*[\"']?)"
    r"([A-Za-z0-9_\-\.+/=]{8,})"
)
# Candidate tokens to look up among registered secrets: coarse, then split on URL/assignment marks.
_TOKEN = re.compile(r"[^\s\"'`,;<>(){}\[\]|]{6,}")
_FINE_TOKEN = re.compile(r"[^\s\"'`,;<>(){}\[\]|=&?:/\\]{6,}")


def mask_secret(value: str | None) -> str:
    """The display form of a secret: provider prefix + 3 characters + '...' + last 4."""
    if not value:
        return ""
    if len(value) < _SHORTEST_SHOWN:
        return "****"
    prefix = next((p for p in _PREFIXES if value.startswith(p)), "")
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
    return _CONTEXTUAL.sub(lambda m: m.group(1) + _mask_if_needed(m.group(2)), out)


def _mask_if_needed(value: str) -> str:
    return value if "..." in value or value == "****" else mask_secret(value)


def looks_like_secret(value: str) -> bool:
    """True when ``value`` matches one of the provider key patterns."""
    return bool(_PATTERNS.fullmatch(value))
