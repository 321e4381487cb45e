"""The one wait-for-room loop (keys/room.py) used by select_key and the Dispatcher."""

from __future__ import annotations

import time

from keys.room import NoRoom, RoomWait


class Tries:
    """An attempt that finds no room ``pauses`` times (each naming its pause), then room."""

    def __init__(self, *pauses: float | None) -> None:
        self.pauses = list(pauses)
        self.calls = 0

    async def __call__(self) -> str | NoRoom[str]:
        self.calls += 1
        if self.pauses:
            return NoRoom(f"no room #{self.calls}", self.pauses.pop(0))
        return "room"


async def test_a_try_with_room_ends_the_wait_at_once() -> None:
    tries = Tries()
    assert await RoomWait(budget=5.0).until_room(tries) == "room"
    assert tries.calls == 1


async def test_no_known_room_time_ends_the_wait_with_that_answer() -> None:
    tries = Tries(None)
    got = await RoomWait(budget=5.0).until_room(tries)
    assert got == NoRoom("no room #1", None) and tries.calls == 1


async def test_the_wait_sleeps_the_named_pauses_while_its_budget_covers_them() -> None:
    tries = Tries(0.01, 0.01, 0.01)
    room = RoomWait(budget=0.025, jitter=0.0)
    got = await room.until_room(tries)
    assert isinstance(got, NoRoom) and got.answer == "no room #3"  # the third pause not covered
    assert room.waited == 0.02 and tries.calls == 3


async def test_a_pause_past_the_deadline_is_not_waited() -> None:
    tries = Tries(0.01, 0.0)
    got = await RoomWait(budget=60.0, deadline=time.monotonic() - 1.0).until_room(tries)
    assert got == NoRoom("no room #1", 0.01) and tries.calls == 1


async def test_room_after_a_wait_is_the_answer() -> None:
    tries = Tries(0.0, 0.0)
    room = RoomWait.for_seconds(1.0)
    assert await room.until_room(tries) == "room"
    assert tries.calls == 3 and room.waited == 0.0


def test_a_zero_wait_allows_no_pause() -> None:
    room = RoomWait.for_seconds(0.0)
    assert not room.allows(0.5) and not room.allows(None)
    assert RoomWait.for_seconds(-3.0).budget == 0.0


def test_a_pause_whose_jitter_would_end_past_the_deadline_is_not_waited() -> None:
    """Else the sleep ends after the deadline and the caller finds its budget spent: a "retry
    budget exhausted" answer where "no room, retry in ..." is the truth."""
    room = RoomWait(budget=60.0, deadline=time.monotonic() + 1.0, jitter=0.5)
    assert room.allows(0.2) and not room.allows(0.8)
