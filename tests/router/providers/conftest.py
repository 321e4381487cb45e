"""Fixtures: simulators on free loopback ports and the shared session the adapters use."""

from __future__ import annotations

from tests.router.simulator.conftest import OTHER, SECRET, http, make_sim

__all__ = ["OTHER", "SECRET", "http", "make_sim"]
