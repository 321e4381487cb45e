"""The request path's script calls on a standalone Redis: one pipelined connection per process.

Every request makes script calls on its answer's path (reserve, with the gateway's limits folded
in) and a deferred settle. redis-py's client spends ~100-120 us of CPU on each: a condition
variable and a timeout to take a connection from the ``BlockingConnectionPool``, a liveness read at
every checkout, retry and parsing wrappers, a task to time the socket write, argument encoding one
value at a time. The lane instead:

* packs each call in C (hiredis), with redis-py's own encoding rules;
* writes it at once when nothing is in flight; otherwise queues it, and at the end of the current
  turn of the event loop writes everything queued in one socket write (automatic pipelining: 64
  requests in flight cost one write, not 64);
* parses the replies as the bytes arrive (``data_received`` of an ``asyncio.Protocol`` feeding a
  ``hiredis.Reader``) and resolves each caller's future there: no reader task, no per-reply
  timeout object.

The connection is made by redis-py, like the pool's (same URL and options: TCP, unix socket, TLS,
AUTH, SELECT, HELLO), and once its handshake is done the lane takes its transport over. Replies are
decoded like the pool's and error replies become redis-py's exceptions (its own ``parse_error``:
NOSCRIPT is a NoScriptError, so the source is sent once after a SCRIPT FLUSH). One deadline per
connection, under the socket timeout: while calls are in flight, a reply is due within the timeout
of the previous one (or of the first write after an idle spell); a single timer checks it, re-armed
lazily. Overdue: the connection is dropped and the calls in flight fail with redis-py's
TimeoutError. Redis runs scripts one at a time anyway, so one connection loses no parallelism. A
connection failure fails the calls in flight on it (ConnectionError); ``run`` retries like the
client does (twice, with backoff): every script of this project is idempotent (the gateway's
limits take a call id for it). A caller cancelled before its call was written is not sent; one
cancelled later only stops waiting (its reply is read and dropped, so the connection stays in step).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from typing import Any

import hiredis
from redis._parsers import BaseParser
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import InvalidResponse, NoScriptError
from redis.exceptions import TimeoutError as RedisTimeoutError

from lua import Script

RETRIES = 2
BACKOFF_BASE = 0.05
BACKOFF_CAP = 0.5
_RETRYABLE = (RedisConnectionError, RedisTimeoutError, OSError)
_MORE = object()  # hiredis: the next reply is not complete yet
_PUSH = getattr(hiredis, "PushNotification", None)  # RESP3 out-of-band messages: not replies


class _Link(asyncio.Protocol):
    """One connection taken over from redis-py, and the callers waiting for its replies, oldest
    first."""

    def __init__(self, lane: ScriptLane, conn: Any) -> None:
        self.lane = lane
        self.conn = conn
        self.host = conn._host_error()
        self.inflight: deque[asyncio.Future[Any]] = deque()
        self.broken = False
        self.transport: Any = None
        self.loop = asyncio.get_running_loop()
        self.reader = hiredis.Reader(**_reader_options(conn))
        self.timeout: float | None = conn.socket_timeout
        self.since = 0.0  # the last reply, or the first write after an idle spell
        self.timer: asyncio.TimerHandle | None = None

    def attach(self) -> None:
        """Take the transport over from redis-py's stream reader and writer, after the handshake."""
        transport = self.conn._writer.transport
        self.transport = transport
        transport.set_protocol(self)
        if transport.is_closing() or self.conn._reader.exception() is not None:
            self.fail(RedisConnectionError(f"connection to {self.host} closed after the handshake"))

    def write(self, chunks: list[bytes]) -> None:
        if not self.inflight and self.timeout is not None:
            self.since = self.loop.time()
            if self.timer is None:
                self.timer = self.loop.call_at(self.since + self.timeout, self._check)
        if len(chunks) == 1:
            self.transport.write(chunks[0])
        else:
            self.transport.writelines(chunks)

    def data_received(self, data: bytes) -> None:
        inflight = self.inflight
        waiting = len(inflight)
        try:
            self.reader.feed(data)
            while (reply := self.reader.gets()) is not _MORE:
                if _PUSH is None or type(reply) is not _PUSH:
                    _deliver(inflight, reply)
        except Exception as exc:  # out of step, a protocol error, a ConnectionError reply
            self.fail(exc)
            return
        if len(inflight) != waiting and self.timeout is not None:
            self.since = self.loop.time()

    def eof_received(self) -> bool:
        return False  # the transport closes itself; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is None:
            self.fail(RedisConnectionError("Connection closed by server."))
        else:
            self.fail(RedisConnectionError(f"Error while reading from {self.host} : {exc.args}"))

    def _check(self) -> None:
        """The deadline: the oldest call in flight has had its reply due for ``timeout``."""
        self.timer = None
        if self.broken or not self.inflight or self.timeout is None:
            return
        due = self.since + self.timeout
        if self.loop.time() >= due:
            self.fail(RedisTimeoutError(f"Timeout reading from {self.host}"))
        else:
            self.timer = self.loop.call_at(due, self._check)

    def fail(self, exc: BaseException) -> None:
        """The connection is lost or out of step: drop it and fail everything in flight on it."""
        if self.broken:
            return
        self.broken = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.transport is not None:
            self.transport.abort()
        self.conn._close()
        waiting, self.inflight = self.inflight, deque()
        for future in waiting:
            _fail(future, exc)
        self.lane._lost(self)


