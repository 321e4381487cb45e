"""append_turn.lua through its binding: sequences, idempotency, conflicts, caps, trimming, TTL."""

from __future__ import annotations

import json
from typing import Any

import pytest

from kernel.errors import StoreError
from kernel.store import Store
from lua import append_turn
from lua.append_turn import AppendArgs, AppendReply
from lua.lib_conversation import ConversationKeys
from tests.helpers import all_stores


def body(role: str, content: str, **extra: Any) -> str:
    return json.dumps({"role": role, "content": content, **extra}, separators=(",", ":"))


def turn(*messages: tuple[str, str], tokens: int = 5) -> list[tuple[int, str]]:
    return [(tokens, body(role, content)) for role, content in messages]


async def append(
    store: Store,
    conv: str,
    messages: list[tuple[int, str]],
    *,
    ttl: int = 600,
    max_messages: int = 100,
    max_bytes: int = 1_000_000,
    overflow: str = "trim",
    expected: int = -1,
    turn_id: str = "",
    system: str | None = None,
    model: str = "",
    provider: str = "",
    tokenizer: str = "o200k_base",
) -> AppendReply:
    args = AppendArgs(
        ttl,
        max_messages,
        max_bytes,
        overflow,
        None if expected < 0 else expected,
        turn_id,
        conv,
        system,
        model,
        provider,
        tokenizer,
        messages,
    )
    keys = ConversationKeys(store.keys.conv_messages(conv), store.keys.conv_meta(conv))
    return await append_turn.run(store, keys, args)


def seqs(reply: AppendReply) -> tuple[str, int, int]:
    return reply.status, reply.first_seq, reply.last_seq


async def stored(store: Store, conv: str) -> list[dict[str, Any]]:
    raw = await store.client.lrange(store.keys.conv_messages(conv), 0, -1)
    return [json.loads(item) for item in raw]


@all_stores
async def test_assigns_contiguous_sequences_and_turns(store: Store) -> None:
    first = await append(
        store, "c", turn(("user", "u1"), ("assistant", "a1")), model="m1", provider="p"
    )
    second = await append(store, "c", turn(("user", "u2"), ("assistant", "a2")), model="m2")
    assert first == AppendReply("ok", 1, 2, 2, 10, first.bytes, 0, "", 0)
    assert (second.status, second.first_seq, second.last_seq) == ("ok", 3, 4)
    assert (second.message_count, second.total_tokens) == (4, 20)
    messages = await stored(store, "c")
    assert [(m["seq"], m["turn"], m["role"], m["content"]) for m in messages] == [
        (1, 1, "user", "u1"),
        (2, 1, "assistant", "a1"),
        (3, 3, "user", "u2"),
        (4, 3, "assistant", "a2"),
    ]
    # The element starts with the script's integer fields, then the client's body unchanged.
    raw = await store.client.lindex(store.keys.conv_messages("c"), 0)
    assert raw.startswith('{"seq":1,"turn":1,"tokens":5,"ts":') and raw.endswith(
        ',"tk":"o200k_base","role":"user","content":"u1"}'
    )
    meta = await store.client.hgetall(store.keys.conv_meta("c"))
    assert meta["last_seq"] == "4" and meta["message_count"] == "4" and meta["total_tokens"] == "20"
    assert meta["last_model"] == "m2" and meta["last_provider"] == "p" and meta["turns"] == "2"
    assert int(meta["bytes"]) == sum(
        len(x.encode()) for x in await store.client.lrange(store.keys.conv_messages("c"), 0, -1)
    )
    assert meta["created_at"].isdigit() and int(meta["updated_at"]) >= int(meta["created_at"])
    assert abs(int(meta["updated_at"]) / 1000 - await store.server_time()) < 60


@all_stores
async def test_large_numbers_are_written_as_integers(store: Store) -> None:
    """Lua 5.1 prints big numbers as 1e+15; the script formats every integer itself."""
    big = 10**15 + 7
    await append(store, "c", [(big, body("user", "x"))])
    await append(store, "c", [(big, body("user", "y"))])
    meta = await store.client.hgetall(store.keys.conv_meta("c"))
    assert meta["total_tokens"] == str(2 * big)
    assert json.loads(await store.client.lindex(store.keys.conv_messages("c"), 1))["tokens"] == big


@all_stores
async def test_same_turn_id_is_stored_once(store: Store) -> None:
    one = await append(store, "c", turn(("user", "u"), ("assistant", "a")), turn_id="req-1")
    again = await append(store, "c", turn(("user", "u"), ("assistant", "a")), turn_id="req-1")
    other = await append(store, "c", turn(("user", "v"), ("assistant", "b")), turn_id="req-2")
    assert (
        seqs(one) == ("ok", 1, 2)
        and seqs(again) == ("duplicate", 1, 2)
        and seqs(other) == ("ok", 3, 4)
    )
    assert len(await stored(store, "c")) == 4


@all_stores
async def test_turn_ids_are_remembered_for_the_last_32_turns(store: Store) -> None:
    for i in range(40):
        await append(store, "c", turn(("user", f"u{i}")), turn_id=f"t-{i}")
    recent = (await store.client.hget(store.keys.conv_meta("c"), "recent_turns")).split()
    assert len(recent) == 32 and recent[0].startswith("t-8:") and recent[-1] == "t-39:40:40"
    assert (await append(store, "c", turn(("user", "x")), turn_id="t-39")).status == "duplicate"
    assert (
        await append(store, "c", turn(("user", "x")), turn_id="t-0")
    ).status == "ok"  # forgotten


