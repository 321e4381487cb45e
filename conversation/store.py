"""ConversationStore: chat history in Redis that any key, process or restart can continue.

Two keys per conversation (document 004's schema), both tagged ``{<conv_id>}`` so they share one
Redis Cluster slot and one script can touch both (see :mod:`kernel.redis_keys`):

* ``<prefix>:conv:messages:{<conv_id>}`` list of messages, oldest first (:mod:`conversation.models`)
* ``<prefix>:conv:meta:{<conv_id>}`` hash: message_count, total_tokens, bytes, last_seq, turns,
  last_model, last_provider, system_prompt, created_at, updated_at (ms), trimmed_messages

Every write is one Lua script (``append_turn``, ``truncate_conversation``), so a turn's messages are
stored together or not at all, sequence numbers are assigned in Redis (concurrent writers in any
process never interleave), the size caps are enforced in the same step, and the TTL of both keys
(``CONVERSATION_TTL_SECONDS``) is refreshed. A read is one snapshot (``read_conversation``).

Failure policy: a read raises :class:`~kernel.errors.StoreError` naming the conversation; an append
never raises for the store, a full conversation or a concurrent change: it answers an
:class:`~conversation.results.AppendResult` with ``saved=False`` and the reason, because the answer
it was asked to keep already exists and the caller must still get it.

Degraded mode (kernel/failover.py, ``STORE_FAILURE_MODE=open``): while Redis is unreachable, turns
are written to the process's local store (its next turn sees them) and kept, in order, in a
buffer of ``DEGRADED_CONVERSATION_BUFFER`` turns written to Redis when it answers again (the
turn id keeps a turn from being stored twice). Past the buffer a turn is not saved
(``store_unavailable``, saying so). History read while degraded comes from the local store: it
holds only the turns this process made since the outage began.
"""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import replace
from typing import Any, Literal, TypeVar

from redis.exceptions import TimeoutError as RedisTimeoutError

from conversation.append import ConversationLimits, TurnWrite, not_saved, read_reply
from conversation.history import COUNTING_MODEL, Entry, History, select_history
from conversation.models import Message, check_conv_id, check_turn_id, messages_from_input
from conversation.results import AppendResult, TruncateResult
from kernel.errors import ClientRequestError, ConversationError, StoreError
from kernel.failover import BufferFullError
from kernel.log import get_logger
from kernel.settings import Settings, get_settings
from kernel.store import Store, create_store
from lua import append_turn, read_conversation, truncate_conversation
from lua.append_turn import AppendReply
from lua.lib_conversation import ConversationKeys

_T = TypeVar("_T")
_INT_FIELDS = ("message_count", "total_tokens", "bytes", "last_seq", "turns", "trimmed_messages")
_TEXT_FIELDS = ("last_model", "last_provider", "system_prompt")
_HEALTH_PROBE = "__health__"
log = get_logger("conversation")


