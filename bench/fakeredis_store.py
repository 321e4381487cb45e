"""The embedded store as it was before issue 18: fakeredis with real Lua (lupa), each script
compiled once. ``bench/overhead.py --modes router-fakeredis`` installs it in its own process to
measure the old store beside the new one (kernel/embedded/) in one run. Needs the bench extra
(fakeredis); nothing in the product uses it.
"""

from __future__ import annotations

from typing import Any


class _CompiledChunks:
    """fakeredis's Lua runtime compiling each script source once (fakeredis runs ``EVALSHA`` as
    ``runtime.execute(source)``, compiling the whole source on every call) and replacing the full
    collection after each script by an incremental step."""

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
            chunk = self._chunks[source] = self._runtime.compile(source)
        return chunk()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._runtime, name)


def fakeredis_client() -> Any:
    """A client of a new fakeredis server (one per call: the bench makes one router)."""
    import fakeredis

    server = fakeredis.FakeServer(version=(7, 2))
    fakeredis.FakeRedis(server=server).eval("return 1", 0)  # creates the server's runtime
    runtime = getattr(server, "_lua_runtime", None)
    if runtime is not None:
        server._lua_runtime = _CompiledChunks(runtime)
    return fakeredis.FakeAsyncRedis(server=server, decode_responses=True)


def install() -> None:
    """Make this process's embedded stores fakeredis ones (the store before issue 18)."""
    import kernel.store

    kernel.store.embedded_client = fakeredis_client  # type: ignore[assignment]
