"""What a provider's rate-limit headers say, in the shapes the key pool stores: the
``record_success`` room arguments, the limits it reported (``figures``: learned by the pool,
keys/learned.py) and the compact JSON shown by status."""

from __future__ import annotations

import json
from typing import Any

from multidict import CIMultiDictProxy

from router.providers import RateLimitSnapshot, Usage
from router.providers.lazy_limits import LazySnapshot
from router.providers.ratelimits import as_int


def provider_room(
    snapshot: RateLimitSnapshot | None, usage: Usage, now: float | None = None
) -> dict[str, Any]:
    """``record_success`` arguments from what the provider's headers said of its own buckets
    (their room at ``now``, default: now)."""
    if snapshot is None:
        return {}
    room = snapshot.room_for(usage.prompt_tokens, usage.completion_tokens, now)
    return {
        "hold": room.hold,
        "provider_room": (room.requests, room.tokens),
        "provider_tolerance": (room.requests_tolerance, room.tokens_tolerance),
    }


def figures(snapshot: RateLimitSnapshot | None) -> str:
    """The limits an answer reported, as settle takes them: ``rpm,tpm,rpd,itpm,otpm`` per minute
    (per day for rpd), each "" when not said; "" when it said none.

    Anthropic's ``anthropic-ratelimit-tokens-limit`` is the most restrictive of its input and
    output limits: it is a total only when those two are not reported."""
    if snapshot is None:
        return ""
    rpm, tpm = snapshot.requests.limit, snapshot.tokens.limit
    itpm = snapshot.input_tokens.limit if snapshot.input_tokens is not None else None
    otpm = snapshot.output_tokens.limit if snapshot.output_tokens is not None else None
    if itpm or otpm:
        tpm = None
    rpd = snapshot.day_requests.limit if snapshot.day_requests is not None else None
    said = (rpm, tpm, rpd, itpm, otpm)
    if not any(said):
        return ""
    return ",".join(str(v) if v else "" for v in said)


def limits_json(snapshot: Any) -> str:
    """The provider's rate-limit snapshot as compact JSON for status ("" when it said nothing)."""
    if snapshot is None or getattr(snapshot, "empty", True):
        return ""
    return json.dumps(snapshot.as_dict(), separators=(",", ":"))


#: OpenAI's headers (and Azure's) a plentiful room is read from, unparsed: (limit, remaining).
_OPENAI_COUNTS = (
    ("x-ratelimit-limit-requests", "x-ratelimit-remaining-requests"),
    ("x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens"),
)


def plenty_of_room(snapshot: RateLimitSnapshot | None, usage: Usage) -> bool:
    """True only when the provider's headers surely leave room for two more calls like this
    one, read from the raw headers of a success not parsed yet (OpenAI's and Azure's: what
    remains of requests and tokens, within their limits): then the full reading
    (:func:`provider_room`) has no hold, room for at least 2 requests and 2x the call's tokens,
    since a bucket's level is never below what remains of it. False: read them in full.
    The parse (~10-20 us) then waits for the settle, off the answer's path."""
    if not isinstance(snapshot, LazySnapshot) or snapshot.is_parsed:
        return False
    headers = snapshot.headers
    if snapshot.provider not in ("openai", "azure") or not isinstance(headers, CIMultiDictProxy):
        return False  # a plain mapping may spell the names in any case: the parse lowers them
    total = usage.prompt_tokens + usage.completion_tokens
    for (limit_name, remaining_name), need in zip(_OPENAI_COUNTS, (2, 2 * total), strict=True):
        limit, remaining = _last(headers, limit_name), _last(headers, remaining_name)
        if limit is None or remaining is None or not need <= remaining <= limit:
            return False
    return True


def _last(headers: CIMultiDictProxy[str], name: str) -> int | None:
    """The header's whole number as the parse reads it (its last value when repeated)."""
    values = headers.getall(name, ())
    return as_int(values[-1]) if values else None
