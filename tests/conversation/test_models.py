"""Messages: checking, masking, the stored form and the provider form."""

from __future__ import annotations

import json

import pytest

from conversation.models import Message, check_conv_id, messages_from_input
from kernel.errors import ClientRequestError


def test_the_body_starts_with_the_role_and_leaves_out_empty_fields() -> None:
    body = Message.assistant("hi", model="gpt-4o", provider="openai", key_id="k1").body()
    assert body.startswith('{"role":"assistant",')
    assert json.loads(body) == {
        "role": "assistant",
        "content": "hi",
        "model": "gpt-4o",
        "provider": "openai",
        "key_id": "k1",
    }
    assert json.loads(Message.assistant(None, tool_calls=[{"id": "x"}]).body())["content"] is None


def test_stored_form_round_trips() -> None:
    header = '{"seq":3,"turn":3,"tokens":9,"ts":1718000000123,"tk":"o200k_base",'
    message = Message.from_stored(header + Message.user("héllo", name="bob").body()[1:])
    assert (message.seq, message.turn, message.tokens) == (3, 3, 9)
    assert (message.timestamp, message.tokenizer) == (1718000000.123, "o200k_base")
    assert message.to_provider() == {"role": "user", "content": "héllo", "name": "bob"}
    with pytest.raises(ValueError, match="not a stored"):
        Message.from_stored('{"role":"system","content":"x"}')


def test_a_raw_key_is_masked_and_a_masked_one_kept() -> None:
    secret = "sk-ant-api03-" + "Q" * 40 + "tail"
    assert Message.assistant("a", key=secret).key == "sk-ant-api03-QQQ...tail"
    assert (
        Message.from_input({"role": "assistant", "content": "a", "key": secret}).key
        == "sk-ant-api03-QQQ...tail"
    )
    assert Message.assistant("a", key="sk-proj-abc...xyz1").key == "sk-proj-abc...xyz1"
    assert Message.assistant("a", key="short").key == "****"


@pytest.mark.parametrize(
    ("value", "param"),
    [
        ({"content": "x"}, "messages[0].role"),
        ({"role": "system", "content": "x"}, "messages[0].role"),
        ({"role": "user"}, "messages[0].content"),
        ({"role": "user", "content": {"a": 1}}, "messages[0].content"),
        ({"role": "user", "content": "x", "name": 3}, "messages[0].name"),
        ({"role": "user", "content": "x", "tool_calls": [{}]}, "messages[0].tool_calls"),
        ({"role": "tool", "content": "x"}, "messages[0].tool_call_id"),
        ({"role": "user", "content": "x", "seq": 1}, "messages[0]"),
    ],
)
def test_bad_messages_name_the_field(value: dict[str, object], param: str) -> None:
    with pytest.raises(ClientRequestError) as info:
        messages_from_input([value])
    assert info.value.param == param


def test_a_system_role_points_at_system_prompt() -> None:
    with pytest.raises(ClientRequestError, match="system_prompt="):
        messages_from_input([{"role": "system", "content": "x"}])


def test_content_parts_and_a_single_message_are_accepted() -> None:
    parts = [
        {"type": "text", "text": "look"},
        {"type": "image_url", "image_url": {"url": "data:,"}},
    ]
    (message,) = messages_from_input({"role": "user", "content": parts})  # type: ignore[arg-type]
    assert message.content == parts
    with pytest.raises(ClientRequestError, match="list of messages"):
        messages_from_input("hello")  # type: ignore[arg-type]


@pytest.mark.parametrize("conv_id", ["a{b", "a}b", "with space", "", "x" * 257, "tab\tid", 42])
def test_conversation_ids_that_would_break_the_hash_tag_are_refused(conv_id: object) -> None:
    with pytest.raises(ClientRequestError, match="conv_id"):
        check_conv_id(conv_id)


def test_usual_conversation_ids_are_accepted() -> None:
    for conv_id in ("orchestrator_42", "debug:task-7/run.1", "会话-1", "x" * 256):
        assert check_conv_id(conv_id) == conv_id
