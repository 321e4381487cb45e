"""The store: one async interface over Redis, Redis Cluster and the embedded in-process store.

``create_store(settings)`` picks the backend:

* ``REDIS_URL`` set: ``redis.asyncio`` with a ``BlockingConnectionPool`` (callers wait for a free
  connection instead of failing at the pool's size); with ``REDIS_CLUSTER=true`` (or a
  ``redis+cluster://`` URL) a ``RedisCluster``. On a standalone Redis, scripts (the request path)
  share one automatically pipelined connection (router/script_lane.py).
* ``REDIS_URL`` unset or empty: the embedded store, fakeredis with real Lua (lupa) in this process.
  It runs the very same scripts, but only this process sees it: logged once as single-process only.

Every module gets a :class:`Store` and uses ``store.client`` (the redis-py command API, identical on
all three) and :meth:`Store.run` (EVALSHA with transparent NOSCRIPT reload); none knows which
backend it has. Connection failures surface as :class:`~router.errors.StoreError`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from lua import Script
from router.errors import StoreError
from router.log import get_logger
from router.redis_keys import RedisKeys
from router.script_lane import ScriptLane
from router.settings import Settings

StoreKind = Literal["redis", "cluster", "embedded"]
log = get_logger(__name__)

_embedded_server: Any = None
_embedded_warned = False


def mask_url(url: str) -> str:
    """A Redis URL without its password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit((parts.scheme, user + host, parts.path, parts.query, parts.fragment))


@dataclass
class Store:
    """A connected store and the key names under its prefix."""

    client: Any  # redis.asyncio.Redis | RedisCluster | fakeredis.FakeAsyncRedis: one command API
    kind: StoreKind
    keys: RedisKeys
    url: str = ""
    #: Bounds commands in flight. redis-py's RedisCluster (and fakeredis) raise MaxConnectionsError
    #: instead of waiting when the pool is full, so their callers queue here (the standalone client
    #: waits in its BlockingConnectionPool). Commands should go through run() or call().
    limiter: asyncio.Semaphore | None = field(default=None, repr=False)
    #: Standalone Redis: scripts run on connections of their own (router/script_lane.py).
    lane: ScriptLane | None = field(default=None, repr=False)
    _closed: bool = field(default=False, repr=False)
    _ready: bool = field(default=False, repr=False)
    _ready_lock: asyncio.Lock | None = field(default=None, repr=False)

    async def _ensure_ready(self) -> None:
        """RedisCluster loads the slot map on first use; a burst of first commands racing that
        load can fail (redis-py 8), so the first caller loads it while the others wait."""
        if self._ready or self.kind != "cluster":
            return
        if self._ready_lock is None:
            self._ready_lock = asyncio.Lock()
        async with self._ready_lock:
            if not self._ready:
                await self.client.initialize()
                self._ready = True

    @property
    def is_embedded(self) -> bool:
        return self.kind == "embedded"

    async def run(self, script: Script, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Run a Lua script by SHA; on NOSCRIPT (restart, failover) send its source once."""
        try:
            if self.lane is not None:
                return await self.lane.run(script, keys, args)
            await self._ensure_ready()
            if self.limiter is not None:
                async with self.limiter:
                    return await self._run(script, keys, args)
            return await self._run(script, keys, args)
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            raise StoreError(
                f"{self.describe_target()} unreachable running {script.name}: {exc}"
            ) from exc
        except ResponseError as exc:
            raise StoreError(f"script {script.name} failed: {exc}") from exc

    async def _run(self, script: Script, keys: Sequence[str], args: Sequence[Any]) -> Any:
        try:
            return await self.client.evalsha(script.sha, len(keys), *keys, *args)
        except NoScriptError:
            log.debug("lua script loaded", script=script.name)
            return await self.client.eval(script.source, len(keys), *keys, *args)

    async def call(self, coro: Any) -> Any:
        """Await a redis-py command, translating connection failures into StoreError."""
        try:
            await self._ensure_ready()
            if self.limiter is not None:
                async with self.limiter:
                    return await coro
            return await coro
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            raise StoreError(f"{self.describe_target()} unreachable: {exc}") from exc
        except RedisError as exc:
            raise StoreError(f"{self.describe_target()} error: {exc}") from exc

    async def ping(self) -> float:
        """Round-trip time in milliseconds; raises StoreError when the store does not answer."""
        started = time.perf_counter()
        await self.call(self.client.ping())
        return (time.perf_counter() - started) * 1000.0

    async def server_time(self) -> float:
        """The store's clock (the clock every script uses), as unix seconds."""
        seconds, micros = await self.call(self.client.time())
        return float(seconds) + float(micros) / 1e6

    def describe_target(self) -> str:
        return "embedded store" if self.is_embedded else f"Redis at {mask_url(self.url)}"

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "prefix": self.keys.prefix}
        if not self.is_embedded:
            out["url"] = mask_url(self.url)
        else:
            out["note"] = "in-process store: state is visible to this process only"
        return out

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.lane is not None:
            await self.lane.close()
        closer = getattr(self.client, "aclose", None) or self.client.close
        result = closer()
        if asyncio.iscoroutine(result):
            await result


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


