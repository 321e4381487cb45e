"""Redis stopped mid-conversation: reads fail clearly, appends report not saved, then it recovers.

(STORE_FAILURE_MODE=closed; the open mode's degraded conversations: tests/router/test_degraded.py.)

Each test starts its own redis-server, so the session's server stays up.
"""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator, Iterator

import pytest

from conversation import ConversationStore
from kernel.errors import ConversationNotSavedError, StoreError
from kernel.settings import Settings
from kernel.store import Store, create_store
from tests.servers import RedisServer


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
async def own_store(own_redis: RedisServer) -> AsyncIterator[Store]:
    settings = Settings.from_env(
        {}, REDIS_URL=own_redis.url, REDIS_TIMEOUT_SECONDS=0.5, STORE_FAILURE_MODE="closed"
    )
    store = create_store(settings)
    try:
        yield store
    finally:
        await store.close()


async def test_stopped_redis_is_reported_and_the_chat_continues_after_restart(
    own_redis: RedisServer, own_store: Store
) -> None:
    conversations = ConversationStore(own_store, settings=Settings.from_env({}))
    assert (await conversations.append_exchange("c", "q1", "a1", model="gpt-4o")).saved

    own_redis.stop()
    lost = await conversations.append_exchange("c", "q2", "a2", model="gpt-4o")
    assert not lost.saved and lost.error_type == "store_unavailable"
    assert "'c'" in (lost.error or "") and "unreachable" in (lost.error or "")
    fields = lost.response_fields()
    assert (
        fields["conversation_saved"] is False
        and fields["conversation_error_type"] == "store_unavailable"
    )
    with pytest.raises(ConversationNotSavedError, match="not saved"):
        lost.raise_for_error()
    with pytest.raises(StoreError, match=r"cannot read conversation 'c'.*unreachable"):
        await conversations.get_history("c")
    with pytest.raises(StoreError, match="cannot read conversation 'c'"):
        await conversations.get_metadata("c")
    health = await conversations.health_check()
    assert health["healthy"] is False and "unreachable" in health["error"]

    own_redis.start()  # same port; save is off, so the restarted server has no data and no scripts
    back = await conversations.append_exchange("c", "q3", "a3", model="gpt-4o")
    assert back.saved and (back.first_seq, back.last_seq) == (
        1,
        2,
    )  # a fresh conversation: data was lost
    assert [m.content for m in await conversations.get_messages("c")] == ["q3", "a3"]
    assert (await conversations.health_check())["healthy"] is True


async def test_a_paused_redis_keeps_the_history_and_a_retried_turn_is_stored_once(
    own_redis: RedisServer, own_store: Store
) -> None:
    """SIGSTOP: the append times out (its reply is lost, the command may still run on resume);
    after SIGCONT the same turn_id is appended again and ends up in the history exactly once."""
    conversations = ConversationStore(own_store, settings=Settings.from_env({}))
    assert (await conversations.append_exchange("p", "q1", "a1", model="gpt-4o")).saved
    assert own_redis.process is not None
    os.kill(own_redis.process.pid, signal.SIGSTOP)
    try:
        lost = await conversations.append_exchange(
            "p", "q2", "a2", model="gpt-4o", turn_id="turn-2"
        )
    finally:
        os.kill(own_redis.process.pid, signal.SIGCONT)
    assert not lost.saved and lost.error_type == "store_unavailable" and lost.turn_id == "turn-2"
    assert "same turn_id" in (lost.error or "")

    retried = await conversations.append_exchange(
        "p", "q2", "a2", model="gpt-4o", turn_id=lost.turn_id
    )
    assert retried.saved and (retried.first_seq, retried.last_seq) == (3, 4)
    assert [m.content for m in await conversations.get_messages("p")] == ["q1", "a1", "q2", "a2"]
    more = await conversations.append_exchange("p", "q3", "a3", model="gpt-4o")
    assert more.saved and more.first_seq == 5
