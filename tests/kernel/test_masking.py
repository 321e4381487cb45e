"""Secret masking: the ``sk-proj-abc...xyz1`` form of document 001 for realistic keys of every
provider, redaction of free text, headers, URLs and JSON, and registered secrets of no known shape.

Keys are generated at run time (tests/keygen.py): nothing key-shaped is committed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest

from kernel.masking import (
    forget_secret,
    looks_like_secret,
    mask_secret,
    redact,
    register_secret,
    register_secrets,
)
from tests import keygen

KEY_SHAPES: list[tuple[str, Callable[[], str], str]] = [
    ("openai-project", keygen.openai_project_key, "sk-proj-"),
    ("openai-legacy", keygen.openai_legacy_key, "sk-"),
    ("anthropic", keygen.anthropic_key, "sk-ant-api03-"),
    ("gemini", keygen.gemini_key, "AIza"),
    ("aws-access-key-id", keygen.aws_access_key_id, "AKIA"),
]
shapes = pytest.mark.parametrize(
    ("make", "prefix"), [(m, p) for _, m, p in KEY_SHAPES], ids=[n for n, _, _ in KEY_SHAPES]
)


def assert_gone(secret: str, text: str) -> None:
    """Neither the secret nor any 8-character piece of its random part is left in ``text``."""
    assert secret not in text
    body = secret[-24:]
    for start in range(len(body) - 8):
        assert body[start : start + 8] not in text, f"a piece of the secret is left: {text!r}"


@pytest.fixture
def registered() -> Iterator[Callable[[str], str]]:
    """Register secrets for one test and forget them afterwards."""
    values: list[str] = []

    def add(value: str) -> str:
        register_secret(value)
        values.append(value)
        return value

    yield add
    for value in values:
        forget_secret(value)


# -- mask_secret ----------------------------------------------------------------------------------


@shapes
def test_masked_form_is_prefix_three_characters_ellipsis_last_four(
    make: Callable[[], str], prefix: str
) -> None:
    secret = make()
    masked = mask_secret(secret)
    assert masked == f"{prefix}{secret[len(prefix) : len(prefix) + 3]}...{secret[-4:]}"
    assert looks_like_secret(secret)
    assert not looks_like_secret(masked)


def test_the_document_001_example() -> None:
    # The form of document 001's status answer: "sk-proj-abc...xyz1".
    secret = "sk-proj-abc" + "q" * 40 + "xyz1"
    assert mask_secret(secret) == "sk-proj-abc...xyz1"


def test_short_values_show_nothing() -> None:
    assert mask_secret("") == ""
    assert mask_secret(None) == ""
    assert mask_secret("hunter2") == "****"
    assert mask_secret("sk-proj-" + "a1b2c3d4e5f6") == "****"  # 12 characters after the prefix
    assert mask_secret(keygen.opaque_secret(15)) == "****"


def test_an_opaque_secret_shows_three_and_four() -> None:
    secret = keygen.opaque_secret(32)
    assert mask_secret(secret) == f"{secret[:3]}...{secret[-4:]}"


# -- redact ---------------------------------------------------------------------------------------


@shapes
def test_free_text(make: Callable[[], str], prefix: str) -> None:
    secret = make()
    text = f"Using key {secret} for the next request (retry 2)"
    assert redact(text) == f"Using key {mask_secret(secret)} for the next request (retry 2)"


@pytest.mark.parametrize(
    ("header", "make"),
    [
        ("Authorization: Bearer ", keygen.openai_project_key),
        ("authorization: bearer ", keygen.opaque_secret),
        ("x-api-key: ", keygen.anthropic_key),
        ("X-Api-Key: ", keygen.opaque_secret),
        ("x-goog-api-key: ", keygen.gemini_key),
        ("x-goog-api-key: ", keygen.opaque_secret),
    ],
)
def test_headers(header: str, make: Callable[[], str]) -> None:
    secret = make()
    out = redact(f"{header}{secret}\r\nContent-Type: application/json")
    assert out == f"{header}{mask_secret(secret)}\r\nContent-Type: application/json"


@pytest.mark.parametrize("make", [keygen.gemini_key, keygen.opaque_secret])
def test_urls_with_a_key_parameter(make: Callable[[], str]) -> None:
    secret = make()
    base = "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.0-flash"
    for url in (
        f"{base}:generateContent?key={secret}",
        f"{base}:streamGenerateContent?alt=sse&key={secret}&x=1",
    ):
        out = redact(f"POST {url} -> 429")
        assert_gone(secret, out)
        assert out.startswith(f"POST {base}:") and out.endswith(" -> 429")
        assert mask_secret(secret) in out


def test_url_passwords() -> None:
    password = keygen.opaque_secret(20)
    out = redact(
        f"connecting to redis://default:{password}@10.0.0.5:6379/0 and rediss://:{password}@h"
    )
    assert out == "connecting to redis://default:****@10.0.0.5:6379/0 and rediss://:****@h"


def test_json_stays_json() -> None:
    openai, opaque, aws_id, aws_secret = (
        keygen.openai_project_key(),
        keygen.opaque_secret(),
        keygen.aws_access_key_id(),
        keygen.aws_secret_access_key(),
    )
    document = {
        "model": "gpt-4o",
        "headers": {"Authorization": f"Bearer {openai}"},
        "api_key": opaque,
        "AccessKeyId": aws_id,
        "SecretAccessKey": aws_secret,
        "messages": [{"role": "user", "content": "hello"}],
    }
    for text in (json.dumps(document), json.dumps(document, indent=2)):
        out = redact(text)
        for secret in (openai, opaque, aws_id, aws_secret):
            assert_gone(secret, out)
        parsed = json.loads(out)
        assert parsed["api_key"] == mask_secret(opaque)
        assert parsed["headers"]["Authorization"] == f"Bearer {mask_secret(openai)}"
        assert parsed["messages"] == document["messages"]


@pytest.mark.parametrize(
    "template",
    ["AWS_SECRET_ACCESS_KEY={}", "aws_secret_access_key = {}", "secret: {}", "password={}"],
)
def test_assignments(template: str) -> None:
    secret = keygen.aws_secret_access_key()
    out = redact(template.format(secret))
    assert_gone(secret, out)
    assert out == template.format(mask_secret(secret))


def test_registered_secrets_of_no_known_shape(registered: Callable[[str], str]) -> None:
    first = registered(keygen.opaque_secret(24))
    second = registered("corp-gw-" + keygen.opaque_secret(12))
    assert not looks_like_secret(first)
    for text in (
        f"token rejected: {first}",
        f"upstream said: invalid credential '{first}' (401)",
        f"GET /v1/models?api={second}&page=2",
        f"auth={first};{second}",
        f"Bearer:{second}",
    ):
        out = redact(text)
        assert_gone(first, out)
        assert_gone(second, out)


def test_register_many_and_forget() -> None:
    values = [keygen.opaque_secret(20) for _ in range(3)]
    register_secrets(values)
    try:
        assert all(v not in redact(f"x {v} y") for v in values)
    finally:
        for value in values:
            forget_secret(value)
    assert redact(f"x {values[0]} y") == f"x {values[0]} y"


def test_very_short_values_are_never_registered() -> None:
    register_secret("abc")
    try:
        assert redact("abc abcdef") == "abc abcdef"
    finally:
        forget_secret("abc")


@pytest.mark.parametrize(
    "text",
    [
        "desk-reservation-service-abcdef",
        "task-0123456789abcdefgh finished",
        "gpt-4o-mini-2024-07-18 and claude-3-5-sonnet-20241022",
        "key gemini-flash-01 in group openai-project-a, quota llmr:{pool}:state",
        "prompt_tokens=1234 max_tokens: 4096 tokens=77",
        "request 5f1c2a9e-7d2b-4c4e-9f3a-1b2c3d4e5f60 done",
        "placeholder sk-xxxx and your-api-key-here",
        "https://api.openai.com/v1/chat/completions",
    ],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert redact(text) == text


@shapes
def test_redaction_is_idempotent(make: Callable[[], str], prefix: str) -> None:
    text = f"Authorization: Bearer {make()} key={make()}"
    once = redact(text)
    assert redact(once) == once


def test_empty_text() -> None:
    assert redact("") == ""
