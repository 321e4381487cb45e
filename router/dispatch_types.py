"""What a dispatch takes and gives: the caller's ``CallPlan`` and the ``Dispatched`` end of its
attempts (router/dispatch.py runs them, router/attempt.py makes each call)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from kernel.errors import RouterError
from kernel.usage_record import Attribution
from keys.admission import Admission
from keys.manager import KeySelection
from router.answers import CallSummary
from router.providers import ChatResult, StreamEvent

Messages = list[dict[str, Any]]


@dataclass
class CallPlan:
    """What the caller asked for; ``messages_for(model)`` gives the messages to send to a model
    (a conversation's history is budgeted per model's context window)."""

    requested_model: str | None
    messages_for: Callable[[str], Awaitable[Messages]]
    max_tokens: int | None = None
    expected_completion: int | None = None
    temperature: float | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, str] | None = None
    request_id: str = ""
    timeout: float | None = None
    #: Whom the call is for: its usage record's caller fields and the budgets it counts against.
    attribution: Attribution = field(default_factory=Attribution)
    #: The gateway's request limits of the call, charged with its first reservation.
    admission: Admission | None = None


@dataclass
class Dispatched:
    """The end of the attempts: a result, a live stream, or the final error."""

    summary: CallSummary
    messages: Messages = field(default_factory=list)
    selection: KeySelection | None = None
    result: ChatResult | None = None
    first: StreamEvent | None = None
    rest: AsyncIterator[StreamEvent] | None = None
    estimate: int = 0
    error: RouterError | None = None
