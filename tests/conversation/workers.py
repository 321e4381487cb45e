"""Functions run in spawned processes (importable by name, so ``spawn`` can start them)."""

from __future__ import annotations

import asyncio
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from typing import Any

from conversation.store import ConversationStore
from kernel.settings import Settings
from kernel.store import create_store


async def _turns(
    url: str, prefix: str, conv_id: str, worker: int, turns: int
) -> list[tuple[Any, ...]]:
    settings = Settings.from_env({}, REDIS_URL=url, REDIS_KEY_PREFIX=prefix)
    store = create_store(settings)
    conversations = ConversationStore(store, settings=settings)
    try:
        results = await asyncio.gather(
            *(
                conversations.append_exchange(
                    conv_id,
                    f"w{worker}-t{i} question",
                    f"w{worker}-t{i} answer",
                    model="gpt-4o",
                    provider="openai",
                    key_id=f"key-{worker}",
                    turn_id=f"w{worker}-t{i}",
                )
                for i in range(turns)
            )
        )
    finally:
        await store.close()
    return [(r.saved, r.first_seq, r.last_seq, r.error) for r in results]


def append_turns(
    url: str, prefix: str, conv_id: str, worker: int, turns: int, start: Event, out: Queue[Any]
) -> None:
    """Wait for ``start``, append ``turns`` exchanges concurrently, put the results on ``out``."""
    start.wait(60)
    out.put((worker, asyncio.run(_turns(url, prefix, conv_id, worker, turns))))


def continue_chat(url: str, prefix: str, conv_id: str, out: Queue[Any]) -> None:
    """A fresh process (a restarted router) reads the history, adds a turn with another key."""

    async def run() -> tuple[Any, ...]:
        settings = Settings.from_env({}, REDIS_URL=url, REDIS_KEY_PREFIX=prefix)
        store = create_store(settings)
        conversations = ConversationStore(store, settings=settings)
        try:
            history = await conversations.get_history(conv_id, model="claude-3-5-haiku-20241022")
            result = await conversations.append_exchange(
                conv_id,
                "and now?",
                "still here",
                model="claude-3-5-haiku-20241022",
                provider="anthropic",
                key="sk-ant-api03-SECRETSECRETSECRETSECRET-zz99",
                key_id="anthropic-2",
                expected_seq=history.last_seq,
            )
            return history.messages, result.saved, result.first_seq
        finally:
            await store.close()

    out.put(asyncio.run(run()))
