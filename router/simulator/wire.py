"""What every provider format has in common: answers, stream plans, request errors, helpers."""

from __future__ import annotations

import json
import math
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from router.simulator.outcomes import Admitted, Call, Outcome


class WireError(Exception):
    """The request body is not valid for this provider (rendered as the provider's 400)."""

    def __init__(self, message: str, param: str | None = None) -> None:
        self.message = message
        self.param = param
        super().__init__(message)


@dataclass
class Answer:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class StreamPlan:
    """A stream: frames before the content, one frame per content piece, and the closing frames."""

    headers: dict[str, str]
    head: list[bytes]
    content: list[bytes]
    tail: list[bytes]
    content_type: str = "text/event-stream"


class Wire:
    """One provider's wire format (subclasses: OpenAI, Azure, Anthropic, Gemini)."""

    name = ""

    def secret(self, request: web.Request) -> str | None:
        raise NotImplementedError

    def parse(self, body: Any, request: web.Request) -> Call:
        raise NotImplementedError

    def answer(self, call: Call, outcome: Outcome) -> Answer:
        raise NotImplementedError

    def stream(self, call: Call, admitted: Admitted) -> StreamPlan:
        raise NotImplementedError

    def invalid_request(self, error: WireError) -> Answer:
        raise NotImplementedError

    def malformed(self) -> bytes:
        return b'{"id": "broken", "choices": [{"index": 0, "message": {"role": "assist'


def request_id(prefix: str = "req_") -> str:
    return prefix + uuid.uuid4().hex[:24]


def sse(data: Any, event: str | None = None) -> bytes:
    """One server-sent event; ``data`` is JSON-encoded unless it is already a string."""
    text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {text}\n\n".encode()


def go_duration(seconds: float) -> str:
    """A duration as OpenAI's reset headers write it: ``12ms``, ``1.5s``, ``6m0s``, ``1h2m3s``."""
    if seconds < 1.0:
        return f"{max(0, math.ceil(seconds * 1000))}ms"
    if seconds < 60.0:
        return f"{_trim(seconds)}s"
    hours, rest = divmod(seconds, 3600.0)
    minutes, secs = divmod(rest, 60.0)
    head = f"{int(hours)}h" if hours else ""
    return f"{head}{int(minutes)}m{_trim(secs)}s"


def _trim(value: float) -> str:
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return text or "0"


def rfc3339(unix: float) -> str:
    return datetime.fromtimestamp(math.ceil(unix), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def masked(secret: str) -> str:
    """How providers echo a wrong key: a few leading characters, stars, the last four."""
    return secret[:3] + "*" * 8 + secret[-4:] if len(secret) > 8 else "****"


def as_int(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise WireError(f"{name}: must be an integer", name)
    if value < 1:
        raise WireError(f"{name}: must be at least 1", name)
    return value


def completion_override(request: web.Request) -> int | None:
    """``x-sim-completion-tokens``: how many completion tokens this one reply should have."""
    value = request.headers.get("x-sim-completion-tokens")
    if value is None:
        return None
    try:
        return max(0, int(value))
    except ValueError:
        return None
