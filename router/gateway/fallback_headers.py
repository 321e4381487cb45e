"""The headers that say who served an answer (docs/gateway.md): ``x-router-provider``,
``x-router-attempts``, ``x-router-degraded`` and, when another model served than the one asked
for, ``x-router-fallback: <asked> -> <served>`` and ``x-router-fallback-reason`` (the answer's
``fallback_reason``); on a whole answer and on a stream, whose headers go out with its first
event: a delta that names who serves it (router/streaming.py), or the whole answer when no text
came before it."""

from __future__ import annotations

from router.answers import FallbackReason, StreamEvent


def served_headers(provider: str | None, attempts: int, degraded: bool) -> dict[str, str]:
    """The provider, the keys tried (this one included), and served on local limits or not."""
    headers = {"x-router-provider": provider or "", "x-router-attempts": str(attempts)}
    if degraded:  # served on local limits: Redis was unreachable
        headers["x-router-degraded"] = "true"
    return headers


def fallback_headers(asked: str, served: str, reason: FallbackReason | None) -> dict[str, str]:
    """None when the model asked for (or its alias's target) served: no headers."""
    if reason is None:
        return {}
    return {"x-router-fallback": f"{asked} -> {served}", "x-router-fallback-reason": reason}


def stream_headers(asked: str, first: StreamEvent) -> dict[str, str]:
    """A stream's, from its first event (``asked``: the model the request named)."""
    if first["type"] == "done":
        return {
            **served_headers(first["provider"], first["attempts"], first["degraded"]),
            **fallback_headers(first["requested_model"], first["model"], first["fallback_reason"]),
        }
    return {
        **served_headers(
            first.get("provider"), first.get("attempts", 1), first.get("degraded", False)
        ),
        **fallback_headers(asked, first.get("model", ""), first.get("fallback_reason")),
    }
