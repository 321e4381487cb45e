"""Test helpers: the backend table and small utilities shared by test modules."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

#: Run a test against every store backend (the limits project's ``all_storage`` table).
all_stores = pytest.mark.parametrize("store", ["redis", "cluster", "embedded"], indirect=True)
#: Real Redis and the embedded store (cheaper; for tests that do not exercise slot placement).
local_stores = pytest.mark.parametrize("store", ["redis", "embedded"], indirect=True)


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
