"""Test helpers: the backend table and small utilities shared by test modules."""

from __future__ import annotations

import pytest

#: Run a test against every store backend (the limits project's ``all_storage`` table).
all_stores = pytest.mark.parametrize("store", ["redis", "cluster", "embedded"], indirect=True)
#: Real Redis and the embedded store (cheaper; for tests that do not exercise slot placement).
local_stores = pytest.mark.parametrize("store", ["redis", "embedded"], indirect=True)
