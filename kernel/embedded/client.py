"""The redis-py command API over an :class:`~kernel.embedded.server.EmbeddedServer`.

:class:`EmbeddedClient` is a ``redis.asyncio.Redis`` whose commands run in this process instead
of on a connection: every command method, argument encoding and reply parsing is redis-py's own,
so the product's code (``store.client.hset(..., mapping=...)``, ``scan_iter``, pipelines) is the
same on every backend. A command runs synchronously inside its coroutine, so it (and a script) is
atomic within the event loop. Error replies raise redis-py's exceptions (ResponseError,
NoScriptError, ...), as a server's would.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from redis._parsers.base import BaseParser
from redis.client import EMPTY_RESPONSE, NEVER_DECODE
from redis.exceptions import ResponseError

from kernel.embedded.replies import ReplyError
from kernel.embedded.server import EmbeddedServer


def _decode(reply: Any) -> Any:
    kind = type(reply)
    if kind is bytes:
        return reply.decode()
    if kind is list:
        return [_decode(item) for item in reply]
    if isinstance(reply, bytes):  # Status
        return bytes(reply).decode()
    return reply


def _plain(reply: Any) -> Any:
    if type(reply) is list:
        return [_plain(item) for item in reply]
    return bytes(reply) if isinstance(reply, bytes) else reply


class EmbeddedClient(aioredis.Redis):
    """redis-py's async client, its commands answered by an in-process server."""

    def __init__(self, server: EmbeddedServer, *, decode_responses: bool = True) -> None:
        super().__init__(decode_responses=decode_responses, protocol=2)  # RESP2 replies
        self.server = server
        self._decoding = decode_responses
        self._encode = self.connection_pool.get_encoder().encode  # type: ignore[no-untyped-call]

    def __repr__(self) -> str:
        return f"<{type(self).__name__} (embedded store)>"

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        return self.run_command(args, options)

    def run_command(self, args: tuple[Any, ...], options: dict[str, Any]) -> Any:
        """Encode, run and parse one command, as a connection would."""
        encode = self._encode
        head = args[0]
        words = head.split() if isinstance(head, str) and " " in head else [head]
        command = [encode(a) for a in words] + [encode(a) for a in args[1:]]
        try:
            reply = self.server.execute(command)
        except ReplyError as exc:
            if EMPTY_RESPONSE in options:
                return options[EMPTY_RESPONSE]
            raise _exception(exc.message) from None
        options.pop(EMPTY_RESPONSE, None)
        options.pop("keys", None)
        if NEVER_DECODE in options:
            options.pop(NEVER_DECODE)
            reply = _plain(reply)
        else:
            reply = _decode(reply) if self._decoding else _plain(reply)
        callback = self.response_callbacks.get(head)
        return callback(reply, **options) if callback is not None else reply

    async def evalsha(self, sha: str, numkeys: int, *keys_and_args: Any) -> Any:
        """EVALSHA straight to the scripts (the request path: no command table, no callback)."""
        return self._script(self.server.scripting.evalsha, sha, numkeys, keys_and_args)

    async def eval(self, script: str, numkeys: int, *keys_and_args: Any) -> Any:
        return self._script(self.server.scripting.eval, script, numkeys, keys_and_args)

    def _script(self, run: Any, head: str, numkeys: int, keys_and_args: tuple[Any, ...]) -> Any:
        encode = self._encode
        # redis-py's encoding, its two common cases first (str: UTF-8, strict; bytes as they are)
        args = [
            a.encode() if type(a) is str else a if type(a) is bytes else encode(a)
            for a in keys_and_args
        ]
        args.insert(0, encode(numkeys))
        try:
            reply = run(encode(head), args)
        except ReplyError as exc:
            raise _exception(exc.message) from None
        return _decode(reply) if self._decoding else _plain(reply)

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Any:
        return EmbeddedPipeline(self)

    async def initialize(self) -> EmbeddedClient:
        return self

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        """Nothing to close: the server's data stays (the process-wide store outlives clients)."""

    async def close(self, close_connection_pool: bool | None = None) -> None:
        await self.aclose()


def _exception(message: bytes) -> ResponseError:
    error: ResponseError = BaseParser.parse_error(message.decode("utf-8", "replace"))  # type: ignore[no-untyped-call]
    return error


class EmbeddedPipeline(EmbeddedClient):
    """Commands queued and run in order by :meth:`execute` (all at once: atomic, like MULTI)."""

    def __init__(self, client: EmbeddedClient) -> None:
        super().__init__(client.server, decode_responses=client._decoding)
        self.command_stack: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    def execute_command(self, *args: Any, **options: Any) -> Any:
        self.command_stack.append((args, options))
        return self

    def __len__(self) -> int:
        return len(self.command_stack)

    async def __aenter__(self) -> EmbeddedPipeline:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.reset()

    def reset(self) -> None:  # type: ignore[override]  # Pipeline.reset, not RESET
        self.command_stack = []

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        stack, self.command_stack = self.command_stack, []
        replies: list[Any] = []
        for args, options in stack:
            try:
                replies.append(self.run_command(args, options))
            except ResponseError as exc:
                replies.append(exc)
        if raise_on_error:
            for reply in replies:
                if isinstance(reply, ResponseError):
                    raise reply
        return replies