class ConversationStore:
    """Conversation history on a :class:`~kernel.store.Store` (Redis, Redis Cluster or embedded).

    ``store`` defaults to one built from ``settings`` (then owned, and closed by :meth:`close`).
    """

    def __init__(self, store: Store | None = None, *, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()
        self._owns_store = store is None
        self.store = store or create_store(self.settings)
        self.limits = ConversationLimits.from_settings(self.settings)

    def _keys(self, conv_id: str) -> ConversationKeys:
        names = self.store.keys
        return ConversationKeys(names.conv_messages(conv_id), names.conv_meta(conv_id))

    # -- writing ------------------------------------------------------------------------------
    async def append_turn(
        self,
        conv_id: str,
        messages: Sequence[Message | Mapping[str, Any]],
        *,
        model: str | None = None,
        system_prompt: str | None = None,
        expected_seq: int | None = None,
        turn_id: str | None = None,
    ) -> AppendResult:
        """Store one turn's messages together (typically the user's message and the answer).

        ``model``: the model the turn was sent to (counts tokens, becomes ``last_model``);
        default: the model of the assistant message. ``system_prompt``: replaces the stored one
        (``""`` removes it). ``expected_seq``: store only if the conversation's last sequence
        number is still this one (``History.last_seq``), else ``conversation_conflict``.
        ``turn_id``: an id for this turn; a retried append with the same id is answered from the
        first one, never stored twice.
        Bad input raises ClientRequestError; store failures are answered, not raised.
        """
        conv_id = check_conv_id(conv_id)
        _check_count(expected_seq, "expected_seq")
        checked = messages_from_input(messages)
        if not checked:
            raise ClientRequestError("messages must hold at least one message", "messages")
        model = model or next((m.model for m in checked if m.role == "assistant" and m.model), None)
        provider = next((m.provider for m in reversed(checked) if m.provider), None)
        write = TurnWrite(
            conv_id,
            checked,
            turn_id=check_turn_id(turn_id) if turn_id is not None else uuid.uuid4().hex,
            model=model,
            provider=provider,
            system_prompt=system_prompt,
            expected_seq=expected_seq,
        )
        return await self._write(write)

    async def append_exchange(
        self,
        conv_id: str,
        prompt: str,
        answer: str,
        *,
        model: str,
        provider: str | None = None,
        key: str | None = None,
        key_id: str | None = None,
        system_prompt: str | None = None,
        expected_seq: int | None = None,
        turn_id: str | None = None,
    ) -> AppendResult:
        """The turn of one ``send_chat``: the user's prompt and the answer of ``model``.

        ``key`` is the masked key that served the call (a raw secret is masked before storing).
        """
        turn = [
            Message.user(prompt),
            Message.assistant(answer, model=model, provider=provider, key=key, key_id=key_id),
        ]
        return await self.append_turn(
            conv_id,
            turn,
            model=model,
            system_prompt=system_prompt,
            expected_seq=expected_seq,
            turn_id=turn_id,
        )

    async def set_system_prompt(self, conv_id: str, system_prompt: str | None) -> AppendResult:
        """Set (or with None/``""`` remove) the system prompt; counts toward the byte cap."""
        conv_id = check_conv_id(conv_id)
        return await self._write(TurnWrite(conv_id, [], "", system_prompt=system_prompt or ""))

    async def _write(self, write: TurnWrite) -> AppendResult:
        # degraded mode: written to the local store and kept, in order, for the shared one
        replay = replace(write, expected_seq=None)
        try:
            reply = await append_turn.run(
                self.store,
                self._keys(write.conv_id),
                write.script_args(self.limits),
                replay_args=replay.script_args(self.limits),
                replayed=lambda shared: self._replayed(replay, shared),
            )
        except BufferFullError as exc:
            reason = f"conversation {write.conv_id!r} not saved: {exc}"
            return not_saved(write.conv_id, "store_unavailable", reason, turn_id=write.retry_id)
        except StoreError as exc:
            reason = f"conversation {write.conv_id!r} not saved: {exc}"
            if isinstance(exc.__cause__, RedisTimeoutError):
                reason += " (timed out: it may be stored; append again with the same turn_id)"
            return not_saved(write.conv_id, "store_unavailable", reason, turn_id=write.retry_id)
        except Exception as exc:  # the answer exists: report any failure to keep it, never raise
            reason = f"conversation {write.conv_id!r} not saved: {type(exc).__name__}: {exc}"
            return not_saved(
                write.conv_id, "conversation_not_saved", reason, turn_id=write.retry_id
            )
        return read_reply(write, reply, self.limits)

    def _replayed(self, write: TurnWrite, reply: AppendReply) -> None:
        """A turn kept while degraded reached the shared store: log it if it was refused there."""
        result = read_reply(write, reply, self.limits)
        if not result.saved:
            log.error(
                "conversation turn made while degraded refused by the shared store",
                conv_id=write.conv_id,
                turn_id=write.retry_id,
                reason=result.error_type,
                error=result.error,
            )

    async def truncate_conversation(
        self, conv_id: str, keep_last_n: int | None = None, *, max_tokens: int | None = None
    ) -> TruncateResult:
        """Drop the oldest whole turns until at most ``keep_last_n`` messages (or ``max_tokens``
        stored tokens) remain. The system prompt stays. Raises StoreError when the store fails."""
        conv_id = check_conv_id(conv_id)
        if (keep_last_n is None) == (max_tokens is None):
            raise ClientRequestError(
                "give exactly one of keep_last_n and max_tokens", "keep_last_n"
            )
        mode: Literal["count", "tokens"] = "count" if keep_last_n is not None else "tokens"
        limit = keep_last_n if keep_last_n is not None else max_tokens
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
            name = "keep_last_n" if mode == "count" else "max_tokens"
            raise ClientRequestError(f"{name} must be an integer >= 0, got {limit!r}", name)
        args = truncate_conversation.TruncateArgs(mode, limit, self.limits.ttl_seconds)
        reply = await self._guarded(
            f"truncate conversation {conv_id!r}",
            truncate_conversation.run(self.store, self._keys(conv_id), args),
        )
        return TruncateResult(conv_id, reply.removed, reply.message_count, reply.total_tokens)

    async def delete(self, conv_id: str) -> bool:
        """Remove a conversation; True if it existed."""
        conv_id = check_conv_id(conv_id)
        removed = await self._guarded(
            f"delete conversation {conv_id!r}",
            self.store.call(lambda c: c.delete(*self._keys(conv_id).encode())),
        )
        return int(removed) > 0

    # -- reading ------------------------------------------------------------------------------
    async def _snapshot(self, conv_id: str, newest: int = -1) -> read_conversation.Snapshot:
        reading = read_conversation.run(self.store, self._keys(conv_id), newest)
        return await self._guarded(f"read conversation {conv_id!r}", reading)

    async def _guarded(self, action: str, awaitable: Awaitable[_T]) -> _T:
        """Await a store call; a store failure becomes a StoreError that says what failed."""
        try:
            return await awaitable
        except StoreError as exc:
            raise StoreError(f"cannot {action}: {exc}") from exc

    def _entries(self, conv_id: str, raw_messages: Sequence[str]) -> list[Entry]:
        try:
            return [Entry(raw, index) for index, raw in enumerate(raw_messages)]
        except ValueError as exc:
            raise self._corrupt(conv_id, exc) from exc

    def _corrupt(self, conv_id: str, exc: ValueError) -> ConversationError:
        return ConversationError(f"{self.store.keys.conv_messages(conv_id)} {exc}")

    async def get_messages(self, conv_id: str, *, last: int | None = None) -> list[Message]:
        """The stored messages, oldest first (the newest ``last`` only, if given), with metadata."""
        conv_id = check_conv_id(conv_id)
        _check_count(last, "last")
        snap = await self._snapshot(conv_id, -1 if last is None else last)
        try:
            return [entry.message for entry in self._entries(conv_id, snap.messages)]
        except ValueError as exc:
            raise self._corrupt(conv_id, exc) from exc

    async def get_history(
        self,
        conv_id: str,
        *,
        model: str = COUNTING_MODEL,
        max_tokens: int | None = None,
        pending: Sequence[Message | Mapping[str, Any]] = (),
        system_prompt: str | None = None,
    ) -> History:
        """Provider-ready messages for a request to ``model``, within ``max_tokens`` prompt tokens.

        ``pending``: the messages of the request being made (the new user prompt), placed last and
        always kept. ``system_prompt`` overrides the stored one for this request. The oldest whole
        turns are dropped first; the system prompt is always kept. A store failure raises
        StoreError.
        """
        conv_id = check_conv_id(conv_id)
        _check_count(max_tokens, "max_tokens")
        extra = messages_from_input(pending, "pending")
        snap = await self._snapshot(conv_id)
        stored = self._entries(conv_id, snap.messages)
        meta = _metadata(conv_id, snap.meta, snap.pttl)
        system = system_prompt if system_prompt is not None else meta.get("system_prompt")
        try:
            messages, tokens, dropped, dropped_turns = select_history(
                stored,
                model=model,
                max_tokens=max_tokens,
                system_prompt=system or None,
                pending=extra,
            )
        except ValueError as exc:
            raise self._corrupt(conv_id, exc) from exc
        return History(
            conv_id=conv_id,
            messages=messages,
            tokens=tokens,
            last_seq=int(meta.get("last_seq") or 0),
            system_prompt=system or None,
            kept_messages=len(stored) - dropped,
            dropped_messages=dropped,
            dropped_turns=dropped_turns,
            message_count=len(stored),
            bytes=int(meta.get("bytes") or 0),
            exists=bool(snap.meta),
            over_budget=max_tokens is not None and tokens > max_tokens,
            budget=max_tokens,
            metadata=meta,
        )

    async def get_metadata(self, conv_id: str) -> dict[str, Any] | None:
        """Document 004's metadata (``message_count``, ``total_tokens``, ``last_model`` ...).

        None for an unknown (or expired) conversation. Times are unix seconds; ``ttl_seconds`` is
        the time left before it expires.
        """
        conv_id = check_conv_id(conv_id)
        snap = await self._snapshot(conv_id, 0)
        return _metadata(conv_id, snap.meta, snap.pttl) if snap.meta else None

    async def list_conversations(self, *, limit: int | None = None) -> builtins.list[str]:
        """Ids of the stored conversations (every node of a Cluster is scanned), unordered.

        A SCAN over the keyspace: meant for operators and tools, not for each request.
        """
        found: builtins.list[str] = await self._guarded(
            "list conversations", self.store.call(self._scan(limit))
        )
        return found

    async def _scan(self, limit: int | None) -> builtins.list[str]:
        head = self.store.keys.conv_meta("")[:-1]  # "<prefix>:conv:meta:{"
        found: builtins.list[str] = []
        async for key in self.store.client.scan_iter(
            match=self.store.keys.conv_pattern(), count=1000
        ):
            if key.startswith(head) and key.endswith("}"):
                found.append(key[len(head) : -1])
                if limit is not None and len(found) >= limit:
                    break
        return found

    list = list_conversations

    async def exists(self, conv_id: str) -> bool:
        conv_id = check_conv_id(conv_id)
        count = await self._guarded(
            f"check conversation {conv_id!r}",
            self.store.call(lambda c: c.exists(self._keys(conv_id).meta)),
        )
        return int(count) > 0

    async def health_check(self) -> dict[str, Any]:
        """For ``health['conversation_store']``: ``healthy``, the backend, latency, limits."""
        limits = self.limits
        report: dict[str, Any] = {
            **self.store.describe(),
            "ttl_seconds": limits.ttl_seconds,
            "max_messages": limits.max_messages,
            "max_bytes": limits.max_bytes,
            "overflow": limits.overflow,
        }
        try:
            latency = await self.store.ping()
            await read_conversation.run(self.store, self._keys(_HEALTH_PROBE), 0)
        except StoreError as exc:
            if self.store.degraded:  # turns go to the local store and are kept for Redis
                return {**report, "healthy": True, "ok": False, "error": str(exc)}
            return {**report, "healthy": False, "ok": False, "error": str(exc)}
        return {**report, "healthy": True, "ok": True, "latency_ms": round(latency, 3)}

    async def close(self) -> None:
        """Close the store if this object created it."""
        if self._owns_store:
            await self.store.close()


def _metadata(conv_id: str, raw: Mapping[str, str], pttl: int) -> dict[str, Any]:
    meta: dict[str, Any] = {"conv_id": conv_id}
    for name in _INT_FIELDS:
        meta[name] = int(raw.get(name) or 0)
    for name in _TEXT_FIELDS:
        meta[name] = raw.get(name) or None
    for name in ("created_at", "updated_at"):
        meta[name] = int(raw[name]) / 1000.0 if raw.get(name) else None
    meta["ttl_seconds"] = pttl / 1000.0 if pttl >= 0 else None
    return meta


_default: ConversationStore | None = None


def get_conversation_store(
    store: Store | None = None, *, settings: Settings | None = None
) -> ConversationStore:
    """The process-wide ConversationStore; the first call decides its store and settings."""
    global _default
    if _default is None:
        _default = ConversationStore(store, settings=settings)
    return _default


def reset_conversation_store() -> None:
    """Forget the process-wide store (tests; the caller closes it if needed)."""
    global _default
    _default = None


def _check_count(value: Any, name: str) -> None:
    """A count or sequence given by the caller: None (not given) or an integer >= 0."""
    if value is not None and (not isinstance(value, int) or value < 0):
        raise ClientRequestError(f"{name} must be an integer >= 0, got {value!r}", name)
