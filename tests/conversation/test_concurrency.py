"""Concurrent writers: many coroutines, and several OS processes on the real Redis."""

from __future__ import annotations

import asyncio
import multiprocessing
import re
from typing import Any

from conversation import ConversationStore, Message
from kernel.store import Store
from tests.conftest import unique_prefix
from tests.conversation import workers
from tests.helpers import all_stores

PAIR = re.compile(r"^(w\d+-t\d+) (question|answer)$")


def check_pairs(messages: list[Message], turns: int) -> None:
    """Every turn once, its two messages adjacent and in order, sequence numbers contiguous."""
    assert len(messages) == 2 * turns
    assert [m.seq for m in messages] == list(range(1, 2 * turns + 1))
    labels = []
    for user, answer in zip(messages[::2], messages[1::2], strict=True):
        asked, answered = PAIR.match(str(user.content)), PAIR.match(str(answer.content))
        assert asked and answered and user.role == "user" and answer.role == "assistant"
        assert asked[2] == "question" and answered[2] == "answer" and asked[1] == answered[1]
        assert user.turn == user.seq and answer.turn == user.seq
        labels.append(asked[1])
    assert len(set(labels)) == turns


@all_stores
async def test_concurrent_turns_in_one_process_never_interleave(
    conversations: ConversationStore,
) -> None:
    # A fresh redis-py asyncio RedisCluster client hit by a burst of concurrent first commands
    # can fail some of them (AttributeError / "Connection lost" while it initialises): warm it.
    await conversations.health_check()
    results = await asyncio.gather(
        *(
            conversations.append_exchange(
                "busy", f"w0-t{i} question", f"w0-t{i} answer", model="gpt-4o"
            )
            for i in range(40)
        )
    )
    assert all(r.saved for r in results)
    assert sorted(r.first_seq for r in results) == list(range(1, 80, 2))
    check_pairs(await conversations.get_messages("busy"), 40)


async def test_fifty_turns_from_four_processes(redis_url: str, store: Store) -> None:
    """4 spawned processes, each with its own Store, 50 turns on one conversation at once."""
    ctx = multiprocessing.get_context("spawn")
    start, out = ctx.Event(), ctx.Queue()
    prefix = unique_prefix()
    shares = [13, 13, 12, 12]
    processes = [
        ctx.Process(
            target=workers.append_turns, args=(redis_url, prefix, "shared", w, n, start, out)
        )
        for w, n in enumerate(shares)
    ]
    for process in processes:
        process.start()
    start.set()
    reports: dict[int, list[Any]] = dict(out.get(timeout=120) for _ in processes)
    for process in processes:
        process.join(30)
        assert process.exitcode == 0
    assert all(
        saved and error is None for results in reports.values() for saved, _, _, error in results
    )
    ranges = sorted((first, last) for results in reports.values() for _, first, last, _ in results)
    assert ranges == [(seq, seq + 1) for seq in range(1, 100, 2)]  # disjoint, contiguous, each once

    from conversation.store import ConversationStore as Conversations
    from kernel.settings import Settings
    from kernel.store import create_store

    settings = Settings.from_env({}, REDIS_URL=redis_url, REDIS_KEY_PREFIX=prefix)
    reader = create_store(settings)
    try:
        conversations = Conversations(reader, settings=settings)
        messages = await conversations.get_messages("shared")
        check_pairs(messages, 50)
        assert {m.key_id for m in messages if m.role == "assistant"} == {
            "key-0",
            "key-1",
            "key-2",
            "key-3",
        }
        meta = await conversations.get_metadata("shared")
        assert meta is not None and (meta["message_count"], meta["turns"], meta["last_seq"]) == (
            100,
            50,
            100,
        )
    finally:
        await reader.close()


async def test_a_new_process_continues_the_conversation_with_another_key(redis_url: str) -> None:
    """Router restart and key rotation: the history belongs to the conversation, not to a key."""
    from kernel.settings import Settings
    from kernel.store import create_store

    prefix = unique_prefix()
    settings = Settings.from_env({}, REDIS_URL=redis_url, REDIS_KEY_PREFIX=prefix)
    store = create_store(settings)
    try:
        conversations = ConversationStore(store, settings=settings)
        await conversations.set_system_prompt("agent", "Be brief.")
        first = await conversations.append_exchange(
            "agent",
            "hello",
            "hi",
            model="gpt-4o",
            provider="openai",
            key_id="openai-1",
            key="sk-proj-" + "k" * 40,
        )
        assert first.saved
        ctx = multiprocessing.get_context("spawn")
        out = ctx.Queue()
        process = ctx.Process(target=workers.continue_chat, args=(redis_url, prefix, "agent", out))
        process.start()
        sent, saved, first_seq = out.get(timeout=120)
        process.join(30)
        assert process.exitcode == 0
        assert sent == [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hello"},
            {"role": "assistant", "content": "hi"},
        ]
        assert saved and first_seq == 3
        messages = await conversations.get_messages("agent")
        assert [(m.content, m.key_id, m.provider) for m in messages[1::2]] == [
            ("hi", "openai-1", "openai"),
            ("still here", "anthropic-2", "anthropic"),
        ]
        assert messages[3].key == "sk-ant-api03-SEC...zz99"
        meta = await conversations.get_metadata("agent")
        assert meta is not None and meta["last_model"] == "claude-3-5-haiku-20241022"
    finally:
        await store.close()
