"""The one sync portal (kernel/portal.py) under SyncRequestRouter and SyncConversationStore."""

from __future__ import annotations

import asyncio
import warnings

import pytest

from kernel.portal import Portal


async def running_loop() -> asyncio.AbstractEventLoop:
    return asyncio.get_running_loop()


def test_every_call_runs_on_the_portals_one_private_loop() -> None:
    portal = Portal("Facade", "await it instead")
    try:
        first, second = portal.run(running_loop()), portal.run(running_loop())
        assert first is second and not first.is_closed()
    finally:
        portal.close()
    assert first.is_closed()


async def test_inside_a_running_loop_the_portal_refuses_and_says_what_to_do() -> None:
    portal = Portal("Facade", "await it instead")
    coro = running_loop()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a coroutine left unawaited would warn
        with pytest.raises(RuntimeError, match="Facade called inside an event loop: await it"):
            portal.run(coro)
    assert coro.cr_frame is None  # closed, not left pending
    portal.close()
