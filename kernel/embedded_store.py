"""The embedded store's server: fakeredis with real Lua (lupa), one per process, each script
compiled once.

:func:`embedded_client` gives a client of the process-wide server (kernel/store.py's
``create_store`` uses it when ``REDIS_URL`` is unset); :func:`compile_once` makes any fakeredis
server compile each script source once (the degraded mode's private local server uses it too).
"""

from __future__ import annotations

from typing import Any

from kernel.log import get_logger

log = get_logger("router.store")

_embedded_server: Any = None
_embedded_warned = False


class _CompiledChunks:
    """The embedded server's Lua runtime, compiling each script source once.

    fakeredis runs ``EVALSHA`` as ``runtime.execute(source)``: it parses and compiles the whole
    source on every call (~0.7 ms for a key-pool script, most of an embedded request's cost), then
    runs a full garbage collection. This wrapper keeps the compiled chunk per source (running a
    chunk again is what executing its source does) and replaces the full collection by an
    incremental step; everything else goes to the real runtime unchanged.
    """

    def __init__(self, runtime: Any) -> None:
        self._runtime = runtime
        self._chunks: dict[bytes, Any] = {}

    def execute(self, source: Any, *args: Any) -> Any:
        if args or not isinstance(source, bytes):
            return self._runtime.execute(source, *args)
        if source == b"collectgarbage()":
            return self._runtime.execute(b'collectgarbage("step")')
        chunk = self._chunks.get(source)
        if chunk is None:
            if len(self._chunks) >= 256:  # scripts sent by callers other than ours: bound it
                self._chunks.clear()
            chunk = self._chunks[source] = self._runtime.compile(source)
        return chunk()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._runtime, name)


def compile_once(server: Any) -> None:
    """Install :class:`_CompiledChunks` on a fakeredis server (a no-op on fakeredis versions that
    keep no per-server runtime: they are only slower)."""
    import fakeredis

    fakeredis.FakeRedis(server=server).eval("return 1", 0)  # creates the server's runtime
    runtime = getattr(server, "_lua_runtime", None)
    if runtime is not None and not isinstance(runtime, _CompiledChunks):
        server._lua_runtime = _CompiledChunks(runtime)


def embedded_client() -> Any:
    """A client of the process-wide embedded server (every Store in the process shares its data)."""
    global _embedded_server, _embedded_warned
    import fakeredis

    if _embedded_server is None:
        _embedded_server = fakeredis.FakeServer(version=(7, 2))
        compile_once(_embedded_server)
    if not _embedded_warned:
        _embedded_warned = True
        log.warning(
            "using the embedded store: limits and conversations are shared within this process only; "
            "set REDIS_URL to share them across processes"
        )
    return fakeredis.FakeAsyncRedis(server=_embedded_server, decode_responses=True)


def reset_embedded_store() -> None:
    """Forget the embedded server's data (tests)."""
    global _embedded_server
    _embedded_server = None
