"""The request path's script calls on a standalone Redis: one pipelined connection per process.

Every request makes two script calls (reserve, settle), and through the gateway a third (limits).
redis-py's client spends ~100-120 us of CPU on each: a condition variable and a timeout to take a
connection from the ``BlockingConnectionPool``, a liveness read at every checkout, retry and parsing
wrappers, a task to time the socket write, argument encoding one value at a time. The lane instead:

* packs each call in C (hiredis), with redis-py's own encoding rules;
* writes it at once when nothing is in flight; otherwise queues it, and at the end of the current
  turn of the event loop writes everything queued in one socket write (automatic pipelining: 64
  requests in flight cost one write, not 64);
* reads the replies, in order, on one reader task that lives as long as the connection, and hands
  each to its caller.

Replies, decoding and errors are redis-py's (the connection is made like the pool's, from the same
URL and options, and read with ``Connection.read_response``, under its socket timeout). Redis runs
scripts one at a time anyway, so one connection loses no parallelism. A connection failure fails
the calls in flight on it; ``run`` retries like the client does (twice, with backoff): every script
of this project is idempotent (the gateway's limits take a call id for it: lua/acquire_limits.lua). A caller cancelled before its call was written is not sent; one
cancelled later only stops waiting (its reply is read and dropped, so the connection stays in step).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from lua import Script

_hiredis_pack: Callable[[tuple[Any, ...]], bytes] | None
try:
    from hiredis import pack_command as _hiredis_pack
except ImportError:  # pragma: no cover - hiredis comes with redis[hiredis]
    _hiredis_pack = None

RETRIES = 2
BACKOFF_BASE = 0.05
BACKOFF_CAP = 0.5
_RETRYABLE = (RedisConnectionError, RedisTimeoutError, OSError)


class _Channel:
    """One connection, its reader, and the callers waiting for its replies, oldest first."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.inflight: deque[asyncio.Future[Any]] = deque()
        self.wake = asyncio.Event()
        self.reader: asyncio.Task[None] | None = None
        self.broken = False

    def write(self, chunks: list[bytes]) -> None:
        """Hand the bytes to the transport now (it buffers what the socket does not take)."""
        self.conn._writer.writelines(chunks)


class ScriptLane:
    """EVALSHA (EVAL on NOSCRIPT) on one auto-pipelined connection made like ``pool``'s."""

    def __init__(self, pool: Any) -> None:
        self._pool = pool
        self._channel: _Channel | None = None
        self._queue: list[tuple[list[bytes], asyncio.Future[Any]]] = []
        self._flush_scheduled = False
        self._connecting: asyncio.Task[None] | None = None
        self._closed = False

    async def run(self, script: Script, keys: Sequence[str], args: Sequence[Any]) -> Any:
        for attempt in range(RETRIES + 1):
            try:
                try:
                    return await self._submit(_pack("EVALSHA", script.sha, keys, args))
                except NoScriptError:
                    return await self._submit(_pack("EVAL", script.source, keys, args))
            except _RETRYABLE:
                if attempt == RETRIES or self._closed:
                    raise
                await asyncio.sleep(min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt))
        raise AssertionError("unreachable")  # pragma: no cover

    def _submit(self, packed: list[bytes]) -> asyncio.Future[Any]:
        if self._closed:
            raise RedisConnectionError("the store is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.append((packed, future))
        if self._flush_scheduled:
            return future
        channel = self._channel
        if channel is not None and not channel.inflight and len(self._queue) == 1:
            self._flush()  # an idle lane: nothing to batch with, write at once
        else:
            # after the current turn of the loop: everything queued by then goes in one write
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        return future

    def _flush(self) -> None:
        self._flush_scheduled = False
        channel = self._channel
        if channel is None or channel.broken or not channel.conn.is_connected:
            if self._connecting is None and self._queue:
                self._connecting = asyncio.get_running_loop().create_task(self._connect())
            return
        batch, self._queue = self._queue, []
        live = [(packed, future) for packed, future in batch if not future.done()]
        if not live:
            return
        channel.inflight.extend(future for _, future in live)
        try:
            channel.write([chunk for packed, _ in live for chunk in packed])
        except Exception as exc:  # the transport is gone: the reader fails what is in flight
            channel.broken = True
            for _, future in live:
                _fail(future, exc)
        channel.wake.set()

    async def _connect(self) -> None:
        """Open a new connection and its reader, then write what waited for it."""
        try:
            conn = self._pool.connection_class(**self._pool.connection_kwargs)
            channel = _Channel(conn)
            await conn.connect()
            channel.reader = asyncio.get_running_loop().create_task(self._read(channel))
            self._channel = channel
        except BaseException as exc:
            waiting, self._queue = self._queue, []
            for _, future in waiting:
                _fail(future, exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        finally:
            self._connecting = None
        self._flush()

    async def _read(self, channel: _Channel) -> None:
        try:
            while not channel.broken:
                if not channel.inflight:
                    channel.wake.clear()
                    await channel.wake.wait()
                    continue
                try:
                    reply: Any = await channel.conn.read_response()
                    failed = False
                except ResponseError as exc:  # an error reply: it belongs to the oldest caller
                    reply, failed = exc, True
                future = channel.inflight.popleft()
                if not future.done():
                    if failed:
                        future.set_exception(reply)
                    else:
                        future.set_result(reply)
            await self._break(channel, RedisConnectionError("connection lost while writing"))
        except BaseException as exc:
            await self._break(channel, exc)
            if isinstance(exc, asyncio.CancelledError):
                raise

    async def _break(self, channel: _Channel, exc: BaseException) -> None:
        """The connection is lost or out of step: fail everything in flight on it."""
        channel.broken = True
        if self._channel is channel:
            self._channel = None
        waiting, channel.inflight = list(channel.inflight), deque()
        for future in waiting:
            _fail(future, exc)
        await channel.conn.disconnect(nowait=True)
        if self._queue and not self._closed and not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)  # calls queued meanwhile: reconnect

    async def close(self) -> None:
        self._closed = True
        queued, self._queue = self._queue, []
        closed = RedisConnectionError("the store is closed")
        for _, future in queued:
            _fail(future, closed)
        channel = self._channel
        for task in (self._connecting, channel.reader if channel else None):
            if task is not None and not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if channel is not None and not channel.broken:
            await self._break(channel, closed)


def _fail(future: asyncio.Future[Any], exc: BaseException) -> None:
    if future.done():
        return
    if isinstance(exc, _RETRYABLE):
        future.set_exception(exc)
    else:  # cancellation or a bug: the caller sees a connection error it may retry
        future.set_exception(RedisConnectionError(f"script call interrupted: {exc!r}"))


def _pack(command: str, target: str, keys: Sequence[str], args: Sequence[Any]) -> list[bytes]:
    """The RESP bytes of ``command target numkeys keys... args...``, as redis-py would encode them."""
    parts = (command, target, len(keys), *keys, *args)
    if _hiredis_pack is not None:
        try:
            return [_hiredis_pack(parts)]
        except TypeError:
            pass  # a value hiredis does not take: redis-py encodes it (or says why it cannot)
    return _python_pack(parts)


def _python_pack(parts: tuple[Any, ...]) -> list[bytes]:
    from redis.asyncio.connection import Connection

    packed: list[bytes] = Connection().pack_command(*parts)
    return packed
