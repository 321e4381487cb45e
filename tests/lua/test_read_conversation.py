"""read_conversation.lua through its binding: one snapshot of metadata, messages and TTL."""

from __future__ import annotations

import json

from kernel.store import Store
from lua import read_conversation
from lua.lib_conversation import ConversationKeys
from lua.read_conversation import Snapshot
from tests.helpers import all_stores
from tests.lua.test_append_turn import append, turn


async def read(store: Store, conv: str, newest: int = -1) -> Snapshot:
    keys = ConversationKeys(store.keys.conv_messages(conv), store.keys.conv_meta(conv))
    return await read_conversation.run(store, keys, newest)


@all_stores
async def test_returns_metadata_messages_and_ttl_together(store: Store) -> None:
    for i in range(3):
        await append(store, "c", turn(("user", f"u{i}"), ("assistant", f"a{i}")), ttl=100)
    snap = await read(store, "c")
    meta, messages, pttl = snap.meta, snap.messages, snap.pttl
    assert meta["last_seq"] == "6" and meta["conv_id"] == "c"
    assert [json.loads(m)["seq"] for m in messages] == [1, 2, 3, 4, 5, 6]
    assert 0 < pttl <= 100_000


@all_stores
async def test_newest_limits_the_messages(store: Store) -> None:
    for i in range(3):
        await append(store, "c", turn(("user", f"u{i}"), ("assistant", f"a{i}")))
    assert [json.loads(m)["content"] for m in (await read(store, "c", 2)).messages] == ["u2", "a2"]
    nothing = await read(store, "c", 0)
    assert nothing.messages == [] and "last_seq" in nothing.meta


@all_stores
async def test_unknown_conversation_reads_empty_and_writes_nothing(store: Store) -> None:
    assert await read(store, "nobody") == Snapshot({}, [], -2)
    assert await store.client.exists(store.keys.conv_meta("nobody")) == 0


@all_stores
async def test_reading_does_not_refresh_the_ttl(store: Store) -> None:
    await append(store, "c", turn(("user", "u")), ttl=1000)
    await store.client.expire(store.keys.conv_meta("c"), 50)
    pttl = (await read(store, "c")).pttl
    assert pttl <= 50_000 and await store.client.ttl(store.keys.conv_meta("c")) <= 50
