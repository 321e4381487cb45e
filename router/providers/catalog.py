"""A small catalog of common models: context window and maximum output tokens.

The router uses it for the context-length fallback (pick a model whose window fits the prompt) and
the conversation store for its token budget; the provider simulator uses it to answer context-length
errors as the providers do. Dated and suffixed names resolve to their family by the longest known
prefix (``gpt-4o-mini-2024-07-18`` is ``gpt-4o-mini``, ``claude-3-5-sonnet-20241022`` is
``claude-3-5-sonnet``). Figures are the providers' published ones; :func:`register_model` adds or
overrides an entry (fine-tunes, OpenAI-compatible hosts).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True)
class ModelInfo:
    """What the router needs to know about a model's size limits."""

    name: str
    provider: str
    context_window: int
    max_output_tokens: int
    #: "chat", or "embedding" (``context_window`` is then the input limit of one text)
    kind: str = "chat"
    #: An embedding model's vector length when no ``dimensions`` is asked for.
    dimensions: int = 0


def _entries() -> list[ModelInfo]:
    openai = [
        ("gpt-3.5-turbo", 16_385, 4_096),
        ("gpt-4", 8_192, 8_192),
        ("gpt-4-32k", 32_768, 8_192),
        ("gpt-4-turbo", 128_000, 4_096),
        ("gpt-4o", 128_000, 16_384),
        ("gpt-4o-mini", 128_000, 16_384),
        ("gpt-4.1", 1_047_576, 32_768),
        ("gpt-4.1-mini", 1_047_576, 32_768),
        ("gpt-4.1-nano", 1_047_576, 32_768),
        ("gpt-5", 400_000, 128_000),
        ("gpt-5-mini", 400_000, 128_000),
        ("gpt-5-nano", 400_000, 128_000),
        ("o1", 200_000, 100_000),
        ("o1-mini", 128_000, 65_536),
        ("o3", 200_000, 100_000),
        ("o3-mini", 200_000, 100_000),
        ("o4-mini", 200_000, 100_000),
    ]
    anthropic = [
        ("claude-3-haiku", 200_000, 4_096),
        ("claude-3-sonnet", 200_000, 4_096),
        ("claude-3-opus", 200_000, 4_096),
        ("claude-3-5-haiku", 200_000, 8_192),
        ("claude-3-5-sonnet", 200_000, 8_192),
        ("claude-3-7-sonnet", 200_000, 64_000),
        ("claude-sonnet-4", 200_000, 64_000),
        ("claude-sonnet-4-5", 200_000, 64_000),
        ("claude-haiku-4-5", 200_000, 64_000),
        ("claude-opus-4", 200_000, 32_000),
        ("claude-opus-4-1", 200_000, 32_000),
        ("claude-opus-4-5", 200_000, 64_000),
    ]
    gemini = [
        ("gemini-1.5-flash", 1_048_576, 8_192),
        ("gemini-1.5-flash-8b", 1_048_576, 8_192),
        ("gemini-1.5-pro", 2_097_152, 8_192),
        ("gemini-2.0-flash", 1_048_576, 8_192),
        ("gemini-2.0-flash-lite", 1_048_576, 8_192),
        ("gemini-2.5-flash", 1_048_576, 65_536),
        ("gemini-2.5-flash-lite", 1_048_576, 65_536),
        ("gemini-2.5-pro", 1_048_576, 65_536),
    ]
    table = [("openai", openai), ("anthropic", anthropic), ("gemini", gemini)]
    chat = [ModelInfo(name, prov, ctx, out) for prov, rows in table for name, ctx, out in rows]
    return chat + _embedding_entries()


def _embedding_entries() -> list[ModelInfo]:
    """Embedding models: the input limit of one text and the default vector length."""
    rows = [
        ("text-embedding-3-small", "openai", 8_191, 1_536),
        ("text-embedding-3-large", "openai", 8_191, 3_072),
        ("text-embedding-ada-002", "openai", 8_191, 1_536),
        ("gemini-embedding-001", "gemini", 2_048, 3_072),
        ("text-embedding-004", "gemini", 2_048, 768),
    ]
    return [ModelInfo(n, p, limit, 0, "embedding", dims) for n, p, limit, dims in rows]


_CATALOG: dict[str, ModelInfo] = {info.name: info for info in _entries()}


def _normalise(model: str) -> str:
    name = model.strip().lower()
    for prefix in ("models/", "openai/", "anthropic/", "gemini/"):
        name = name.removeprefix(prefix)
    return name


@lru_cache(maxsize=256)  # a few names recur on every call (bounded: names come from clients)
def model_info(model: str) -> ModelInfo | None:
    """The entry of ``model`` (exact name, else the longest known prefix); None if unknown."""
    name = _normalise(model)
    exact = _CATALOG.get(name)
    if exact is not None:
        return exact
    best: ModelInfo | None = None
    for known, info in _CATALOG.items():
        if name.startswith(known + "-") and (best is None or len(known) > len(best.name)):
            best = info
    return best


def context_window(model: str, default: int | None = None) -> int | None:
    info = model_info(model)
    return info.context_window if info else default


def max_output_tokens(model: str, default: int | None = None) -> int | None:
    info = model_info(model)
    return info.max_output_tokens if info else default


#: Completion tokens a request may ask for when its model's output limit is unknown (2x the largest
#: published limit in the catalog): a sane ceiling, not a provider's figure.
UNKNOWN_MODEL_MAX_OUTPUT_TOKENS = 262_144


def output_limit(model: str | None) -> int:
    """The most completion tokens a request for ``model`` may ask for (max_tokens and the like):
    its published output limit, else :data:`UNKNOWN_MODEL_MAX_OUTPUT_TOKENS`."""
    info = model_info(model) if model else None
    return info.max_output_tokens if info else UNKNOWN_MODEL_MAX_OUTPUT_TOKENS


def completion_tokens_problem(value: object, model: str | None) -> str | None:
    """Why ``value`` is no valid number of completion tokens for ``model``; None when it is."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        return "expected a positive integer"
    ceiling = output_limit(model)
    if value > ceiling:
        known = model_info(model) is not None if model else False
        which = "the model's output limit" if known else "the limit for a model not in the catalog"
        return f"{value} is more than {which} ({ceiling} tokens)"
    return None


def models_fitting(tokens: int, provider: str | None = None) -> list[ModelInfo]:
    """Known chat models whose context window holds ``tokens``, smallest window first."""
    fits = [
        info
        for info in _CATALOG.values()
        if info.kind == "chat"
        and info.context_window >= tokens
        and (provider is None or info.provider == provider)
    ]
    return sorted(fits, key=lambda info: (info.context_window, info.name))


def is_embedding_model(model: str) -> bool:
    info = model_info(model)
    return info is not None and info.kind == "embedding"


def register_model(info: ModelInfo) -> None:
    """Add or replace a catalog entry (for fine-tunes and models of OpenAI-compatible hosts)."""
    _CATALOG[_normalise(info.name)] = dataclasses.replace(info, name=_normalise(info.name))


def all_models() -> list[ModelInfo]:
    return sorted(_CATALOG.values(), key=lambda info: (info.provider, info.name))
