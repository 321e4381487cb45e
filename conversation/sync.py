"""A blocking facade over :class:`~conversation.store.ConversationStore` for code without a loop.

Each method is one line: it runs the async method through a portal (kernel/portal.py: a private
event loop that lives as long as the facade, so the store's Redis connections, which belong to the
loop that opened them, stay usable from call to call). There is no second implementation here. Inside a running event
loop, await the async store instead: calling this facade there raises RuntimeError.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

from conversation.history import COUNTING_MODEL, History
from conversation.models import Message
from conversation.results import AppendResult, TruncateResult
from conversation.store import ConversationStore
from kernel.portal import Portal
from kernel.settings import Settings
from kernel.store import Store


class SyncConversationStore:
    """``ConversationStore`` with blocking methods of the same names and arguments."""

    def __init__(
        self,
        store: ConversationStore | None = None,
        *,
        backend: Store | None = None,
        settings: Settings | None = None,
    ) -> None:
        self._portal = Portal("SyncConversationStore", "await ConversationStore instead")
        self._run = self._portal.run
        self.conversations = store or ConversationStore(backend, settings=settings)

    def append_turn(
        self, conv_id: str, messages: Sequence[Message | Mapping[str, Any]], **kw: Any
    ) -> AppendResult:
        return self._run(self.conversations.append_turn(conv_id, messages, **kw))

    def append_exchange(self, conv_id: str, prompt: str, answer: str, **kw: Any) -> AppendResult:
        return self._run(self.conversations.append_exchange(conv_id, prompt, answer, **kw))

    def set_system_prompt(self, conv_id: str, system_prompt: str | None) -> AppendResult:
        return self._run(self.conversations.set_system_prompt(conv_id, system_prompt))

    def get_history(self, conv_id: str, *, model: str = COUNTING_MODEL, **kw: Any) -> History:
        return self._run(self.conversations.get_history(conv_id, model=model, **kw))

    def get_messages(self, conv_id: str, *, last: int | None = None) -> list[Message]:
        return self._run(self.conversations.get_messages(conv_id, last=last))

    def get_metadata(self, conv_id: str) -> dict[str, Any] | None:
        return self._run(self.conversations.get_metadata(conv_id))

    def truncate_conversation(
        self, conv_id: str, keep_last_n: int | None = None, *, max_tokens: int | None = None
    ) -> TruncateResult:
        return self._run(
            self.conversations.truncate_conversation(conv_id, keep_last_n, max_tokens=max_tokens)
        )

    def list_conversations(self, *, limit: int | None = None) -> list[str]:
        return self._run(self.conversations.list_conversations(limit=limit))

    list = list_conversations

    def delete(self, conv_id: str) -> bool:
        return self._run(self.conversations.delete(conv_id))

    def health_check(self) -> dict[str, Any]:
        return self._run(self.conversations.health_check())

    def close(self) -> None:
        """Close the store (if the async store owns it) and the private loop."""
        try:
            self._run(self.conversations.close())
        finally:
            self._portal.close()

    def __enter__(self) -> SyncConversationStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
