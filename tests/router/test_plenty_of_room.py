"""A success whose OpenAI-style headers surely leave room for two more calls like it has them
parsed by its settle, off the answer's path (router/provider_limits.plenty_of_room): the quick
reading never says "plenty" where the full reading (provider_room) would hold the next
reservation back, so which settles are waited for is unchanged (issue 18)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from multidict import CIMultiDict, CIMultiDictProxy

from kernel.settings import Settings
from router.attempt import _provider_short
from router.provider_limits import plenty_of_room, provider_room
from router.providers import Usage, lazy_limits
from router.providers.lazy_limits import LazySnapshot
from tests.router.pool import PoolKey, sim_router

NOW = 1_700_000_000.0
USAGE = Usage(prompt_tokens=30, completion_tokens=20)


def lazy(headers: dict[str, str] | list[tuple[str, str]], provider: str = "openai") -> Any:
    return LazySnapshot(provider, CIMultiDictProxy(CIMultiDict(headers)), NOW)


def openai(req: tuple[int, int], tok: tuple[int, int], reset: str = "1s") -> dict[str, str]:
    return {
        "X-RateLimit-Limit-Requests": str(req[0]),
        "X-RateLimit-Remaining-Requests": str(req[1]),
        "X-RateLimit-Reset-Requests": reset,
        "X-RateLimit-Limit-Tokens": str(tok[0]),
        "X-RateLimit-Remaining-Tokens": str(tok[1]),
        "X-RateLimit-Reset-Tokens": reset,
    }


@pytest.mark.parametrize(
    ("headers", "plenty"),
    [
        (openai((100, 50), (10_000, 5_000)), True),
        (openai((100, 2), (10_000, 100)), True),  # exactly 2 requests, 2x the call's 50 tokens
        (openai((100, 1), (10_000, 5_000)), False),  # one more request only
        (openai((100, 50), (10_000, 99)), False),  # less than twice the call's tokens
        (openai((100, 500), (10_000, 5_000)), False),  # more remaining than the limit: odd
        ({"x-ratelimit-remaining-requests": "50", "x-ratelimit-remaining-tokens": "5000"}, False),
        ({}, False),
        (openai((100, 50), (10_000, 5_000)) | {"x-ratelimit-remaining-tokens": "inf"}, False),
    ],
)
def test_plenty_only_when_the_headers_say_it(headers: dict[str, str], plenty: bool) -> None:
    snapshot = lazy(headers)
    assert plenty_of_room(snapshot, USAGE) is plenty
    assert not snapshot.is_parsed  # read from the raw headers
    if plenty:
        assert not _provider_short(provider_room(snapshot, USAGE, NOW), USAGE)


def test_a_repeated_header_is_read_as_the_parse_reads_it_its_last_value() -> None:
    headers = list(openai((100, 50), (10_000, 5_000)).items())
    assert plenty_of_room(lazy([*headers, ("x-ratelimit-remaining-requests", "1")]), USAGE) is False
    assert plenty_of_room(lazy([("x-ratelimit-remaining-requests", "1"), *headers]), USAGE)


def test_other_providers_and_parsed_snapshots_are_read_in_full() -> None:
    headers = openai((100, 50), (10_000, 5_000))
    assert plenty_of_room(lazy(headers, provider="anthropic"), USAGE) is False
    parsed = lazy(headers)
    parsed.parsed()
    assert plenty_of_room(parsed, USAGE) is False
    assert plenty_of_room(None, USAGE) is False
    plain = LazySnapshot("openai", headers, NOW)  # not case-insensitive: the parse lowers names
    assert plenty_of_room(plain, USAGE) is False


COUNT = st.integers(min_value=0, max_value=2_000)
RESET = st.sampled_from(["0s", "1ms", "250ms", "1s", "6m0s", "59.9s", ""])


@given(
    limits=st.tuples(COUNT, COUNT, COUNT, COUNT),
    resets=st.tuples(RESET, RESET),
    prompt=st.integers(0, 500),
    completion=st.integers(0, 500),
    later=st.floats(0, 120),
)
def test_plenty_never_where_the_full_reading_holds_back(
    limits: tuple[int, int, int, int],
    resets: tuple[str, str],
    prompt: int,
    completion: int,
    later: float,
) -> None:
    headers = {
        "x-ratelimit-limit-requests": str(limits[0]),
        "x-ratelimit-remaining-requests": str(limits[1]),
        "x-ratelimit-reset-requests": resets[0],
        "x-ratelimit-limit-tokens": str(limits[2]),
        "x-ratelimit-remaining-tokens": str(limits[3]),
        "x-ratelimit-reset-tokens": resets[1],
    }
    usage = Usage(prompt_tokens=prompt, completion_tokens=completion)
    snapshot = lazy(headers)
    if plenty_of_room(snapshot, usage):
        assert not _provider_short(provider_room(snapshot, usage, NOW + later), usage)


async def test_roomy_headers_are_parsed_by_the_settle_not_before_the_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parses: list[str] = []
    parse = lazy_limits.parse_rate_limits

    def counted(provider: str, *args: Any, **kwargs: Any) -> Any:
        parses.append(provider)
        return parse(provider, *args, **kwargs)

    monkeypatch.setattr(lazy_limits, "parse_rate_limits", counted)
    settings = Settings.from_env({}, SETTLE_MODE="deferred")
    async with sim_router(settings, tmp_path, [PoolKey("k1", rpm=10_000, tpm=10_000_000)]) as (
        router,
        _sim,
    ):
        assert (await router.complete([{"role": "user", "content": "one"}], "gpt-4o-mini"))[
            "success"
        ]
        assert len(parses) == 1  # a key's first answer: read in full, its settle waited for
        await router.flush()
        assert (await router.complete([{"role": "user", "content": "two"}], "gpt-4o-mini"))[
            "success"
        ]
        assert len(parses) == 1  # plenty of room: not parsed before the answer
        await router.flush()
        assert len(parses) == 2  # the settle read them (the provider's room, status)
