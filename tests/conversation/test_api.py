"""The public surface: exports, the process-wide store and the synchronous facade."""

from __future__ import annotations

import asyncio

import pytest

import conversation
from conversation import SyncConversationStore, get_conversation_store, reset_conversation_store
from kernel.settings import Settings
from tests.conftest import unique_prefix


def test_exported_members() -> None:
    assert sorted(conversation.__all__) == [
        "AppendResult",
        "ConversationLimits",
        "ConversationStore",
        "History",
        "Message",
        "Role",
        "SyncConversationStore",
        "TruncateResult",
        "get_conversation_store",
        "reset_conversation_store",
    ]
    from conversation.store import ConversationStore as Direct

    assert conversation.ConversationStore is Direct


async def test_get_conversation_store_is_process_wide() -> None:
    reset_conversation_store()
    try:
        first = get_conversation_store(
            settings=Settings.from_env({}, REDIS_KEY_PREFIX=unique_prefix())
        )
        assert get_conversation_store() is first and first.store.kind == "embedded"
        await first.close()
    finally:
        reset_conversation_store()


def test_sync_facade_on_real_redis(redis_url: str) -> None:
    settings = Settings.from_env({}, REDIS_URL=redis_url, REDIS_KEY_PREFIX=unique_prefix())
    with SyncConversationStore(settings=settings) as store:
        for i in range(3):
            assert store.append_exchange("sync", f"q{i}", f"a{i}", model="gpt-4o").saved
        meta = store.get_metadata("sync")
        assert (
            meta is not None and meta["message_count"] == 6 and meta.get("last_model") == "gpt-4o"
        )
        assert store.truncate_conversation("sync", keep_last_n=2).message_count == 2
        assert [m["content"] for m in store.get_history("sync").messages] == ["q2", "a2"]
        assert store.list() == ["sync"] and store.health_check()["healthy"]
        assert store.delete("sync") and store.get_metadata("sync") is None


def test_sync_facade_refuses_to_run_inside_an_event_loop() -> None:
    store = SyncConversationStore(settings=Settings.from_env({}))

    async def inside() -> None:
        with pytest.raises(RuntimeError, match="await ConversationStore"):
            store.get_metadata("x")

    asyncio.run(inside())
    store.close()
