"""What a provider's rate-limit headers say, in the shapes the key pool stores: the
``record_success`` room arguments and the compact JSON shown by status."""

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


def limits_json(snapshot: Any) -> str:
    """The provider's rate-limit snapshot as compact JSON for status ("" when it said nothing)."""
    if snapshot is None or getattr(snapshot, "empty", True):
        return ""
    return json.dumps(snapshot.as_dict(), separators=(",", ":"))
