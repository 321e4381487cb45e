"""A success's rate-limit snapshot, parsed from the provider's headers only when first read.

Every answer carries the provider's rate-limit headers; parsing them (durations, timestamps, the
precision of each reset) is ~15 us of a gateway request's CPU. A success's snapshot is read by
the settle (the provider's room, the JSON kept for status, learned limits), which need not run
before the answer is returned: :class:`LazySnapshot` keeps the headers and the time they arrived,
and parses them the first time any field is read, exactly as :func:`parse_rate_limits` would have
at that time (``observed_at`` is when the headers arrived, not when they were parsed). Nothing is
lost: every field of the eager snapshot is there on demand, and the headers themselves stay
readable as :attr:`LazySnapshot.headers`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from router.providers.ratelimits import ProviderRoom, RateLimitSnapshot, parse_rate_limits

_FIELDS = tuple(f.name for f in dataclasses.fields(RateLimitSnapshot))


class LazySnapshot(RateLimitSnapshot):
    """A :class:`RateLimitSnapshot` of ``provider``'s ``headers`` received at ``at`` (unix time),
    parsed on first read; equal to (and interchangeable with) the eager one."""

    __slots__ = ("_at", "_parsed", "_provider", "headers")
    _at: float
    _parsed: RateLimitSnapshot | None
    _provider: str
    headers: Mapping[str, str]

    def __new__(cls, provider: str, *args: Any, **changes: Any) -> Any:
        if changes:  # dataclasses.replace(lazy, ...): an ordinary snapshot with the changes
            return RateLimitSnapshot(provider, *args, **changes)
        return super().__new__(cls)

    def __init__(self, provider: str, headers: Mapping[str, str], at: float) -> None:
        object.__setattr__(self, "_provider", provider)
        object.__setattr__(self, "headers", headers)
        object.__setattr__(self, "_at", at)
        object.__setattr__(self, "_parsed", None)

    def parsed(self) -> RateLimitSnapshot:
        """The eager snapshot (parsed once, on the first call)."""
        parsed: RateLimitSnapshot | None = self._parsed
        if parsed is None:
            parsed = parse_rate_limits(self._provider, self.headers, now=self._at)
            object.__setattr__(self, "_parsed", parsed)
        return parsed

    # the parsed snapshot's own methods, called on it directly (a field read through this class's
    # properties costs a call each: room_for reads a dozen)
    @property
    def empty(self) -> bool:
        return self.parsed().empty

    def room_for(
        self, prompt_tokens: int, completion_tokens: int, now: float | None = None
    ) -> ProviderRoom:
        return self.parsed().room_for(prompt_tokens, completion_tokens, now)

    def as_dict(self) -> dict[str, Any]:
        return self.parsed().as_dict()

    @property
    def is_parsed(self) -> bool:
        return self._parsed is not None

    def __eq__(self, other: object) -> bool:
        if isinstance(other, LazySnapshot):
            other = other.parsed()
        return self.parsed() == other

    def __hash__(self) -> int:
        return hash(self.parsed())

    def __repr__(self) -> str:
        return f"Lazy{self.parsed()!r}"

    def __reduce__(self) -> tuple[Any, ...]:
        parsed = self.parsed()
        return RateLimitSnapshot, tuple(getattr(parsed, name) for name in _FIELDS)


def _field(name: str) -> property:
    if name == "provider":
        return property(lambda self: self._provider, doc="The provider (known unparsed).")
    if name == "observed_at":
        return property(lambda self: self._at, doc="When the headers arrived (unix time).")
    return property(lambda self: getattr(self.parsed(), name), doc=f"The parsed ``{name}``.")


for _name in _FIELDS:
    setattr(LazySnapshot, _name, _field(_name))
