"""A success's rate-limit snapshot is parsed when first read, and equals the eager parse."""

from __future__ import annotations

import dataclasses
import pickle
from typing import Any

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st
from multidict import CIMultiDict, CIMultiDictProxy

from router.providers import get_adapter
from router.providers.lazy_limits import LazySnapshot
from router.providers.ratelimits import RateLimitSnapshot, parse_rate_limits
from tests.router.providers.conftest import SECRET
from tests.router.providers.test_adapters import MODELS, key_for, request
from tests.router.simulator.conftest import SimFactory

NOW = 1_700_000_000.0
FAMILIES = ("requests", "tokens", "input-tokens", "output-tokens")
NAMES = [
    *(
        f"x-ratelimit-{part}-{scope}"
        for part in ("limit", "remaining", "reset")
        for scope in FAMILIES[:2]
    ),
    *(
        f"anthropic-ratelimit-{f}-{part}"
        for f in FAMILIES
        for part in ("limit", "remaining", "reset")
    ),
    "retry-after",
    "retry-after-ms",
    "content-type",
]
VALUES = st.one_of(
    st.integers(0, 10**7).map(str),
    st.floats(0, 1e5, allow_nan=False).map(repr),
    st.sampled_from(["12ms", "6m0s", "1.5s", "1h2m3s", "20us", "", " 7s ", "bogus", "-3"]),
    st.sampled_from(["2023-11-14T22:13:40Z", "2023-11-14T22:13:40.25+01:00", "Wed, 21 Oct 2015"]),
    st.text(max_size=8),
)
HEADERS = st.dictionaries(
    st.sampled_from(NAMES).flatmap(lambda n: st.sampled_from([n, n.upper(), n.title()])),
    VALUES,
    max_size=12,
)
PROVIDERS = st.sampled_from(["openai", "azure", "anthropic", "gemini"])


def fields_of(snapshot: RateLimitSnapshot) -> dict[str, Any]:
    return {f.name: getattr(snapshot, f.name) for f in dataclasses.fields(RateLimitSnapshot)}


@given(provider=PROVIDERS, headers=HEADERS, multi=st.booleans())
def test_lazy_equals_eager(provider: str, headers: dict[str, str], multi: bool) -> None:
    given_headers: Any = CIMultiDictProxy(CIMultiDict(headers)) if multi else headers
    lazy = LazySnapshot(provider, given_headers, NOW)
    eager = parse_rate_limits(provider, given_headers, now=NOW)
    assert not lazy.is_parsed
    assert fields_of(lazy) == fields_of(eager)
    assert lazy.is_parsed
    assert lazy == eager and eager == lazy and hash(lazy) == hash(eager)
    assert lazy.empty == eager.empty and lazy.as_dict() == eager.as_dict()
    assert lazy.room_for(10, 20, now=NOW + 1) == eager.room_for(10, 20, now=NOW + 1)
    assert pickle.loads(pickle.dumps(lazy)) == eager  # noqa: S301 - bytes made here


def test_unparsed_until_a_parsed_field_is_read() -> None:
    lazy = LazySnapshot("openai", {"x-ratelimit-remaining-requests": "9"}, NOW)
    assert (lazy.provider, lazy.observed_at, lazy.headers) == (
        "openai",
        NOW,
        {"x-ratelimit-remaining-requests": "9"},
    )
    assert not lazy.is_parsed
    assert lazy.requests.remaining == 9 and lazy.is_parsed


def test_replace_gives_an_ordinary_snapshot() -> None:
    lazy = LazySnapshot("anthropic", {"retry-after": "3"}, NOW)
    changed = dataclasses.replace(lazy, retry_after=7.0)
    assert type(changed) is RateLimitSnapshot
    assert changed == dataclasses.replace(
        parse_rate_limits("anthropic", {}, now=NOW), retry_after=7.0
    )


@pytest.mark.integration
@pytest.mark.parametrize("provider", list(MODELS))
async def test_an_answer_parses_its_headers_when_read(
    make_sim: SimFactory, http: aiohttp.ClientSession, provider: str
) -> None:
    sim = await make_sim(key={"rpm": 100, "tpm": 100_000})
    result = await get_adapter(provider, http).chat(
        key_for(sim, provider), SECRET, request(provider, max_tokens=10)
    )
    snapshot = result.rate_limits
    assert isinstance(snapshot, LazySnapshot) and not snapshot.is_parsed
    assert snapshot == parse_rate_limits(provider, snapshot.headers, now=snapshot.observed_at)
    assert snapshot.is_parsed
