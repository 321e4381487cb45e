"""The embedded store's Lua: Redis's scripts run by lupa (LuaJIT 2.1 when available, else Lua
5.1: both Lua 5.1 semantics, Redis's) against the in-process keyspace.

Each script source is compiled once (cached by SHA1, EVALSHA's handle) as a chunk called with
``KEYS`` and ``ARGV``. ``redis.call`` / ``redis.pcall`` reach :meth:`Keyspace.execute` with Redis's
conversions both ways:

* Lua -> command arguments: strings as they are, numbers as ``%.17g`` (Redis 7.0), anything else
  an error;
* command reply -> Lua: integer -> number, bulk -> string, nil -> false, array -> table, status ->
  ``{ok=...}``, error -> ``{err=...}`` (raised by ``redis.call``, returned by ``redis.pcall``);
* the script's result -> reply: number -> integer (truncated toward zero), string -> bulk, true ->
  1, false/nil -> nil, ``{ok=}`` -> status, ``{err=}`` -> error, other tables -> array up to the
  first nil.

A script runs to completion without yielding to the event loop: scripts are atomic, as on Redis,
and keys expire against the script's start time while it runs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from kernel.embedded.keyspace import Keyspace
from kernel.embedded.luahash import LUA, to_reply
from kernel.embedded.replies import ReplyError, Status, to_int

NOSCRIPT = b"NOSCRIPT No matching script. Please use EVAL."
MAX_VARARGS = 64
BAD_ARGUMENT = b"ERR Lua redis lib command arguments must be strings or integers"

PRELUDE = """
local call, unpack, type, error, select, pcall, loadstring, upper, lua_commands, set_now = ...
io, os, loadfile, dofile, debug, package, require, module = nil, nil, nil, nil, nil, nil, nil, nil
redis = {
  LOG_DEBUG = 0, LOG_VERBOSE = 1, LOG_NOTICE = 2, LOG_WARNING = 3,
  REPL_NONE = 0, REPL_AOF = 1, REPL_SLAVE = 2, REPL_REPLICA = 2, REPL_ALL = 3,
}
-- commands answered in Lua (the hashes: kernel/embedded/hash_lua.py), the others by Python
local function dispatch(name, ...)
  local f = lua_commands[name]
  if f == nil and type(name) == 'string' then f = lua_commands[upper(name)] end
  if f ~= nil then return f(name, ...) end
  return call(name, ...)
end
function redis.call(...)
  local reply = dispatch(...)
  if type(reply) == 'table' and reply.err ~= nil then error(reply, 0) end
  return reply
end
redis.pcall = dispatch
function redis.error_reply(message) return {err = message} end
function redis.status_reply(message) return {ok = message} end
function redis.log() end
function redis.replicate_commands() return true end
function redis.set_repl() end
local function compile(source)
  return loadstring('local KEYS, ARGV = ...; ' .. source, '@user_script')
end
local function split(chunk, nkeys, all, n)
  local KEYS, ARGV = {}, {}
  for i = 1, nkeys do KEYS[i] = all[i] end
  for i = nkeys + 1, n do ARGV[i - nkeys] = all[i] end
  local ok, result = pcall(chunk, KEYS, ARGV)
  return ok, result
end
local function run(chunk, nkeys, now, ...)
  set_now(now)
  return split(chunk, nkeys, {...}, select('#', ...))
end
local function run_table(chunk, nkeys, now, all, n)
  set_now(now)
  return split(chunk, nkeys, all, n)
