"""The embedded store's server: one per process, the same Lua scripts as Redis run by lupa against
an in-process keyspace (kernel/embedded/).

:func:`embedded_client` gives a client of the process-wide server (kernel/store.py's
``create_store`` uses it when ``REDIS_URL`` is unset); :func:`private_client` a client of a server
of its own (degraded mode's local store).
"""

from __future__ import annotations

from kernel.embedded.client import EmbeddedClient
from kernel.embedded.server import EmbeddedServer
from kernel.log import get_logger

log = get_logger("router.store")

_embedded_server: EmbeddedServer | None = None
_embedded_warned = False


def embedded_client() -> EmbeddedClient:
    """A client of the process-wide embedded server (every Store in the process shares its data)."""
    global _embedded_server, _embedded_warned
    if _embedded_server is None:
        _embedded_server = EmbeddedServer()
    if not _embedded_warned:
        _embedded_warned = True
        log.warning(
            "using the embedded store: limits and conversations are shared within this process only; "
            "set REDIS_URL to share them across processes"
        )
    return EmbeddedClient(_embedded_server)


def private_client() -> EmbeddedClient:
    """A client of a new in-process server that no other Store sees."""
    return EmbeddedClient(EmbeddedServer())


def reset_embedded_store() -> None:
    """Forget the embedded server's data (tests)."""
    global _embedded_server
    _embedded_server = None
