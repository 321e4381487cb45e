"""Which provider a model name belongs to, from its well-known prefix.

Pure and dependency-free, so that token counting (kernel.tokens), conversations and the key pool
(keys.models re-exports it) share one table without importing each other.
"""

from __future__ import annotations

from functools import lru_cache

_MODEL_PREFIXES: tuple[tuple[str, str], ...] = (
    ("gpt-", "openai"),
    ("chatgpt-", "openai"),
    ("o1", "openai"),
    ("o3", "openai"),
    ("o4", "openai"),
    ("text-embedding-004", "gemini"),
    ("text-embedding-", "openai"),
    ("ft:gpt", "openai"),
    ("claude-", "anthropic"),
    ("gemini-", "gemini"),
    ("models/gemini-", "gemini"),
)


@lru_cache(maxsize=256)  # a few names recur on every call (bounded: names come from clients)
def provider_of_model(model: str) -> str | None:
    """The provider a model name belongs to, from its well-known prefix; None when unknown."""
    lowered = model.lower()
    return next(
        (provider for prefix, provider in _MODEL_PREFIXES if lowered.startswith(prefix)), None
    )
