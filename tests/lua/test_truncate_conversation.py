"""truncate_conversation.lua through its binding: by count, by tokens, whole turns, TTL."""

from __future__ import annotations

import json
from typing import Any, Literal

from kernel.store import Store
from lua import truncate_conversation
from lua.lib_conversation import ConversationKeys
from lua.truncate_conversation import TruncateArgs, TruncateReply
from tests.helpers import all_stores
from tests.lua.test_append_turn import append, seqs, stored, turn


async def truncate(
    store: Store, conv: str, mode: Literal["count", "tokens"], limit: int, ttl: int = 600
) -> TruncateReply:
    keys = ConversationKeys(store.keys.conv_messages(conv), store.keys.conv_meta(conv))
    return await truncate_conversation.run(store, keys, TruncateArgs(mode, limit, ttl))


async def five_pairs(store: Store, conv: str = "c") -> None:
    for i in range(5):
        await append(store, conv, turn(("user", f"u{i}"), ("assistant", f"a{i}"), tokens=10 + i))


def contents(messages: list[dict[str, Any]]) -> list[str]:
    return [m["content"] for m in messages]


@all_stores
async def test_by_count_keeps_at_most_n_messages_in_whole_turns(store: Store) -> None:
    await five_pairs(store)
    assert await truncate(store, "c", "count", 5) == TruncateReply(6, 4, 13 * 2 + 14 * 2)
    assert contents(await stored(store, "c")) == ["u3", "a3", "u4", "a4"]
    meta = await store.client.hgetall(store.keys.conv_meta("c"))
    assert meta["message_count"] == "4" and meta["trimmed_messages"] == "6"
    raw = await store.client.lrange(store.keys.conv_messages("c"), 0, -1)
    assert int(meta["bytes"]) == sum(len(x.encode()) for x in raw)


@all_stores
async def test_by_tokens_keeps_the_newest_turns_within_the_limit(store: Store) -> None:
    await five_pairs(store)  # pairs cost 20, 22, 24, 26, 28 tokens
    assert await truncate(store, "c", "tokens", 60) == TruncateReply(6, 4, 54)
    assert contents(await stored(store, "c")) == ["u3", "a3", "u4", "a4"]
    assert await truncate(store, "c", "tokens", 54) == TruncateReply(0, 4, 54)


@all_stores
async def test_to_zero_keeps_metadata_and_sequence(store: Store) -> None:
    await append(store, "c", turn(("user", "u")), system="sys")
    assert await truncate(store, "c", "count", 0) == TruncateReply(1, 0, 0)
    meta = await store.client.hgetall(store.keys.conv_meta("c"))
    assert meta["system_prompt"] == "sys" and meta["bytes"] == "0" and meta["last_seq"] == "1"
    assert seqs(await append(store, "c", turn(("user", "v")))) == ("ok", 2, 2)


@all_stores
async def test_a_tool_continuation_is_removed_with_its_turn(store: Store) -> None:
    await append(store, "c", turn(("user", "u0"), ("assistant", "call")))
    await append(store, "c", turn(("tool", "result"), ("assistant", "a0")))
    await append(store, "c", turn(("user", "u1"), ("assistant", "a1")))
    assert (await truncate(store, "c", "count", 3)).removed == 4
    assert contents(await stored(store, "c")) == ["u1", "a1"]


@all_stores
async def test_unknown_conversation_is_not_created(store: Store) -> None:
    assert await truncate(store, "ghost", "count", 0) == TruncateReply(0, 0, 0)
    assert await store.client.exists(store.keys.conv_meta("ghost")) == 0


@all_stores
async def test_truncation_refreshes_the_ttl(store: Store) -> None:
    await five_pairs(store)
    keys = [store.keys.conv_messages("c"), store.keys.conv_meta("c")]
    for key in keys:
        await store.client.expire(key, 5)
    await truncate(store, "c", "count", 2, ttl=500)
    for key in keys:
        assert 5 < await store.client.ttl(key) <= 500


@all_stores
async def test_messages_left_are_unchanged(store: Store) -> None:
    await five_pairs(store)
    before = await store.client.lrange(store.keys.conv_messages("c"), -2, -1)
    await truncate(store, "c", "count", 2)
    assert await store.client.lrange(store.keys.conv_messages("c"), 0, -1) == before
    assert [json.loads(x)["seq"] for x in before] == [9, 10]
