"""LLM key-pool router: share a pool of provider API keys without tripping rate limits.

    from router import RequestRouter, get_request_router      # the async API (document 004)
    from router import SyncRequestRouter                      # the same, for code without a loop

Exports are loaded on first use, so ``keys`` and ``conversation`` can import ``router.errors``
and friends without pulling in the whole request path.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from router.request_router import RequestRouter, get_request_router, reset_request_router
    from router.sync import SyncRequestRouter

_EXPORTS = {
    "RequestRouter": "router.request_router",
    "get_request_router": "router.request_router",
    "reset_request_router": "router.request_router",
    "SyncRequestRouter": "router.sync",
}

__all__ = ["RequestRouter", "SyncRequestRouter", "get_request_router", "reset_request_router"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'router' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
