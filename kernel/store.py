"""The store: one async interface over Redis, Redis Cluster and the embedded in-process store.

``create_store(settings)`` picks the backend:

* ``REDIS_URL`` set: ``redis.asyncio`` with a ``BlockingConnectionPool`` (callers wait for a free
  connection instead of failing at the pool's size); with ``REDIS_CLUSTER=true`` (or a
  ``redis+cluster://`` URL) a ``RedisCluster``. On a standalone Redis, scripts (the request path)
  share one automatically pipelined connection (kernel/script_lane.py).
* ``REDIS_URL`` unset or empty: the embedded store (kernel/embedded/): the very same Lua scripts
  run by lupa against an in-process keyspace, behind redis-py's command API. Only this process sees
  it: logged once as single-process only.

Every module gets a :class:`Store` and uses ``store.client`` (the redis-py command API, identical on
all three) and :meth:`Store.run` (EVALSHA with transparent NOSCRIPT reload); none knows which
backend it has. Connection failures surface as :class:`~kernel.errors.StoreError`.

With ``STORE_FAILURE_MODE=open`` (default) a Redis or Cluster store has a degraded mode
(kernel/failover.py): when the shared store is unreachable, ``run`` and ``call`` go to a private
local backend and ``store.client`` is its client until the shared store answers again.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import NoScriptError, RedisError, ResponseError

from kernel.embedded_store import embedded_client, private_client
from kernel.embedded_store import reset_embedded_store as reset_embedded_store  # public path
from kernel.errors import StoreError
from kernel.failover import UNREACHABLE, Failover, Replay, is_unreachable
from kernel.log import get_logger
from kernel.redis_keys import RedisKeys
from kernel.script_lane import ScriptLane
from kernel.settings import Settings
from lua import Script

StoreKind = Literal["redis", "cluster", "embedded"]
log = get_logger("router.store")


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

    client: Any  # redis.asyncio.Redis | RedisCluster | EmbeddedClient: one command API
    kind: StoreKind
    keys: RedisKeys
    url: str = ""
    #: Bounds commands in flight. redis-py's RedisCluster raises MaxConnectionsError instead of
    #: waiting when the pool is full, so its callers queue here (the standalone client waits in its
    #: BlockingConnectionPool; the embedded store has no connections). Commands should go through
    #: run() or call().
    limiter: asyncio.Semaphore | None = field(default=None, repr=False)
    #: Standalone Redis: scripts run on connections of their own (kernel/script_lane.py).
    lane: ScriptLane | None = field(default=None, repr=False)
    _closed: bool = field(default=False, repr=False)
    _ready: bool = field(default=False, repr=False)
    _ready_lock: asyncio.Lock | None = field(default=None, repr=False)
    #: Degraded mode (STORE_FAILURE_MODE=open with REDIS_URL): the local backend and the switch.
    failover: Failover | None = field(default=None, repr=False)

    async def _ensure_ready(self) -> None:
        """RedisCluster loads the slot map on first use; a burst of first commands racing that
        load can fail (redis-py 8), so the first caller loads it while the others wait."""
        if self._ready or self.kind != "cluster":
            return
        if self._ready_lock is None:
            self._ready_lock = asyncio.Lock()
        async with self._ready_lock:
            if not self._ready:
                await self.shared_client.initialize()
                self._ready = True

    @property
    def is_embedded(self) -> bool:
        return self.kind == "embedded"

    # -- degraded mode (kernel/failover.py) ------------------------------------------------------
    @property
    def degraded(self) -> bool:
        """True while this store serves on its local backend (the shared one is unreachable)."""
        return self.failover is not None and self.failover.degraded

    @property
    def shared_client(self) -> Any:
        """The shared store's client, whatever the mode."""
        return self.failover.shared_client if self.failover is not None else self.client

    @property
    def local_divisor(self) -> int:
        """What each key's limits are divided by on the local backend (ROUTER_PROCESSES)."""
        return self.failover.divisor if self.failover is not None else 1

    def require_shared(self, action: str) -> None:
        """Refuse an operation that must reach the shared store while degraded."""
        if self.degraded:
            raise StoreError(
                f"cannot {action}: {self.describe_target()} is unreachable (degraded mode): "
                "retry when it is back"
            )

    async def check(self) -> None:
        """Reach the shared store once (at start): in open failure mode, an unreachable store
        switches to degraded instead of raising."""
        try:
            await self._guard(self.shared_client.ping())
        except StoreError as exc:
            if self.failover is None or not is_unreachable(exc.__cause__):
                raise
            self.failover.enter(exc)

    # -- commands ---------------------------------------------------------------------------------
    async def run(
        self,
        script: Script,
        keys: Sequence[str],
        args: Sequence[Any],
        *,
        local_args: Sequence[Any] | None = None,
        replay_args: Sequence[Any] | None = None,
        replayed: Callable[[Any], None] | None = None,
    ) -> Any:
        """Run a Lua script by SHA; on NOSCRIPT (restart, failover) send its source once.

        Degraded mode: ``local_args`` replace ``args`` when the script runs on the local backend
        (divided limits); with ``replay_args`` a write made locally is kept and run again on the
        shared store (with those arguments) when it returns, ``replayed`` told its reply.
        """
        reply, _ = await self.run_where(
            script, keys, args, local_args=local_args, replay_args=replay_args, replayed=replayed
        )
        return reply

    async def run_where(
        self,
        script: Script,
        keys: Sequence[str],
        args: Sequence[Any],
        *,
        local_args: Sequence[Any] | None = None,
        replay_args: Sequence[Any] | None = None,
        replayed: Callable[[Any], None] | None = None,
    ) -> tuple[Any, bool]:
        """Like :meth:`run`; also says whether the script ran on the local backend."""
        failover = self.failover
        if failover is None or not failover.degraded:
            try:
                return await self.run_shared(script, keys, args), False
            except StoreError as exc:
                if failover is None or not is_unreachable(exc.__cause__):
                    raise
                failover.enter(exc)
        if replay_args is not None:
            failover.check_room()
        reply = await failover.local.run(
            script, keys, local_args if local_args is not None else args
        )
        if replay_args is not None:
            if failover.degraded:
                failover.keep(Replay(script, keys, replay_args, replayed))
            else:  # the store came back while this ran: write it there now
                shared = await self.run_shared(script, keys, replay_args)
                if replayed is not None:
                    replayed(shared)
        return reply, True

    async def run_shared(self, script: Script, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Run a script on the shared store only (no degraded mode)."""
        try:
            if self.lane is not None:
                return await self.lane.run(script, keys, args)
            await self._ensure_ready()
            if self.limiter is not None:
                async with self.limiter:
                    return await self._run(script, keys, args)
            return await self._run(script, keys, args)
        except UNREACHABLE as exc:
            raise StoreError(
                f"{self.describe_target()} unreachable running {script.name}: {exc}"
            ) from exc
        except ResponseError as exc:
            raise StoreError(f"script {script.name} failed: {exc}") from exc

    async def _run(self, script: Script, keys: Sequence[str], args: Sequence[Any]) -> Any:
        client = self.shared_client
        try:
            return await client.evalsha(script.sha, len(keys), *keys, *args)
        except NoScriptError:
            log.debug("lua script loaded", script=script.name)
            return await client.eval(script.source, len(keys), *keys, *args)

    async def call(self, command: Any, *, shared_only: bool = False) -> Any:
        """Await a redis-py command, translating connection failures into StoreError.

        ``command`` is an awaitable made from ``store.client`` (it runs where it was made), or a
        function of a client (``lambda c: c.hget(name, field)``): that one moves to the local
        backend when the shared store fails. ``shared_only``: raise StoreError while degraded
        (an unreachable shared store still switches the store to degraded).
        """
        failover = self.failover
        if failover is not None and failover.degraded:
            if shared_only:
                if inspect.iscoroutine(command):
                    command.close()
                self.require_shared("run a command")
            # an awaitable made while degraded was made from the local client (store.client)
            local = failover.local
            return await local.call(command(local.client) if callable(command) else command)
        awaitable = command(self.client) if callable(command) else command
        try:
            return await self._guard(awaitable)
        except StoreError as exc:
            if failover is None or not is_unreachable(exc.__cause__):
                raise
            failover.enter(exc)
            if shared_only or not callable(command):
                raise
        assert failover is not None
        return await failover.local.call(command(failover.local.client))

    async def _guard(self, awaitable: Any) -> Any:
        try:
            await self._ensure_ready()
            if self.limiter is not None:
                async with self.limiter:
                    return await awaitable
            return await awaitable
        except UNREACHABLE as exc:
            raise StoreError(f"{self.describe_target()} unreachable: {exc}") from exc
        except RedisError as exc:
            raise StoreError(f"{self.describe_target()} error: {exc}") from exc
        finally:
            if inspect.iscoroutine(awaitable) and awaitable.cr_frame is not None:
                awaitable.close()  # never awaited (the store was not ready): no warning

    async def ping(self) -> float:
        """Round-trip time to the shared store in milliseconds; raises StoreError when it does
        not answer (degraded or not)."""
        started = time.perf_counter()
        await self._guard(self.shared_client.ping())
        return (time.perf_counter() - started) * 1000.0

    async def server_time(self) -> float:
        """The store's clock (the clock every script uses), as unix seconds."""
        seconds, micros = await self.call(lambda client: client.time())
        return float(seconds) + float(micros) / 1e6

    def describe_target(self) -> str:
        return "embedded store" if self.is_embedded else f"Redis at {mask_url(self.url)}"

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "prefix": self.keys.prefix}
        if not self.is_embedded:
            out["url"] = mask_url(self.url)
        else:
            out["note"] = "in-process store: state is visible to this process only"
        if self.failover is not None:
            out.update(self.failover.describe())
        return out

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.failover is not None:
            await self.failover.close()
        if self.lane is not None:
            await self.lane.close()
        client = self.shared_client
        closer = getattr(client, "aclose", None) or client.close
        result = closer()
        if asyncio.iscoroutine(result):
            await result


