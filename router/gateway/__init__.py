"""The OpenAI-compatible HTTP gateway over the key pool (docs/gateway.md).

    from router.gateway import Gateway, GatewayServer
    async with GatewayServer(Gateway(router), port=8000) as server:
        ...  # any OpenAI client: base_url=server.url + "/v1", api_key=<virtual key>

``python -m router serve`` runs it as a service (workers, graceful shutdown); virtual keys are
managed with the admin API or ``python -m router vkeys``.
"""

from router.gateway.app import build_app
from router.gateway.limits import LimitDecision, RequestLimits
from router.gateway.server import GatewayServer
from router.gateway.state import Gateway
from router.gateway.vkeys import VirtualKey, VirtualKeySpec, VirtualKeyStore

__all__ = [
    "Gateway",
    "GatewayServer",
    "LimitDecision",
    "RequestLimits",
    "VirtualKey",
    "VirtualKeySpec",
    "VirtualKeyStore",
    "build_app",
]
