"""The Anthropic Messages format: headers, error bodies, the event stream, and the official SDK."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import aiohttp
import anthropic
import pytest
from multidict import CIMultiDict

from router.simulator import FaultConfig
from tests.router.simulator.conftest import OTHER, SECRET, SimFactory

pytestmark = pytest.mark.integration
MODEL = "claude-haiku-4-5"
HELLO = [{"role": "user", "content": "hello"}]


async def post(
    http: aiohttp.ClientSession,
    url: str,
    body: dict[str, Any],
    secret: str | None = SECRET,
    version: str | None = "2023-06-01",
) -> tuple[int, CIMultiDict[str], Any]:
    headers = {}
    if secret is not None:
        headers["x-api-key"] = secret
    if version is not None:
        headers["anthropic-version"] = version
    async with http.post(url + "/v1/messages", json=body, headers=headers) as response:
        raw = await response.read()
        return (
            response.status,
            CIMultiDict(response.headers),
            json.loads(raw) if raw.startswith(b"{") else raw,
        )


def request(**extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "max_tokens": 100, "messages": HELLO, **extra}


async def test_success_and_rate_limit_headers(
    make_sim: SimFactory, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim(key={"rpm": 50, "tpm": 20000})
    status, headers, body = await post(http, sim.base_url, request(system="Be brief."))
    assert status == 200
    assert body["type"] == "message" and body["stop_reason"] == "end_turn"
    assert body["content"][0]["text"].startswith("Simulated anthropic reply to 2 message(s).")
    assert body["usage"]["output_tokens"] == 24
    for family in ("requests", "tokens"):
        assert f"anthropic-ratelimit-{family}-limit" in headers
        reset = headers[f"anthropic-ratelimit-{family}-reset"]
        assert datetime.fromisoformat(reset.replace("Z", "+00:00")).tzinfo is not None
    assert headers["anthropic-ratelimit-requests-remaining"] == "49"
    # one token limit: reported once, never as input and output limits of that size each
    assert "anthropic-ratelimit-input-tokens-limit" not in headers


async def test_input_and_output_token_limits_are_buckets_of_their_own(
    make_sim: SimFactory, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim(key={"rpm": 50, "itpm": 1000, "otpm": 300})
    status, headers, _ = await post(http, sim.base_url, request(max_tokens=200))
    assert status == 200
    assert headers["anthropic-ratelimit-input-tokens-limit"] == "1000"
    assert headers["anthropic-ratelimit-output-tokens-limit"] == "300"
    # the unused part of max_tokens came back at settle: 300 - 24 completion tokens
    assert int(headers["anthropic-ratelimit-output-tokens-remaining"]) <= 300 - 200
    status, headers, body = await post(http, sim.base_url, request(max_tokens=290))
    assert status == 429 and "output tokens per minute" in body["error"]["message"]
    assert headers["anthropic-ratelimit-output-tokens-limit"] == "300"
    assert int(headers["anthropic-ratelimit-input-tokens-remaining"]) < 1000
    assert headers["anthropic-ratelimit-tokens-limit"] == "300"


async def test_rate_limit_error_and_retry_after(
    make_sim: SimFactory, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim(key={"rpm": 1})
    assert (await post(http, sim.base_url, request()))[0] == 200
    status, headers, body = await post(http, sim.base_url, request())
    assert status == 429 and body["type"] == "error"
    assert body["error"]["type"] == "rate_limit_error" and body["request_id"].startswith("req_")
    assert 50 <= int(headers["retry-after"]) <= 60
    assert headers["anthropic-ratelimit-requests-remaining"] == "0"


async def test_errors(make_sim: SimFactory, http: aiohttp.ClientSession) -> None:
    sim = await make_sim(context_windows={MODEL: 60}, models=[MODEL])
    status, _, body = await post(http, sim.base_url, request(), secret=OTHER)
    assert status == 401 and body["error"] == {
        "type": "authentication_error",
        "message": "invalid x-api-key",
    }
    status, _, body = await post(http, sim.base_url, request(), secret=None)
    assert status == 401 and body["error"]["type"] == "authentication_error"
    status, _, body = await post(http, sim.base_url, request(), version=None)
    assert status == 400 and "anthropic-version" in body["error"]["message"]
    status, _, body = await post(http, sim.base_url, {"model": MODEL, "messages": HELLO})
    assert status == 400 and body["error"]["message"] == "max_tokens: Field required"
    status, _, body = await post(http, sim.base_url, request(max_tokens=55))
    assert status == 400 and "exceed context limit" in body["error"]["message"]
    long = [{"role": "user", "content": "word " * 100}]
    status, _, body = await post(http, sim.base_url, request(messages=long, max_tokens=1))
    assert status == 400 and body["error"]["message"].startswith("prompt is too long:")
    status, _, body = await post(http, sim.base_url, request(max_tokens=90000))
    assert status == 400 and "maximum allowed number of output tokens" in body["error"]["message"]
    status, _, body = await post(http, sim.base_url, request(model="claude-0"))
    assert status == 404 and body["error"]["type"] == "not_found_error"


async def test_overloaded_529_and_api_error(
    make_sim: SimFactory, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim(faults=FaultConfig(overload_rate=1.0))
    status, _, body = await post(http, sim.base_url, request())
    assert status == 529 and body["error"] == {"type": "overloaded_error", "message": "Overloaded"}
    sim.set_faults(FaultConfig(error_rate=1.0))
    status, _, body = await post(http, sim.base_url, request())
    assert status == 500 and body["error"]["type"] == "api_error"


async def test_refusal_for_filtered_content(
    make_sim: SimFactory, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim()
    status, _, body = await post(
        http, sim.base_url, request(messages=[{"role": "user", "content": "SIM_CONTENT_FILTER"}])
    )
    assert status == 200 and body["stop_reason"] == "refusal" and body["content"] == []


async def test_event_stream(make_sim: SimFactory, http: aiohttp.ClientSession) -> None:
    sim = await make_sim()
    status, _, raw = await post(http, sim.base_url, request(stream=True))
    assert status == 200
    events = []
    for block in raw.decode().strip().split("\n\n"):
        name, data = block.split("\n")
        assert json.loads(data[6:])["type"] == name[7:]
        events.append(name[7:])
    assert events[:3] == ["message_start", "content_block_start", "ping"]
    assert events[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(events[3:-3]) == {"content_block_delta"}


async def test_official_sdk(make_sim: SimFactory) -> None:
    sim = await make_sim()
    client = anthropic.AsyncAnthropic(
        api_key=SECRET, base_url=sim.base_url_for("anthropic"), max_retries=0
    )
    try:
        message = await client.messages.create(
            model=MODEL, max_tokens=100, system="Be brief.", messages=HELLO
        )
        assert message.stop_reason == "end_turn" and message.usage.output_tokens == 24
        async with client.messages.stream(model=MODEL, max_tokens=5, messages=HELLO) as stream:
            text = await stream.get_final_text()
            final = await stream.get_final_message()
        assert (
            text.startswith("Simulated")
            and final.stop_reason == "max_tokens"
            and final.usage.output_tokens == 5
        )
        sim.set_faults(FaultConfig(overload_rate=1.0))
        with pytest.raises(anthropic.APIStatusError) as caught:
            await client.messages.create(model=MODEL, max_tokens=10, messages=HELLO)
        assert caught.value.status_code == 529
    finally:
        await client.close()
