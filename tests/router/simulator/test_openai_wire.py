"""The OpenAI and Azure OpenAI formats: raw HTTP shapes and headers, and the official SDK."""

from __future__ import annotations

import json
import re
from typing import Any

import aiohttp
import openai
import pytest
from multidict import CIMultiDict

from router.providers.ratelimits import parse_duration
from router.simulator import SimKey
from tests.router.simulator.conftest import OTHER, SECRET, SimFactory

pytestmark = pytest.mark.integration
HELLO = [{"role": "user", "content": "hello"}]


async def post(
    http: aiohttp.ClientSession,
    url: str,
    body: dict[str, Any],
    secret: str | None = SECRET,
    **headers: str,
) -> tuple[int, CIMultiDict[str], Any]:
    if secret is not None:
        headers["Authorization"] = f"Bearer {secret}"
    async with http.post(url, json=body, headers=headers) as response:
        raw = await response.read()
        return (
            response.status,
            CIMultiDict(response.headers),
            json.loads(raw) if raw.startswith(b"{") else raw,
        )


async def test_success_carries_usage_and_rate_limit_headers(
    make_sim: SimFactory, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim(key={"rpm": 60, "tpm": 10000})
    status, headers, body = await post(
        http,
        sim.base_url + "/v1/chat/completions",
        {"model": "gpt-4o-mini", "messages": HELLO, "max_tokens": 100},
    )
    assert status == 200
    assert body["object"] == "chat.completion" and body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"]["completion_tokens"] == 24
    assert headers["x-ratelimit-limit-requests"] == "60"
    assert headers["x-ratelimit-remaining-requests"] == "59"
    assert headers["x-ratelimit-limit-tokens"] == "10000"
    # admission charged prompt + max_tokens, the answer reports what is left after that charge
    assert (
        int(headers["x-ratelimit-remaining-tokens"]) == 10000 - body["usage"]["prompt_tokens"] - 100
    )
    assert 0 < (parse_duration(headers["x-ratelimit-reset-requests"]) or 0) <= 1
    assert headers["x-ratelimit-reset-tokens"].endswith("s")


async def test_rate_limited_answer_has_openai_shape(
    make_sim: SimFactory, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim(key={"rpm": 1})
    url = sim.base_url + "/v1/chat/completions"
    assert (await post(http, url, {"model": "gpt-4o", "messages": HELLO}))[0] == 200
    status, headers, body = await post(http, url, {"model": "gpt-4o", "messages": HELLO})
    assert status == 429
    error = body["error"]
    assert error["code"] == "rate_limit_exceeded" and error["type"] == "requests"
    assert (
        "on requests per min (RPM): Limit 1, Used 1, Requested 1. Please try again in "
        in error["message"]
    )
    wait = re.search(r"try again in (\S+)\. Visit", error["message"])
    assert wait is not None and 50 < (parse_duration(wait.group(1)) or 0) <= 60
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert 50 < (parse_duration(headers["x-ratelimit-reset-requests"]) or 0) <= 60


async def test_token_and_daily_limits_say_which(
    make_sim: SimFactory, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim(
        keys=[SimKey(key_id="t", secret=SECRET, tpm=100), SimKey(key_id="d", secret=OTHER, rpd=1)]
    )
    url = sim.base_url + "/v1/chat/completions"
    status, _, body = await post(
        http, url, {"model": "gpt-4o", "messages": HELLO, "max_tokens": 80}
    )
    assert status == 200
    status, _, body = await post(
        http, url, {"model": "gpt-4o", "messages": HELLO, "max_tokens": 80}
    )
    assert (
        status == 429 and body["error"]["type"] == "tokens" and "(TPM)" in body["error"]["message"]
    )
    status, _, body = await post(
        http, url, {"model": "gpt-4o", "messages": HELLO, "max_tokens": 500}
    )
    assert status == 429 and body["error"]["message"].startswith("Request too large for gpt-4o")
    assert (await post(http, url, {"model": "gpt-4o", "messages": HELLO}, OTHER))[0] == 200
    status, _, body = await post(http, url, {"model": "gpt-4o", "messages": HELLO}, OTHER)
    assert status == 429 and "requests per day (RPD)" in body["error"]["message"]


async def test_auth_failures(make_sim: SimFactory, http: aiohttp.ClientSession) -> None:
    sim = await make_sim()
    url = sim.base_url + "/v1/chat/completions"
    status, _, body = await post(http, url, {"model": "gpt-4o", "messages": HELLO}, secret=None)
    assert (
        status == 401
        and body["error"]["code"] is None
        and "didn't provide an API key" in body["error"]["message"]
    )
    status, _, body = await post(http, url, {"model": "gpt-4o", "messages": HELLO}, secret=OTHER)
    assert status == 401 and body["error"]["code"] == "invalid_api_key"
    assert OTHER not in body["error"]["message"] and OTHER[-4:] in body["error"]["message"]
    sim.revoke_key("k1")
    assert (await post(http, url, {"model": "gpt-4o", "messages": HELLO}))[0] == 401
    sim.restore_key("k1")
    assert (await post(http, url, {"model": "gpt-4o", "messages": HELLO}))[0] == 200
    assert sim.stats()["unknown_key_requests"] == 1 and sim.stats()["missing_key_requests"] == 1


async def test_bad_requests(make_sim: SimFactory, http: aiohttp.ClientSession) -> None:
    sim = await make_sim(context_windows={"gpt-4o": 50}, models=["gpt-4o", "gpt-4o-mini"])
    url = sim.base_url + "/v1/chat/completions"
    status, _, body = await post(
        http, url, {"model": "gpt-4o", "messages": HELLO, "max_tokens": 45}
    )
    assert status == 400 and body["error"]["code"] == "context_length_exceeded"
    assert "maximum context length is 50 tokens" in body["error"]["message"]
    status, _, body = await post(
        http, url, {"model": "gpt-4o-mini", "messages": HELLO, "max_tokens": 20000}
    )
    assert status == 400 and body["error"]["param"] == "max_tokens"
    status, _, body = await post(http, url, {"model": "gpt-9", "messages": HELLO})
    assert status == 404 and body["error"]["code"] == "model_not_found"
    status, _, body = await post(http, url, {"model": "gpt-4o", "messages": []})
    assert status == 400 and body["error"]["param"] == "messages"
    async with http.post(
        url, data=b"{not json", headers={"Authorization": f"Bearer {SECRET}"}
    ) as response:
        assert response.status == 400
    status, _, body = await post(
        http,
        url,
        {"model": "gpt-4o", "messages": [{"role": "user", "content": "x SIM_CONTENT_FILTER"}]},
    )
    assert status == 400 and body["error"]["code"] == "invalid_prompt"


async def test_stream_chunks_done_and_usage(
    make_sim: SimFactory, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim()
    body = {
        "model": "gpt-4o-mini",
        "messages": HELLO,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    status, headers, raw = await post(http, sim.base_url + "/v1/chat/completions", body)
    assert status == 200 and headers["Content-Type"].startswith("text/event-stream")
    events = [line[6:] for line in raw.decode().split("\n\n") if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 24
    assert all(c["usage"] is None for c in chunks[:-1])


async def test_official_sdk_non_streaming_and_streaming(make_sim: SimFactory) -> None:
    sim = await make_sim(key={"rpm": 100})
    client = openai.AsyncOpenAI(api_key=SECRET, base_url=sim.base_url_for("openai"), max_retries=0)
    try:
        answer = await client.chat.completions.create(
            model="gpt-4o-mini", messages=HELLO, max_tokens=10
        )
        assert answer.choices[0].finish_reason == "length" and answer.usage is not None
        assert answer.usage.completion_tokens == 10
        stream = await client.chat.completions.create(
            model="gpt-4o-mini", messages=HELLO, stream=True, stream_options={"include_usage": True}
        )
        text, usage = [], None
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                text.append(chunk.choices[0].delta.content)
            usage = chunk.usage or usage
        assert "".join(text).startswith("Simulated openai reply to 1 message(s).")
        assert usage is not None and usage.completion_tokens == 24
        models = await client.models.list()
        assert any(m.id == "gpt-4o" for m in models.data)
        with pytest.raises(openai.RateLimitError):
            sim.add_key(SimKey(key_id="k1", secret=SECRET, rpm=1))
            sim.reset_stats(limits=True)
            for _ in range(2):
                await client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
        bad = openai.AsyncOpenAI(api_key=OTHER, base_url=sim.base_url_for("openai"), max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            await bad.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
        await bad.close()
    finally:
        await client.close()


async def test_azure_route_and_sdk(make_sim: SimFactory, http: aiohttp.ClientSession) -> None:
    sim = await make_sim(key={"rpm": 1})
    url = sim.base_url_for("azure", deployment="gpt4o-prod") + "/chat/completions"
    headers = {"api-key": SECRET}
    async with http.post(url, json={"messages": HELLO}, headers=headers) as response:
        assert response.status == 404  # no api-version
    client = openai.AsyncAzureOpenAI(
        api_key=SECRET, azure_endpoint=sim.base_url, api_version="2024-10-21", max_retries=0
    )
    try:
        answer = await client.chat.completions.create(model="gpt4o-prod", messages=HELLO)
        assert answer.model == "gpt4o-prod" and answer.usage is not None
    finally:
        await client.close()
    async with http.post(
        url + "?api-version=2024-10-21", json={"messages": HELLO}, headers=headers
    ) as response:
        body = await response.json()
        assert response.status == 429 and body["error"]["code"] == "429"
        assert int(response.headers["retry-after"]) >= 1 and "retry-after-ms" in response.headers
        assert response.headers["x-ratelimit-remaining-requests"] == "0"
    async with http.post(
        url + "?api-version=1", json={"messages": HELLO}, headers={"api-key": OTHER}
    ) as response:
        assert response.status == 401 and (await response.json())["error"]["code"] == "401"
