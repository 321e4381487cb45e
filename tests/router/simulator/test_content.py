"""Token counts agree with the router's: exact for OpenAI, never above its estimate otherwise."""

from __future__ import annotations

import pytest

from kernel.tokens import count_message_tokens
from router.simulator.content import count_prompt_tokens, count_text_tokens, make_reply

CHAT = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Plan the migration of 3 services, with rollback. Ünïcode too."},
    {"role": "assistant", "content": "1. Freeze. 2. Copy. 3. Switch.", "name": "planner"},
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "And the database?"},
            {"type": "text", "text": "Briefly."},
        ],
    },
]


@pytest.mark.parametrize(
    "model", ["gpt-4o-mini", "gpt-4", "gpt-3.5-turbo", "o3-mini", "my-finetune"]
)
def test_openai_counts_equal_the_router(model: str) -> None:
    assert count_prompt_tokens(model, CHAT) == count_message_tokens(CHAT, model)


@pytest.mark.parametrize(
    "model", ["claude-3-5-haiku-latest", "claude-sonnet-4", "gemini-2.0-flash", "gemini-2.5-pro"]
)
def test_other_providers_count_at_most_the_router_estimate(model: str) -> None:
    simulated = count_prompt_tokens(model, CHAT)
    assert 0 < simulated <= count_message_tokens(CHAT, model)


@pytest.mark.parametrize("model", ["gpt-4o-mini", "claude-3-5-haiku-latest", "gemini-2.0-flash"])
@pytest.mark.parametrize("wanted", [0, 1, 5, 24, 100])
def test_reply_has_exactly_the_configured_tokens(model: str, wanted: int) -> None:
    reply = make_reply(
        "openai", model, CHAT, completion_tokens=wanted, max_tokens=None, chunk_tokens=3
    )
    assert reply.completion_tokens == wanted
    assert count_text_tokens(model, reply.text) == wanted
    assert reply.finish_reason == "stop"


def test_reply_is_bounded_by_max_tokens_and_says_length() -> None:
    reply = make_reply(
        "gemini", "gemini-2.0-flash", CHAT, completion_tokens=50, max_tokens=7, chunk_tokens=4
    )
    assert reply.completion_tokens == 7 and reply.finish_reason == "length"


def test_reply_names_the_provider_counts_messages_and_echoes_the_user() -> None:
    reply = make_reply(
        "anthropic",
        "claude-3-5-haiku-latest",
        CHAT,
        completion_tokens=60,
        max_tokens=None,
        chunk_tokens=4,
    )
    assert reply.text.startswith("Simulated anthropic reply to 4 message(s).")
    assert 'You said: "And the database?' in reply.text
    assert len(reply.pieces) == 15
