"""A conversation's turn in a call: the history it is sent with, and storing it.

The history is read per model tried (a fallback may have a smaller context window), within the
window less the completion's reservation. The turn is stored once the call succeeded; the answer
says whether it was (``conversation_saved``, router/answers.py) and a turn that could not be stored
never turns the answer into a failure: it was produced and paid for.
"""

from __future__ import annotations

from conversation.store import ConversationStore
from kernel.log import get_logger
from router.answers import Answer
from router.dispatch import Dispatched, Messages
from router.plans import MessagesFor
from router.providers.catalog import context_window
from router.streaming import OnDone

log = get_logger("router")


def history_for(
    conversations: ConversationStore,
    conv_id: str,
    prompt: str,
    system_prompt: str | None,
    completion: int,
) -> MessagesFor:
    """The messages of a turn for a model: the history that fits its window, then ``prompt``."""
    user = {"role": "user", "content": prompt}
    cache: dict[str, Messages] = {}

    async def history(model_name: str) -> Messages:
        if model_name not in cache:
            window = context_window(model_name)
            budget = max(0, window - completion) if window else None
            found = await conversations.get_history(
                conv_id,
                model=model_name,
                max_tokens=budget,
                pending=[user],
                system_prompt=system_prompt,
            )
            cache[model_name] = found.messages
        return cache[model_name]

    return history


def store_turn(
    conversations: ConversationStore, conv_id: str, prompt: str, system_prompt: str | None
) -> OnDone:
    """Stores a successful answer's turn; answers it with the conversation's fields."""

    async def store(answer: Answer, done: Dispatched) -> Answer:
        saved = await conversations.append_exchange(
            conv_id,
            prompt,
            answer["content"] or "",
            model=answer["model"],
            provider=answer["provider"],
            key=answer["key"],
            key_id=answer["key_id"],
            system_prompt=system_prompt,
            turn_id=answer["request_id"],
        )
        if not saved.saved:
            log.error("conversation turn not saved", conversation=conv_id, error=saved.error)
        return {**answer, **saved.response_fields()}

    return store
