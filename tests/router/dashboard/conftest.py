"""Fixtures of the dashboard's tests: the gateway harness (real Redis, the simulator)."""

from __future__ import annotations

from tests.router.gateway.conftest import gw, make_gateway

__all__ = ["gw", "make_gateway"]
