"""LLM key-pool router: share a pool of provider API keys without tripping rate limits.

    from router import RequestRouter, get_request_router      # the async API (document 004)
    from router import SyncRequestRouter                      # the same, for code without a loop
    from router import Answer, StreamEvent                    # the answer's type, a stream's events
    from router import Lease                                  # a pool key for any SDK call
    from router import EmbedAnswer                            # the answer of ``router.embed``

``keys`` and ``conversation`` never import ``router``: what they share with it lives in
:mod:`kernel` (see its docstring for the layers).
"""

from router.answers import Answer, StreamEvent
from router.embedding import EmbedAnswer
from router.lease import Lease
from router.request_router import RequestRouter, get_request_router, reset_request_router
from router.sync import SyncRequestRouter

__all__ = [
    "Answer",
    "EmbedAnswer",
    "Lease",
    "RequestRouter",
    "StreamEvent",
    "SyncRequestRouter",
    "get_request_router",
    "reset_request_router",
]
