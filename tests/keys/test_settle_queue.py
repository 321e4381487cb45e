"""keys/settle_queue.py on its own: a key's settles in order, other keys' past a slow one,
back-pressure instead of drops, results and failures handed back, inline mode at once.
(The router's tests on real Redis: tests/router/test_deferred_settle.py.)"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from keys.settle_queue import SettleQueue


def job(
    log: list[str], name: str, gate: asyncio.Event | None = None
) -> Callable[[], Awaitable[str]]:
    async def run() -> str:
        log.append(f"{name} started")
        if gate is not None:
            await gate.wait()
        log.append(f"{name} landed")
        return name

    return run


async def test_a_keys_settles_land_in_order_while_other_keys_go_past_a_slow_one() -> None:
    queue = SettleQueue()  # not ordered: one settle per key per batch
    log: list[str] = []
    slow = asyncio.Event()
    b_landed = asyncio.Event()
    await queue.submit("a", job(log, "a1", slow))
    await queue.submit("a", job(log, "a2"))
    await queue.submit("b", job(log, "b1"))

    async def b2() -> None:
        b_landed.set()

    await queue.submit("b", b2)
    await b_landed.wait()  # both of b's settles landed while a's first is still held
    assert "b1 landed" in log and "a2 started" not in log  # a's second waits for a's first
    slow.set()
    await queue.flush()
    mine = [e for e in log if e.startswith("a")]
    assert mine == ["a1 started", "a1 landed", "a2 started", "a2 landed"]
    assert queue.pending == 0 and queue.sent == 4


async def test_on_an_ordered_store_a_keys_settles_go_out_together_in_order() -> None:
    queue = SettleQueue(ordered=True)  # the script lane keeps the order: one pipelined batch
    log: list[str] = []
    gate = asyncio.Event()
    for i in range(3):
        await queue.submit("a", job(log, f"a{i}", gate))
    await asyncio.sleep(0)  # one turn of the loop: every settle was started at once
    assert log == ["a0 started", "a1 started", "a2 started"]
    gate.set()
    await queue.flush()
    assert queue.pending == 0


async def until_logged(log: list[str], entry: str) -> None:
    for _ in range(100):  # loop turns, not time
        if entry in log:
            return
        await asyncio.sleep(0)
    raise AssertionError(f"{entry!r} never logged: {log}")


async def test_on_an_ordered_store_a_waited_settle_is_fenced_within_its_key() -> None:
    """A settle retried on the lane (a lost connection, NOSCRIPT) may land after one sent behind
    it. A failure's settle (waited for: it moves the key's health, which successes undo) starts
    once the key's earlier settles have landed, and the key's later ones once it has; other keys'
    and a key's successes among themselves still go out together."""
    queue = SettleQueue(ordered=True)
    log: list[str] = []
    first, failing = asyncio.Event(), asyncio.Event()
    await queue.submit("a", job(log, "a1", first))
    await queue.submit("a", job(log, "a2", first))
    failure = asyncio.ensure_future(queue.run("a", job(log, "fail", failing)))
    await asyncio.sleep(0)  # run() queues it
    await queue.submit("a", job(log, "a3"))
    await queue.submit("b", job(log, "b1"))
    await until_logged(log, "b1 landed")
    assert log == ["a1 started", "a2 started", "b1 started", "b1 landed"]
    first.set()
    await until_logged(log, "fail started")
    assert "a3 started" not in log  # behind the failure
    failing.set()
    assert await failure == "fail"
    await queue.flush()
    mine = [e for e in log if e.startswith(("a", "fail"))]
    assert mine[-4:] == ["fail started", "fail landed", "a3 started", "a3 landed"]
    assert set(mine[:4]) == {"a1 started", "a2 started", "a1 landed", "a2 landed"}
    assert queue.pending == 0 and queue.sent == 5


async def test_a_full_queue_makes_the_caller_wait_and_drops_nothing() -> None:
    queue = SettleQueue(size=1)
    log: list[str] = []
    gate = asyncio.Event()
    await queue.submit("a", job(log, "a1", gate))
    await asyncio.sleep(0)  # the worker takes a1: the queue has room for one
    await queue.submit("a", job(log, "a2"))
    third = asyncio.ensure_future(queue.submit("a", job(log, "a3")))
    await asyncio.sleep(0)
    assert not third.done() and queue.pending == 2  # back-pressure: waits for room
    third.cancel()  # its caller goes away: the settle is queued all the same
    await asyncio.gather(third, return_exceptions=True)
    gate.set()
    await queue.flush()
    assert [e for e in log if e.endswith("landed")] == ["a1 landed", "a2 landed", "a3 landed"]


async def test_a_failing_settle_is_handed_to_its_waiter_and_stops_nothing() -> None:
    queue = SettleQueue()
    log: list[str] = []

    async def broken() -> None:
        raise RuntimeError("a bug")

    await queue.submit("a", broken)
    await queue.submit("a", job(log, "a2"))
    with pytest.raises(RuntimeError, match="a bug"):
        await queue.run("b", broken)
    await queue.flush()
    assert log == ["a2 started", "a2 landed"]


async def test_inline_mode_runs_each_settle_in_its_callers_task() -> None:
    queue = SettleQueue(deferred=False)
    log: list[str] = []
    await queue.submit("a", job(log, "a1"))
    assert log == ["a1 started", "a1 landed"]  # done before submit returned
    assert await queue.run("a", job(log, "a2")) == "a2"
    assert queue.pending == 0 and queue.sent == 0