end
local function ok(message) return {ok = message} end
local function err(message) return {err = message} end
return compile, run, run_table, ok, err
"""


def _argument(value: Any) -> bytes:
    """A redis.call argument that is not a string: a number as Redis 7.0 formats it."""
    if type(value) is int or type(value) is float:
        return b"%.17g" % value
    raise ReplyError(BAD_ARGUMENT)


class Scripting:
    """One Lua runtime over one keyspace; compiled scripts by SHA1."""

    def __init__(self, keyspace: Keyspace) -> None:
        self.keyspace = keyspace
        self.scripts: dict[str, Any] = {}
        self.lua = keyspace.lua
        g = self.lua.globals()
        hashes = keyspace.hashes
        compile_, run, run_table, ok, err = self.lua.execute(
            PRELUDE,
            self._call,
            g.unpack,
            g.type,
            g.error,
            g.select,
            g.pcall,
            g.loadstring,
            g.string.upper,
            hashes.commands,
            hashes.set_now,
        )
        self._compile: Callable[..., Any] = compile_
        self._run: Callable[..., Any] = run
        self._run_table: Callable[..., Any] = run_table
        self._ok: Callable[[bytes], Any] = ok
        self._err: Callable[[bytes], Any] = err
        self._table = self.lua.table_from

    # -- redis.call -------------------------------------------------------------------------------
    def _call(self, *args: Any) -> Any:
        try:
            if not args:
                raise ReplyError(
                    b"ERR Please specify at least one argument for this redis lib call"
                )
            command = [a if type(a) is bytes else _argument(a) for a in args]
            reply = self.keyspace.execute(command, True)
        except ReplyError as exc:
            return self._err(exc.message)
        kind = type(reply)
        if kind is bytes or kind is int:  # most replies: as they are
            return reply
        return self._to_lua(reply)

    def _to_lua(self, reply: Any) -> Any:
        kind = type(reply)
        if kind is bytes or kind is int:
            return reply
        if reply is None:
            return False
        if kind is list:
            return self._table([self._to_lua(item) for item in reply])
        if kind is Status:
            return self._ok(bytes(reply))
        raise TypeError(f"no Lua form for a {kind.__name__} reply")

    # -- EVAL / EVALSHA / SCRIPT ------------------------------------------------------------------
    def load(self, source: bytes) -> str:
        sha = hashlib.sha1(source).hexdigest()  # noqa: S324 (Redis's script handle)
        if sha not in self.scripts:
            chunk, problem = self._compile_source(source)
            if chunk is None:
                raise ReplyError(b"ERR Error compiling script (new function): " + problem)
            self.scripts[sha] = chunk
        return sha

    def _compile_source(self, source: bytes) -> tuple[Any, bytes]:
        found = self._compile(source)
        if isinstance(found, tuple):  # (nil, message)
            return None, found[1] if isinstance(found[1], bytes) else b"syntax error"
        return found, b""

    def evalsha(self, sha: bytes, args: list[bytes]) -> Any:
        chunk = self.scripts.get(sha.decode("ascii", "replace").lower())
        if chunk is None:
            raise ReplyError(NOSCRIPT)
        return self._execute(chunk, sha, args)

    def eval(self, source: bytes, args: list[bytes]) -> Any:
        sha = self.load(source)
        return self._execute(self.scripts[sha], sha.encode(), args)

    def _execute(self, chunk: Any, sha: bytes, args: list[bytes]) -> Any:
        nkeys = to_int(args[0], b"ERR value is not an integer or out of range")
        if nkeys > len(args) - 1:
            raise ReplyError(b"ERR Number of keys can't be greater than number of args")
        if nkeys < 0:
            raise ReplyError(b"ERR Number of keys can't be negative")
        keyspace = self.keyspace
        keyspace.frozen_ms = now = int(keyspace.clock() * 1000)
        try:
            if len(args) <= MAX_VARARGS:
                ok, result = self._run(chunk, nkeys, now, *args[1:])
            else:  # past what the Lua C stack takes as arguments
                ok, result = self._run_table(
                    chunk, nkeys, now, self._table(args[1:]), len(args) - 1
                )
        finally:
            keyspace.frozen_ms = None
        if now >= keyspace.next_cycle_ms:
            keyspace.tick(now)
        if not ok:
            raise ReplyError(_failure(result) + b" script: " + sha)
        return to_reply(result)


def _failure(error: Any) -> bytes:
    """The error reply of a script that raised ``error`` (a redis.call error table, text, or a
    Python exception from the bridge itself)."""
    if isinstance(error, bytes):
        return error if error.startswith(b"ERR ") else b"ERR " + error
    if LUA.lua_type(error) == "table":
        message = error[b"err"]
        if isinstance(message, bytes):
            return message
    if isinstance(error, BaseException):
        return f"ERR embedded store: {type(error).__name__}: {error}".encode()
    return b"ERR script raised a non-string error"
