"""The headers that make a model substitution visible (docs/gateway.md): ``x-router-fallback:
<asked> -> <served>`` and ``x-router-fallback-reason`` (the answer's ``fallback_reason``), on a
whole answer and on a stream, whose headers go out with its first event: a delta that names the
model serving it (router/streaming.py), or the whole answer when no text came before it."""

from __future__ import annotations

from router.answers import FallbackReason, StreamEvent


def fallback_headers(asked: str, served: str, reason: FallbackReason | None) -> dict[str, str]:
    """None when the model asked for (or its alias's target) served: no headers."""
    if reason is None:
        return {}
    return {"x-router-fallback": f"{asked} -> {served}", "x-router-fallback-reason": reason}


def stream_fallback_headers(asked: str, first: StreamEvent) -> dict[str, str]:
    """A stream's, from its first event (``asked``: the model the request named)."""
    if first["type"] == "done":
        return fallback_headers(first["requested_model"], first["model"], first["fallback_reason"])
    return fallback_headers(asked, first.get("model", ""), first.get("fallback_reason"))
