"""What a provider's rate-limit headers say, in the shapes the key pool stores: the
``record_success`` room arguments, the limits it reported (``figures``: learned by the pool,
keys/learned.py) and the compact JSON shown by status."""

from __future__ import annotations

import json
from typing import Any

from router.providers import RateLimitSnapshot, Usage


def provider_room(snapshot: RateLimitSnapshot | None, usage: Usage) -> dict[str, Any]:
    """``record_success`` arguments from what the provider's headers said of its own buckets."""
    if snapshot is None:
        return {}
    room = snapshot.room_for(usage.prompt_tokens, usage.completion_tokens)
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
