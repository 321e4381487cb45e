"""From the API's arguments to a ``CallPlan`` (router/dispatch.py), and the checks made on it
before any provider is asked.

``send_one_shot``/``complete`` send fixed messages (:func:`fixed`); a conversation's turn sends its
history, read per model (router/turns.py). ``options`` are the API's keyword arguments:
``max_tokens``, ``tags``, ``request_id`` and ``timeout`` are the router's (and the gateway's
``attribution`` and ``admission``: its request limits, keys/admission.py), the rest are passed to
the provider (``tools``, ``tool_choice``, ``response_format`` ...).
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import Any

from kernel.errors import ClientRequestError
from kernel.text import control_char_problem
from kernel.usage_record import Attribution
from router.answers import CallSummary
from router.dispatch import CallPlan, Messages
from router.providers.catalog import completion_tokens_problem

MessagesFor = Callable[[str], Awaitable[Messages]]


def make_plan(
    messages_for: MessagesFor,
    model: str | None,
    expected: int | None,
    temperature: float | None,
    options: dict[str, Any],
) -> CallPlan:
    options = dict(options)
    who = attribution_of(options)
    return CallPlan(
        requested_model=model,
        messages_for=messages_for,
        max_tokens=options.pop("max_tokens", None),
        expected_completion=expected,
        temperature=temperature,
        tags=options.pop("tags", None),
        request_id=options.pop("request_id", None) or os.urandom(16).hex(),
        timeout=options.pop("timeout", None),
        attribution=who,
        admission=options.pop("admission", None),
        extras=options,
    )


def attribution_of(options: dict[str, Any]) -> Attribution:
    """Whom a call is for: ``attribution`` (the gateway's), else ``user`` (also sent on to the
    provider, as OpenAI's ``user`` is) and ``team`` (the router's own) from the options.
    Checked by :func:`plan_error`."""
    given = options.pop("attribution", None)
    team = options.pop("team", None)
    if isinstance(given, Attribution):
        return given
    return Attribution(user=options.get("user"), team=team)


def _attribution_problem(who: Attribution) -> ClientRequestError | None:
    for param, value in (("user", who.user), ("team", who.team)):
        if value is None:
            continue
        problem = (
            "expected a string of 1 to 256 characters"
            if not isinstance(value, str) or not 0 < len(value) <= 256
            else control_char_problem(value)
        )
        if problem is not None:
            return ClientRequestError(f"Invalid value for '{param}': {problem}", param)
    return None


def fixed(messages: Messages) -> MessagesFor:
    """The same messages whichever model is tried."""

    async def messages_for(_: str) -> Messages:
        return messages

    return messages_for


def with_system(messages: Messages, system_prompt: str | None) -> Messages:
    return ([{"role": "system", "content": system_prompt}] if system_prompt else []) + messages


def summary_of(plan: CallPlan, *, stream: bool = False) -> CallSummary:
    """The summary of a call that never reached dispatch (refused, or the store unreachable)."""
    return CallSummary(
        plan.requested_model or "",
        request_id=plan.request_id,
        attribution=plan.attribution,
        stream=stream,
    )


def plan_error(plan: CallPlan) -> ClientRequestError | None:
    """A request no provider may be asked: completion tokens past the model's output limit (or,
    for a model not in the catalog, a sane ceiling), or not a positive integer."""
    for param, value in (
        ("max_tokens", plan.max_tokens),
        ("expected_completion_tokens", plan.expected_completion),
    ):
        problem = None if value is None else completion_tokens_problem(value, plan.requested_model)
        if problem is not None:
            return ClientRequestError(f"Invalid value for '{param}': {problem}", param)
    return _attribution_problem(plan.attribution)
