"""ConversationStore on real Redis, the real Cluster and the embedded store."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

import pytest

from conversation import ConversationStore, Message
from kernel.errors import (
    ClientRequestError,
    ConversationError,
    ConversationNotSavedError,
    ConversationTooLargeError,
)
from kernel.store import Store
from kernel.tokens import count_message_tokens
from tests.conversation.conftest import MakeConversations
from tests.helpers import all_stores

SECRET = "sk-proj-Abcdefghijklmnopqrstuvwxyz0123456789XYZ9"


async def chat(conversations: ConversationStore, conv: str, turns: int, *, start: int = 0) -> None:
    for i in range(start, start + turns):
        result = await conversations.append_exchange(
            conv,
            f"question {i}: " + "why " * (i % 4),
            f"answer {i}: " + "because " * (i % 5),
            model="gpt-4o" if i % 2 else "claude-3-5-sonnet-20241022",
            provider="openai" if i % 2 else "anthropic",
            key=f"{SECRET}{i}",
            key_id=f"key-{i % 3}",
        )
        assert result.saved, result.error


@all_stores
async def test_history_keeps_every_turn_in_order_with_its_origin(
    conversations: ConversationStore,
) -> None:
    await conversations.set_system_prompt("chat", "You are terse.")
    await chat(conversations, "chat", 12)
    messages = await conversations.get_messages("chat")
    assert [m.seq for m in messages] == list(range(1, 25))
    assert [m.role for m in messages] == ["user", "assistant"] * 12
    assert all(
        str(m.content).startswith(f"question {i}")
        for i, m in zip(range(12), messages[::2], strict=True)
    )
    answers = messages[1::2]
    assert [m.key_id for m in answers] == [f"key-{i % 3}" for i in range(12)]
    assert [m.provider for m in answers][:2] == ["anthropic", "openai"]
    assert all(
        m.key and m.key.startswith("sk-proj-Abc...") and SECRET not in m.key for m in answers
    )
    assert all(m.turn == m.seq for m in messages[::2]) and all(
        a.turn == (a.seq or 0) - 1 for a in answers
    )
    assert all(m.timestamp is not None and m.tokens for m in messages)

    meta = await conversations.get_metadata("chat")
    assert meta is not None
    assert meta["message_count"] == 24 and meta["turns"] == 12 and meta["last_seq"] == 24
    assert meta["total_tokens"] == sum(m.tokens or 0 for m in messages)
    assert meta.get("last_model") == "gpt-4o" and meta["last_provider"] == "openai"
    assert meta["system_prompt"] == "You are terse."
    assert meta["created_at"] <= meta["updated_at"] and 0 < meta["ttl_seconds"] <= 86400


@all_stores
async def test_no_secret_reaches_the_store(conversations: ConversationStore, store: Store) -> None:
    await conversations.append_turn(
        "c",
        [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo", "key": SECRET}],
    )
    await chat(conversations, "c", 2)
    raw = await store.client.lrange(store.keys.conv_messages("c"), 0, -1)
    meta = await store.client.hgetall(store.keys.conv_meta("c"))
    assert raw and not any(SECRET in item for item in raw) and SECRET not in json.dumps(meta)


@all_stores
async def test_provider_fields_round_trip(conversations: ConversationStore) -> None:
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "weather", "arguments": '{"city":"Oslo"}'},
    }
    await conversations.append_turn(
        "tools",
        [
            Message.user("weather in Oslo?", name="alice"),
            Message.assistant(None, model="gpt-4o", tool_calls=[call]),
            Message.tool('{"temp": 3}', tool_call_id="call_1", name="weather"),
            Message.assistant("It is 3 degrees.", model="gpt-4o"),
        ],
    )
    history = await conversations.get_history("tools", model="gpt-4o")
    assert history.messages == [
        {"role": "user", "content": "weather in Oslo?", "name": "alice"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "content": '{"temp": 3}', "name": "weather", "tool_call_id": "call_1"},
        {"role": "assistant", "content": "It is 3 degrees."},
    ]
    assert history.tokens == count_message_tokens(history.messages, "gpt-4o")


@all_stores
async def test_history_within_a_budget_drops_oldest_pairs_and_keeps_the_system_prompt(
    conversations: ConversationStore,
) -> None:
    await conversations.set_system_prompt("b", "System prompt that must always be sent.")
    await chat(conversations, "b", 10)
    full = await conversations.get_history(
        "b", model="gpt-4o", pending=[Message.user("new question")]
    )
    assert full.dropped_turns == 0 and len(full.messages) == 22
    budget = full.tokens * 2 // 3
    history = await conversations.get_history(
        "b", model="gpt-4o", max_tokens=budget, pending=[Message.user("new question")]
    )
    messages = history.messages
    assert history.tokens == count_message_tokens(messages, "gpt-4o") <= budget
    assert messages[0] == {"role": "system", "content": "System prompt that must always be sent."}
    assert messages[-1] == {"role": "user", "content": "new question"}
    kept = messages[1:-1]
    assert 0 < len(kept) < 20 and len(kept) % 2 == 0
    assert [m["role"] for m in kept] == ["user", "assistant"] * (len(kept) // 2)
    first_kept = int(kept[0]["content"].split()[1].rstrip(":"))
    assert first_kept == 10 - len(kept) // 2  # the newest turns, oldest dropped first
    assert history.dropped_turns == first_kept and history.dropped_messages == 2 * first_kept
    # Adding back the newest dropped pair would exceed the budget.
    stored = await conversations.get_messages("b")
    next_pair = [m.to_provider() for m in stored[2 * first_kept - 2 : 2 * first_kept]]
    assert count_message_tokens([messages[0], *next_pair, *messages[1:]], "gpt-4o") > budget


@all_stores
async def test_a_budget_below_the_system_prompt_still_sends_it(
    conversations: ConversationStore,
) -> None:
    await conversations.set_system_prompt("s", "A long system prompt " * 20)
    await chat(conversations, "s", 3)
    history = await conversations.get_history("s", model="gpt-4o", max_tokens=10)
    assert [m["role"] for m in history.messages] == ["system"]
    assert history.over_budget and history.dropped_turns == 3
    override = await conversations.get_history("s", model="gpt-4o", system_prompt="short")
    assert override.messages[0] == {"role": "system", "content": "short"}


@all_stores
async def test_counts_follow_the_target_models_tokenizer(conversations: ConversationStore) -> None:
    await chat(conversations, "t", 6)
    for model in ("gpt-4o", "gpt-4", "claude-3-5-sonnet-20241022", "gemini-2.5-flash"):
        history = await conversations.get_history("t", model=model)
        assert history.tokens == count_message_tokens(history.messages, model)


@all_stores
async def test_expected_seq_reports_a_conflict(conversations: ConversationStore) -> None:
    await chat(conversations, "x", 1)
    seen = await conversations.get_history("x")
    await chat(conversations, "x", 1, start=1)  # another writer
    late = await conversations.append_exchange(
        "x", "q", "a", model="gpt-4o", expected_seq=seen.last_seq
    )
    assert not late.saved and late.error_type == "conversation_conflict"
    assert (late.first_seq, late.last_seq) == (4, 4)
    assert late.response_fields()["conversation_saved"] is False
    with pytest.raises(ConversationNotSavedError, match="changed since it was read"):
        late.raise_for_error()
    fresh = await conversations.get_history("x")
    ok = await conversations.append_exchange(
        "x", "q", "a", model="gpt-4o", expected_seq=fresh.last_seq
    )
    assert ok.saved and (ok.first_seq, ok.last_seq) == (5, 6)


@all_stores
async def test_a_retried_turn_is_stored_once(conversations: ConversationStore) -> None:
    first = await conversations.append_exchange("r", "q", "a", model="gpt-4o", turn_id="req-42")
    again = await conversations.append_exchange("r", "q", "a", model="gpt-4o", turn_id="req-42")
    assert (
        first.saved
        and again.saved
        and again.duplicate
        and (again.first_seq, again.last_seq) == (1, 2)
    )
    assert len(await conversations.get_messages("r")) == 2


@all_stores
async def test_truncation_by_count_and_by_tokens(conversations: ConversationStore) -> None:
    await chat(conversations, "tr", 8)
    result = await conversations.truncate_conversation("tr", keep_last_n=5)
    assert (result.removed, result.message_count) == (12, 4)
    assert [m.seq for m in await conversations.get_messages("tr")] == [13, 14, 15, 16]
    stored = await conversations.get_messages("tr")
    newest_pair = sum(m.tokens or 0 for m in stored[2:])
    result = await conversations.truncate_conversation("tr", max_tokens=newest_pair)
    assert (result.removed, result.message_count, result.total_tokens) == (2, 2, newest_pair)
    meta = await conversations.get_metadata("tr")
    assert (
        meta is not None and meta["trimmed_messages"] == 14 and meta["total_tokens"] == newest_pair
    )
    with pytest.raises(ClientRequestError, match="exactly one"):
        await conversations.truncate_conversation("tr")
    with pytest.raises(ClientRequestError, match="keep_last_n must be an integer >= 0"):
        await conversations.truncate_conversation("tr", keep_last_n=-1)


@all_stores
async def test_error_mode_refuses_with_conversation_and_cap_named(
    make_conversations: MakeConversations,
) -> None:
    conversations = make_conversations(CONVERSATION_MAX_MESSAGES=4, CONVERSATION_OVERFLOW="error")
    await chat(conversations, "full", 2)
    refused = await conversations.append_exchange("full", "one more", "no", model="gpt-4o")
    assert not refused.saved and refused.error_type == "conversation_too_large"
    with pytest.raises(ConversationTooLargeError, match=r"'full'.*CONVERSATION_MAX_MESSAGES=4"):
        refused.raise_for_error()
    assert len(await conversations.get_messages("full")) == 4
    await conversations.truncate_conversation("full", keep_last_n=2)
    assert (await conversations.append_exchange("full", "now", "yes", model="gpt-4o")).saved

    by_bytes = make_conversations(CONVERSATION_MAX_BYTES=2048, CONVERSATION_OVERFLOW="error")
    assert (await by_bytes.append_exchange("big", "x" * 800, "y" * 800, model="gpt-4o")).saved
    refused = await by_bytes.append_exchange("big", "x" * 800, "y" * 800, model="gpt-4o")
    with pytest.raises(ConversationTooLargeError, match=r"'big'.*CONVERSATION_MAX_BYTES=2048"):
        refused.raise_for_error()


@all_stores
async def test_trim_mode_keeps_every_conversation_within_its_caps(
    make_conversations: MakeConversations,
) -> None:
    conversations = make_conversations(CONVERSATION_MAX_MESSAGES=10, CONVERSATION_MAX_BYTES=4096)
    trimmed = 0
    for i in range(30):
        result = await conversations.append_exchange(
            "t", f"q{i} " + "x" * (i * 7), f"a{i}", model="gpt-4o"
        )
        assert result.saved and result.message_count <= 10 and result.bytes <= 4096
        trimmed += result.trimmed
    messages = await conversations.get_messages("t")
    assert messages[-1].content == "a29" and [m.role for m in messages] == ["user", "assistant"] * (
        len(messages) // 2
    )
    meta = await conversations.get_metadata("t")
    assert meta is not None and meta["trimmed_messages"] == trimmed == 60 - len(messages)
    too_big = await conversations.append_exchange("t", "z" * 5000, "no", model="gpt-4o")
    assert not too_big.saved and "this turn alone does not fit" in (too_big.error or "")


@all_stores
async def test_ttl_comes_from_settings_and_every_write_refreshes_it(
    make_conversations: MakeConversations, store: Store
) -> None:
    conversations = make_conversations(CONVERSATION_TTL_SECONDS=120)
    keys = [store.keys.conv_messages("ttl"), store.keys.conv_meta("ttl")]
    await chat(conversations, "ttl", 2)
    assert all(0 < ttl <= 120 for ttl in [await store.client.ttl(key) for key in keys])
    writes: list[Callable[[], Awaitable[object]]] = [
        lambda: conversations.append_exchange("ttl", "q", "a", model="gpt-4o"),
        lambda: conversations.set_system_prompt("ttl", "new"),
        lambda: conversations.truncate_conversation("ttl", keep_last_n=4),
    ]
    for write in writes:
        for key in keys:
            await store.client.expire(key, 3)
        await write()
        assert all(3 < ttl <= 120 for ttl in [await store.client.ttl(key) for key in keys])
    meta = await conversations.get_metadata("ttl")
    assert meta is not None and 3 < meta["ttl_seconds"] <= 120


@all_stores
async def test_an_expired_conversation_starts_again(
    conversations: ConversationStore, store: Store
) -> None:
    await chat(conversations, "gone", 2)
    for key in (store.keys.conv_messages("gone"), store.keys.conv_meta("gone")):
        await store.client.pexpire(key, 1)
    for _ in range(1000):  # bounded poll: expiry is Redis's business, not a timing assertion
        if await conversations.get_metadata("gone") is None:
            break
    assert await conversations.get_metadata("gone") is None
    assert (await conversations.get_history("gone")).messages == []
    again = await conversations.append_exchange("gone", "hello again", "hi", model="gpt-4o")
    assert (again.first_seq, again.last_seq) == (1, 2)


@all_stores
async def test_list_delete_and_exists(conversations: ConversationStore, store: Store) -> None:
    ids = [f"agent-{i}" for i in range(24)]
    for conv in ids:
        await conversations.append_exchange(conv, "q", "a", model="gpt-4o")
    assert sorted(await conversations.list()) == sorted(ids)
    assert len(await conversations.list_conversations(limit=5)) == 5
    if store.kind == "cluster":  # the ids really live on several nodes, and all were found
        nodes = {store.client.get_node_from_key(store.keys.conv_meta(conv)).name for conv in ids}
        assert len(nodes) >= 2
    assert await conversations.exists("agent-3")
    assert await conversations.delete("agent-3") and not await conversations.delete("agent-3")
    assert (
        not await conversations.exists("agent-3")
        and await conversations.get_metadata("agent-3") is None
    )
    assert "agent-3" not in await conversations.list()


@all_stores
async def test_health_check(conversations: ConversationStore, store: Store) -> None:
    health = await conversations.health_check()
    assert health["healthy"] is True and health["kind"] == store.kind
    assert (
        health["ttl_seconds"] == 86400
        and health["overflow"] == "trim"
        and health["latency_ms"] >= 0
    )


@all_stores
async def test_keys_of_one_conversation_share_a_slot(store: Store) -> None:
    from redis.crc import key_slot

    for conv in ("a", "agent:7/run-1", "ünïcode-会话"):
        assert key_slot(store.keys.conv_messages(conv).encode()) == key_slot(
            store.keys.conv_meta(conv).encode()
        )


@all_stores
async def test_bad_input_names_the_parameter(conversations: ConversationStore) -> None:
    cases: list[tuple[Callable[[], Awaitable[object]], str]] = [
        (lambda: conversations.append_turn("a}b", [Message.user("x")]), "conv_id"),
        (lambda: conversations.append_turn("", [Message.user("x")]), "conv_id"),
        (
            lambda: conversations.append_turn("c", [{"role": "system", "content": "x"}]),
            "messages[0].role",
        ),
        (
            lambda: conversations.append_turn(
                "c", [Message.user("x"), {"role": "tool", "content": "r"}]
            ),
            "messages[1].tool_call_id",
        ),
        (
            lambda: conversations.append_turn("c", [{"role": "user", "content": 5}]),
            "messages[0].content",
        ),
        (
            lambda: conversations.append_turn("c", [{"role": "user", "content": "x", "colour": 1}]),
            "messages[0]",
        ),
        (lambda: conversations.append_turn("c", []), "messages"),
        (
            lambda: conversations.append_turn("c", [Message.user("x")], turn_id="has space"),
            "turn_id",
        ),
        (lambda: conversations.get_history("c", max_tokens=-5), "max_tokens"),
        (
            lambda: conversations.append_turn("c", [Message.user("x")], expected_seq=-1),
            "expected_seq",
        ),
    ]
    for call, param in cases:
        with pytest.raises(ClientRequestError) as info:
            await call()
        assert info.value.param == param, (param, str(info.value))
    assert await conversations.get_metadata("c") is None  # nothing was written


@all_stores
async def test_a_corrupt_message_is_a_conversation_error_naming_key_and_index(
    conversations: ConversationStore, store: Store
) -> None:
    await chat(conversations, "bad", 2)
    await store.client.lset(store.keys.conv_messages("bad"), 1, "garbage")
    for read in (conversations.get_messages("bad"), conversations.get_history("bad")):
        with pytest.raises(ConversationError, match=r"conv:messages:\{bad\} index 1"):
            await read