def _compile_once(server: Any) -> None:
    """Install :class:`_CompiledChunks` on a fakeredis server (a no-op on fakeredis versions that
    keep no per-server runtime: they are only slower)."""
    import fakeredis

    fakeredis.FakeRedis(server=server).eval("return 1", 0)  # creates the server's runtime
    runtime = getattr(server, "_lua_runtime", None)
    if runtime is not None and not isinstance(runtime, _CompiledChunks):
        server._lua_runtime = _CompiledChunks(runtime)


def _embedded_client() -> Any:
    """A client of the process-wide embedded server (every Store in the process shares its data)."""
    global _embedded_server, _embedded_warned
    import fakeredis

    if _embedded_server is None:
        _embedded_server = fakeredis.FakeServer(version=(7, 2))
        _compile_once(_embedded_server)
    if not _embedded_warned:
        _embedded_warned = True
        log.warning(
            "using the embedded store: limits and conversations are shared within this process only; "
            "set REDIS_URL to share them across processes"
        )
    return fakeredis.FakeAsyncRedis(server=_embedded_server, decode_responses=True)


def create_store(settings: Settings | None = None, *, url: str | None = None) -> Store:
    """A Store for ``settings`` (``REDIS_URL`` / ``REDIS_CLUSTER``), or for an explicit ``url``."""
    settings = settings or Settings.from_env()
    keys = RedisKeys(settings.REDIS_KEY_PREFIX)
    url = url if url is not None else settings.REDIS_URL
    if not url:
        # fakeredis's pool also refuses instead of waiting past its size
        limiter = asyncio.Semaphore(settings.REDIS_MAX_CONNECTIONS)
        return Store(client=_embedded_client(), kind="embedded", keys=keys, limiter=limiter)
    cluster = settings.REDIS_CLUSTER or url.startswith(("redis+cluster://", "rediss+cluster://"))
    url = url.replace("+cluster://", "://", 1)
    retry = Retry(ExponentialBackoff(cap=0.5, base=0.05), 2)
    timeout = settings.REDIS_TIMEOUT_SECONDS
    try:
        if cluster:
            client: Any = RedisCluster.from_url(
                url,
                decode_responses=True,
                max_connections=settings.REDIS_MAX_CONNECTIONS,
                socket_timeout=timeout,
                socket_connect_timeout=timeout,
                retry=retry,
            )
            limiter = asyncio.Semaphore(settings.REDIS_MAX_CONNECTIONS)
            return Store(client=client, kind="cluster", keys=keys, url=url, limiter=limiter)
        # scripts (the request path) share one pipelined connection, other commands the rest
        total = settings.REDIS_MAX_CONNECTIONS
        lanes = 1 if total >= 2 else 0
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            decode_responses=True,
            max_connections=total - lanes,
            retry=retry,  # a client given a pool uses the pool's retry policy, not its own
            timeout=timeout,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
        )
        return Store(
            client=aioredis.Redis(connection_pool=pool, retry=retry),
            kind="redis",
            keys=keys,
            url=url,
            lane=ScriptLane(pool) if lanes else None,
        )
    except (ValueError, RedisError) as exc:
        from router.errors import ConfigError

        raise ConfigError(
            f"invalid Redis URL {mask_url(url)}: {exc}", source="environment", field="REDIS_URL"
        ) from None


def reset_embedded_store() -> None:
    """Forget the embedded server's data (tests)."""
    global _embedded_server
    _embedded_server = None
