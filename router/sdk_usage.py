"""Token usage read from what the official SDKs answer (for ``Lease.record``).

    openai ChatCompletion, CreateEmbeddingResponse   .usage: prompt_tokens, completion_tokens,
                                                      prompt_tokens_details.cached_tokens,
                                                      completion_tokens_details.reasoning_tokens
    openai Response (Responses API)                  .usage: input_tokens, output_tokens,
                                                      input/output_tokens_details
    anthropic Message                                .usage: input_tokens, output_tokens,
                                                      cache_read_input_tokens,
                                                      cache_creation_input_tokens
    google-genai GenerateContentResponse             .usage_metadata: prompt_token_count,
                                                      candidates_token_count, thoughts_token_count,
                                                      cached_content_token_count
    a Usage, or a mapping of those same names        as given

Anthropic's prompt is counted like the router's own calls: fresh + cache read + cache write.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from router.providers import Usage

__all__ = ["usage_from"]


def usage_from(value: Any) -> Usage | None:
    """The usage ``value`` reports (an SDK response, its ``usage``, a mapping), else None."""
    if isinstance(value, Usage):
        return value
    if value is None:
        return None
    meta = _get(value, "usage_metadata")
    if meta is not None:
        return _gemini(meta)
    inner = _get(value, "usage")
    if _has_usage(inner):
        return usage_from(inner)
    if _get(value, "prompt_token_count") is not None:
        return _gemini(value)
    if _get(value, "input_tokens") is not None:
        return _input_output(value)
    if _get(value, "prompt_tokens") is not None:
        return _prompt_completion(value)
    return None


def _has_usage(inner: Any) -> bool:
    return inner is not None and not isinstance(inner, int | float | str)


def _get(value: Any, name: str) -> Any:
    if isinstance(value, Mapping):
        return value.get(name)
    return getattr(value, name, None)


def _int(value: Any, *names: str) -> int:
    """The first of ``names`` (a dotted path) that ``value`` has, as an int (0 when none)."""
    for name in names:
        found = value
        for part in name.split("."):
            found = _get(found, part)
            if found is None:
                break
        if isinstance(found, int | float) and not isinstance(found, bool):
            return int(found)
    return 0


def _prompt_completion(u: Any) -> Usage:
    prompt = _int(u, "prompt_tokens")
    completion = _int(u, "completion_tokens")
    return Usage(
        prompt,
        completion,
        _int(u, "prompt_tokens_details.cached_tokens", "cached_tokens"),
        _int(u, "total_tokens") or prompt + completion,
        reasoning_tokens=_int(u, "completion_tokens_details.reasoning_tokens", "reasoning_tokens"),
    )


def _input_output(u: Any) -> Usage:
    read = _int(u, "cache_read_input_tokens")
    written = _int(u, "cache_creation_input_tokens")
    prompt = _int(u, "input_tokens") + read + written  # Anthropic: fresh only; OpenAI: all
    completion = _int(u, "output_tokens")
    return Usage(
        prompt,
        completion,
        read or _int(u, "input_tokens_details.cached_tokens"),
        prompt + completion,
        reasoning_tokens=_int(u, "output_tokens_details.reasoning_tokens"),
        cache_write_tokens=written,
    )


def _gemini(u: Any) -> Usage:
    prompt = _int(u, "prompt_token_count", "promptTokenCount")
    thoughts = _int(u, "thoughts_token_count", "thoughtsTokenCount")
    completion = _int(u, "candidates_token_count", "candidatesTokenCount") + thoughts
    return Usage(
        prompt,
        completion,
        _int(u, "cached_content_token_count", "cachedContentTokenCount"),
        _int(u, "total_token_count", "totalTokenCount") or prompt + completion,
        reasoning_tokens=thoughts,
    )