def create_store(settings: Settings | None = None, *, url: str | None = None) -> Store:
    """A Store for ``settings`` (``REDIS_URL`` / ``REDIS_CLUSTER``), or for an explicit ``url``."""
    settings = settings or Settings.from_env()
    keys = RedisKeys(settings.REDIS_KEY_PREFIX, shards=settings.POOL_SHARDS)
    url = url if url is not None else settings.REDIS_URL
    if not url:
        return Store(client=embedded_client(), kind="embedded", keys=keys)
    cluster = settings.REDIS_CLUSTER or url.startswith(("redis+cluster://", "rediss+cluster://"))
    url = url.replace("+cluster://", "://", 1)
    try:
        connect = _cluster_store if cluster else _redis_store
        return _with_failover(connect(url, keys, settings), settings)
    except (ValueError, RedisError) as exc:
        from kernel.errors import ConfigError

        raise ConfigError(
            f"invalid Redis URL {mask_url(url)}: {exc}", source="environment", field="REDIS_URL"
        ) from None


def _retry() -> Retry:
    return Retry(ExponentialBackoff(cap=0.5, base=0.05), 2)


def _cluster_store(url: str, keys: RedisKeys, settings: Settings) -> Store:
    timeout = settings.REDIS_TIMEOUT_SECONDS
    client: Any = RedisCluster.from_url(
        url,
        decode_responses=True,
        max_connections=settings.REDIS_MAX_CONNECTIONS,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=_retry(),
    )
    limiter = asyncio.Semaphore(settings.REDIS_MAX_CONNECTIONS)
    return Store(client=client, kind="cluster", keys=keys, url=url, limiter=limiter)


def _redis_store(url: str, keys: RedisKeys, settings: Settings) -> Store:
    """A standalone Redis: scripts (the request path) share one pipelined connection, other
    commands the rest of the pool."""
    timeout = settings.REDIS_TIMEOUT_SECONDS
    retry = _retry()
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


def _with_failover(store: Store, settings: Settings) -> Store:
    """Give a shared store its degraded mode (STORE_FAILURE_MODE=open)."""
    if settings.STORE_FAILURE_MODE != "open":
        return store

    def new_local() -> Store:
        """A private in-process server (not the process-wide embedded one), the same scripts."""
        return Store(client=private_client(), kind="embedded", keys=store.keys)

    store.failover = Failover(
        store.client,
        new_local,
        divisor=settings.ROUTER_PROCESSES,
        buffer_size=settings.DEGRADED_CONVERSATION_BUFFER,
    )
    store.failover.attach(store)
    return store
