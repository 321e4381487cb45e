"""Conversation history in Redis: survives key rotation, router restarts and concurrent writers.

``ConversationStore`` is the async API (primary); ``SyncConversationStore`` is a blocking facade
over it for code without an event loop. See docs/conversation.md.
"""

from conversation.append import ConversationLimits
from conversation.history import History
from conversation.models import Message, Role
from conversation.results import AppendResult, TruncateResult
from conversation.store import (
    ConversationStore,
    get_conversation_store,
    reset_conversation_store,
)
from conversation.sync import SyncConversationStore

__all__ = [
    "AppendResult",
    "ConversationLimits",
    "ConversationStore",
    "History",
    "Message",
    "Role",
    "SyncConversationStore",
    "TruncateResult",
    "get_conversation_store",
    "reset_conversation_store",
]