@all_stores
async def test_expected_sequence_detects_a_concurrent_writer(store: Store) -> None:
    assert (await append(store, "c", turn(("user", "u")), expected=0)).status == "ok"
    conflict = await append(store, "c", turn(("user", "late")), expected=0)
    assert seqs(conflict) == ("conflict", 1, 1)
    assert [m["content"] for m in await stored(store, "c")] == ["u"]
    assert seqs(await append(store, "c", turn(("user", "v")), expected=1)) == ("ok", 2, 2)


@all_stores
async def test_error_mode_refuses_beyond_the_message_cap(store: Store) -> None:
    pair = turn(("user", "u"), ("assistant", "a"))
    for _ in range(2):
        assert (await append(store, "c", pair, max_messages=4, overflow="error")).status == "ok"
    refused = await append(store, "c", pair, max_messages=4, overflow="error")
    assert (refused.status, refused.cap, refused.needed) == ("too_large", "messages", 6)
    assert len(await stored(store, "c")) == 4
    assert await store.client.hget(store.keys.conv_meta("c"), "last_seq") == "4"


@all_stores
async def test_error_mode_refuses_beyond_the_byte_cap_counting_the_system_prompt(
    store: Store,
) -> None:
    first = await append(
        store, "c", turn(("user", "x" * 100)), max_bytes=400, overflow="error", system="s" * 100
    )
    assert first.status == "ok"
    refused = await append(store, "c", turn(("user", "y" * 200)), max_bytes=400, overflow="error")
    assert refused.status == "too_large" and refused.cap == "bytes" and refused.needed > 400
    assert len(await stored(store, "c")) == 1


@all_stores
async def test_trim_mode_drops_oldest_whole_turns_and_keeps_counters(store: Store) -> None:
    trimmed = []
    for i in range(4):
        result = await append(
            store, "c", turn(("user", f"u{i}"), ("assistant", f"a{i}")), max_messages=5
        )
        assert result.status == "ok"
        trimmed.append(result.trimmed)
    assert trimmed == [0, 0, 2, 2]  # a whole pair goes each time, never a single message
    messages = await stored(store, "c")
    assert [m["content"] for m in messages] == ["u2", "a2", "u3", "a3"]
    meta = await store.client.hgetall(store.keys.conv_meta("c"))
    assert (
        meta["message_count"] == "4"
        and meta["total_tokens"] == "20"
        and meta["trimmed_messages"] == "4"
    )
    raw = await store.client.lrange(store.keys.conv_messages("c"), 0, -1)
    assert int(meta["bytes"]) == sum(len(x.encode()) for x in raw)


@all_stores
async def test_trim_keeps_tool_results_with_their_turn(store: Store) -> None:
    """A tool continuation (a turn that does not start with a user message) goes with its parent."""
    await append(store, "c", turn(("user", "u0"), ("assistant", "call")))
    await append(store, "c", turn(("tool", "result"), ("assistant", "a0")))
    await append(store, "c", turn(("user", "u1"), ("assistant", "a1")))
    await append(store, "c", turn(("user", "u2"), ("assistant", "a2")), max_messages=6)
    assert [m["content"] for m in await stored(store, "c")] == ["u1", "a1", "u2", "a2"]


@all_stores
async def test_a_turn_larger_than_the_cap_is_refused_even_when_trimming(store: Store) -> None:
    await append(store, "c", turn(("user", "keep me")))
    refused = await append(store, "c", turn(("user", "z" * 2000)), max_bytes=1024)
    assert refused.status == "too_large" and refused.cap == "bytes"
    too_many = await append(
        store, "c", turn(("user", "a"), ("assistant", "b"), ("user", "c")), max_messages=2
    )
    assert (too_many.status, too_many.cap, too_many.needed) == ("too_large", "messages", 3)
    assert [m["content"] for m in await stored(store, "c")] == ["keep me"]


@all_stores
async def test_ttl_is_set_and_refreshed_on_both_keys(store: Store) -> None:
    await append(store, "c", turn(("user", "u")), ttl=100)
    keys = [store.keys.conv_messages("c"), store.keys.conv_meta("c")]
    for key in keys:
        assert 0 < await store.client.ttl(key) <= 100
        await store.client.expire(key, 5)
    await append(store, "c", turn(("user", "v")), ttl=300)
    for key in keys:
        assert 100 < await store.client.ttl(key) <= 300


@all_stores
async def test_system_prompt_only_write_sets_and_removes(store: Store) -> None:
    result = await append(store, "c", [], system="be brief")
    assert seqs(result) == ("ok", 0, 0) and result.message_count == 0
    assert await store.client.hget(store.keys.conv_meta("c"), "system_prompt") == "be brief"
    await append(store, "c", turn(("user", "u")))
    await append(store, "c", [], system="")
    meta = await store.client.hgetall(store.keys.conv_meta("c"))
    assert "system_prompt" not in meta and meta["turns"] == "1"


@all_stores
async def test_a_bad_tokenizer_name_fails_before_any_write(store: Store) -> None:
    with pytest.raises(StoreError, match="bad tokenizer name"):
        await append(store, "c", turn(("user", "u")), tokenizer='x","role":"assistant')
    assert await store.client.exists(store.keys.conv_meta("c")) == 0


@all_stores
async def test_a_malformed_body_fails_before_any_write(store: Store) -> None:
    with pytest.raises(StoreError, match="not a token count and a JSON body"):
        await append(store, "c", [(5, body("user", "ok")), (5, '["not an object"]')])
    assert await store.client.exists(store.keys.conv_messages("c"), store.keys.conv_meta("c")) == 0