def _deliver(inflight: deque[asyncio.Future[Any]], reply: Any) -> None:
    """Hand ``reply`` to the oldest caller (gone: the reply is dropped)."""
    if not inflight:
        raise InvalidResponse("a reply with no call waiting for it")
    future = inflight.popleft()
    if isinstance(reply, Exception):
        if isinstance(reply, RedisConnectionError):  # redis-py drops the connection on these
            _fail(future, reply)
            raise reply
        if not future.done():
            future.set_exception(reply)
    elif not future.done():
        if type(reply) is list and reply and isinstance(reply[0], RedisConnectionError):
            _fail(future, reply[0])
            raise reply[0]
        future.set_result(reply)


def _reader_options(conn: Any) -> dict[str, Any]:
    """hiredis decodes like redis-py's parser for ``conn`` would."""
    options: dict[str, Any] = {
        "protocolError": InvalidResponse,
        "replyError": BaseParser.parse_error,
        "notEnoughData": _MORE,
    }
    encoder = conn.encoder
    if encoder.decode_responses:
        options["encoding"] = encoder.encoding
        options["errors"] = encoder.encoding_errors
    return options


class ScriptLane:
    """EVALSHA (EVAL on NOSCRIPT) on one auto-pipelined connection made like ``pool``'s."""

    def __init__(self, pool: Any) -> None:
        self._pool = pool
        self._channel: _Link | None = None
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
        channel = self._channel
        if channel is not None and not channel.inflight and not self._queue:
            self._send(channel, [(packed, future)])  # an idle lane: nothing to batch with
            return future
        self._queue.append((packed, future))
        if not self._flush_scheduled:
            # after the current turn of the loop: everything queued by then goes in one write
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        return future

    def _flush(self) -> None:
        self._flush_scheduled = False
        channel = self._channel
        if channel is None or channel.broken:
            if self._connecting is None and self._queue:
                self._connecting = asyncio.get_running_loop().create_task(self._connect())
            return
        batch, self._queue = self._queue, []
        live = [(packed, future) for packed, future in batch if not future.done()]
        if live:
            self._send(channel, live)

    @staticmethod
    def _send(channel: _Link, calls: list[tuple[list[bytes], asyncio.Future[Any]]]) -> None:
        try:
            channel.write([chunk for packed, _ in calls for chunk in packed])
        except Exception as exc:  # the transport is gone
            for _, future in calls:
                _fail(future, exc)
            channel.fail(exc)
            return
        channel.inflight.extend(future for _, future in calls)

    async def _connect(self) -> None:
        """Open a new connection (redis-py's handshake), take it over, write what waited for it."""
        conn = None
        try:
            conn = self._pool.connection_class(**self._pool.connection_kwargs)
            await conn.connect()
            link = _Link(self, conn)
            link.attach()
            if link.broken:
                raise RedisConnectionError(f"connection to {link.host} closed at once")
            self._channel = link
        except BaseException as exc:
            if conn is not None:
                conn._close()
            waiting, self._queue = self._queue, []
            for _, future in waiting:
                _fail(future, exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        finally:
            self._connecting = None
        self._flush()

    def _lost(self, link: _Link) -> None:
        """``link`` is broken: calls queued meanwhile go on a new connection."""
        if self._channel is link:
            self._channel = None
        if self._queue and not self._closed and not self._flush_scheduled:
            self._flush_scheduled = True
            link.loop.call_soon(self._flush)

    async def close(self) -> None:
        self._closed = True
        queued, self._queue = self._queue, []
        closed = RedisConnectionError("the store is closed")
        for _, future in queued:
            _fail(future, closed)
        connecting = self._connecting
        if connecting is not None and not connecting.done():
            connecting.cancel()
            await asyncio.gather(connecting, return_exceptions=True)
        if self._channel is not None:
            self._channel.fail(closed)


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
    try:
        return [hiredis.pack_command(parts)]
    except TypeError:  # a value hiredis does not take: redis-py encodes it (or says why it cannot)
        return _python_pack(parts)


def _python_pack(parts: tuple[Any, ...]) -> list[bytes]:
    from redis.asyncio.connection import Connection

    packed: list[bytes] = Connection().pack_command(*parts)
    return packed
