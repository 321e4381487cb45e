"""A ConversationStore on the test's store backend (``all_stores`` parametrises ``store``)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from conversation.store import ConversationStore
from kernel.settings import Settings
from kernel.store import Store

MakeConversations = Callable[..., ConversationStore]


def conversations_on(store: Store, **settings: object) -> ConversationStore:
    """A ConversationStore over ``store``, CONVERSATION_* settings overridden by ``settings``."""
    return ConversationStore(store, settings=Settings.from_env({}, **settings))


@pytest.fixture
def conversations(store: Store) -> ConversationStore:
    return conversations_on(store)


@pytest.fixture
def make_conversations(store: Store) -> MakeConversations:
    def make(**settings: object) -> ConversationStore:
        return conversations_on(store, **settings)

    return make
