"""read_conversation.lua, called directly: one snapshot of metadata, messages and TTL."""

from __future__ import annotations

import json
from typing import Any

import lua
from kernel.store import Store
from tests.helpers import all_stores
from tests.lua.test_append_turn import append, turn

SCRIPT = lua.load("read_conversation")


async def read(store: Store, conv: str, newest: int = -1) -> list[Any]:
    keys = [store.keys.conv_messages(conv), store.keys.conv_meta(conv)]
    result: list[Any] = await store.run(SCRIPT, keys, [newest])
    return result


@all_stores
async def test_returns_metadata_messages_and_ttl_together(store: Store) -> None:
    for i in range(3):
        await append(store, "c", turn(("user", f"u{i}"), ("assistant", f"a{i}")), ttl=100)
    flat, messages, pttl = await read(store, "c")
    meta = dict(zip(flat[::2], flat[1::2], strict=True))
    assert meta["last_seq"] == "6" and meta["conv_id"] == "c"
    assert [json.loads(m)["seq"] for m in messages] == [1, 2, 3, 4, 5, 6]
    assert 0 < pttl <= 100_000


@all_stores
async def test_newest_limits_the_messages(store: Store) -> None:
    for i in range(3):
        await append(store, "c", turn(("user", f"u{i}"), ("assistant", f"a{i}")))
    assert [json.loads(m)["content"] for m in (await read(store, "c", 2))[1]] == ["u2", "a2"]
    flat, messages, _ = await read(store, "c", 0)
    assert messages == [] and "last_seq" in flat


@all_stores
async def test_unknown_conversation_reads_empty_and_writes_nothing(store: Store) -> None:
    assert await read(store, "nobody") == [[], [], -2]
    assert await store.client.exists(store.keys.conv_meta("nobody")) == 0


@all_stores
async def test_reading_does_not_refresh_the_ttl(store: Store) -> None:
    await append(store, "c", turn(("user", "u")), ttl=1000)
    await store.client.expire(store.keys.conv_meta("c"), 50)
    _, _, pttl = await read(store, "c")
    assert pttl <= 50_000 and await store.client.ttl(store.keys.conv_meta("c")) <= 50
