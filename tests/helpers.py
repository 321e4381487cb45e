"""Test helpers: the backend table and small utilities shared by test modules."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import structlog

#: Run a test against every store backend (the limits project's ``all_storage`` table).
all_stores = pytest.mark.parametrize("store", ["redis", "cluster", "embedded"], indirect=True)
#: Real Redis and the embedded store (cheaper; for tests that do not exercise slot placement).
local_stores = pytest.mark.parametrize("store", ["redis", "embedded"], indirect=True)
#: Run a test with the pool in one slot and split into three shards (POOL_SHARDS, keys/shards.py):
#: the autouse ``pool_shards`` fixture (tests/conftest.py) makes the stores, settings and engines
#: the test builds use it.
both_pool_shards = pytest.mark.parametrize("pool_shards", [1, 3], indirect=True)


class PoolShards:
    """POOL_SHARDS of the running test (set by the ``pool_shards`` fixture)."""

    value = 1


@contextlib.contextmanager
def log_events(caplog: pytest.LogCaptureFixture) -> Iterator[list[dict[str, Any]]]:
    """The structlog events logged inside the block, each with ``event`` and ``level``, whether
    the loggers were cached by an earlier test (they then reach the standard library's records)
    or not (``capture_logs`` sees them)."""
    found: list[dict[str, Any]] = []
    caplog.set_level(logging.INFO)
    first = len(caplog.records)
    with structlog.testing.capture_logs() as captured:
        yield found
    found.extend({**event, "level": event.get("log_level")} for event in captured)
    found.extend(r.msg for r in caplog.records[first:] if isinstance(r.msg, dict))


async def eventually(
    check: Callable[[], Any],
    timeout: float = 30.0,  # noqa: ASYNC109 (the bound of a poll, not a cancellation)
    step: float = 0.01,
) -> Any:
    """Wait until ``check()`` (awaited when it answers an awaitable) is truthy and answer it;
    AssertionError naming the check after ``timeout`` seconds. Polls every ``step`` seconds: the
    wait is for something to happen, not a guess at how long it takes."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        found = check()
        if inspect.isawaitable(found):
            found = await found
        if found:
            return found
        if loop.time() >= deadline:
            name = getattr(check, "__qualname__", repr(check))
            raise AssertionError(f"{name} did not hold within {timeout}s")
        await asyncio.sleep(step)
