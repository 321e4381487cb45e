"""The Gemini format: Google RPC errors (API_KEY_INVALID, RESOURCE_EXHAUSTED with QuotaFailure and
RetryInfo), SSE streams with usageMetadata, blocked prompts, and the official google-genai SDK."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest

from router.simulator import FaultConfig, SimKey
from tests.router.simulator.conftest import OTHER, SECRET, SimFactory

pytestmark = pytest.mark.integration
MODEL = "gemini-2.0-flash"
HELLO = {"contents": [{"role": "user", "parts": [{"text": "hello"}]}]}


async def post(
    http: aiohttp.ClientSession,
    base: str,
    body: dict[str, Any],
    secret: str | None = SECRET,
    action: str = "generateContent",
    query: str = "",
    model: str = MODEL,
) -> tuple[int, Any]:
    headers = {"x-goog-api-key": secret} if secret else {}
    async with http.post(
        f"{base}/v1beta/models/{model}:{action}{query}", json=body, headers=headers
    ) as response:
        raw = await response.read()
        return response.status, json.loads(raw) if raw.startswith(b"{") else raw


def details(body: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(d for d in body["error"]["details"] if d["@type"].endswith(kind))


async def test_success_with_system_instruction_and_usage(
    make_sim: SimFactory, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim()
    body = {
        **HELLO,
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "generationConfig": {"maxOutputTokens": 8},
    }
    status, answer = await post(http, sim.base_url, body)
    assert status == 200
    candidate = answer["candidates"][0]
    assert candidate["finishReason"] == "MAX_TOKENS" and candidate["content"]["role"] == "model"
    assert answer["usageMetadata"]["candidatesTokenCount"] == 8
    assert (
        answer["usageMetadata"]["totalTokenCount"]
        == answer["usageMetadata"]["promptTokenCount"] + 8
    )
    status, _ = await post(http, sim.base_url, HELLO, secret=None, query=f"?key={SECRET}")
    assert status == 200


async def test_key_errors_as_google_sends_them(
    make_sim: SimFactory, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim()
    status, body = await post(http, sim.base_url, HELLO, secret=OTHER)
    assert status == 400 and body["error"]["status"] == "INVALID_ARGUMENT"
    assert details(body, "google.rpc.ErrorInfo")["reason"] == "API_KEY_INVALID"
    status, body = await post(http, sim.base_url, HELLO, secret=None)
    assert status == 403 and body["error"]["status"] == "PERMISSION_DENIED"
    sim.revoke_key("k1")
    status, body = await post(http, sim.base_url, HELLO)
    assert status == 403 and details(body, "google.rpc.ErrorInfo")["reason"] == "CONSUMER_SUSPENDED"


async def test_resource_exhausted_per_minute_and_per_day(
    make_sim: SimFactory, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim(
        keys=[SimKey(key_id="m", secret=SECRET, rpm=1), SimKey(key_id="d", secret=OTHER, rpd=1)]
    )
    for secret, quota_id in (
        (SECRET, "GenerateRequestsPerMinutePerProjectPerModel"),
        (OTHER, "GenerateRequestsPerDayPerProjectPerModel"),
    ):
        assert (await post(http, sim.base_url, HELLO, secret=secret))[0] == 200
        status, body = await post(http, sim.base_url, HELLO, secret=secret)
        assert status == 429 and body["error"]["status"] == "RESOURCE_EXHAUSTED"
        violation = details(body, "google.rpc.QuotaFailure")["violations"][0]
        assert violation["quotaId"] == quota_id and violation["quotaValue"] == "1"
        delay = details(body, "google.rpc.RetryInfo")["retryDelay"]
        assert delay.endswith("s") and int(delay[:-1]) >= 1


async def test_context_length_and_unknown_model(
    make_sim: SimFactory, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim(context_windows={MODEL: 5})
    status, body = await post(http, sim.base_url, HELLO)
    assert (
        status == 400
        and "exceeds the maximum number of tokens allowed (5)" in body["error"]["message"]
    )
    status, body = await post(http, sim.base_url, {"contents": []})
    assert status == 400 and body["error"]["status"] == "INVALID_ARGUMENT"


async def test_blocked_prompt(make_sim: SimFactory, http: aiohttp.ClientSession) -> None:
    sim = await make_sim()
    status, body = await post(
        http, sim.base_url, {"contents": [{"parts": [{"text": "SIM_CONTENT_FILTER"}]}]}
    )
    assert (
        status == 200
        and body["promptFeedback"]["blockReason"] == "SAFETY"
        and "candidates" not in body
    )


async def test_sse_stream_chunks_carry_usage(
    make_sim: SimFactory, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim()
    status, raw = await post(
        http, sim.base_url, HELLO, action="streamGenerateContent", query="?alt=sse"
    )
    assert status == 200
    chunks = [json.loads(block[6:]) for block in raw.decode().strip().split("\n\n")]
    assert len(chunks) == 6
    assert all("usageMetadata" in c for c in chunks)
    assert "finishReason" not in chunks[0]["candidates"][0]
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"
    assert chunks[-1]["usageMetadata"]["candidatesTokenCount"] == 24
    text = "".join(c["candidates"][0]["content"]["parts"][0]["text"] for c in chunks)
    assert text.startswith("Simulated gemini reply to 1 message(s).")


async def test_server_errors(make_sim: SimFactory, http: aiohttp.ClientSession) -> None:
    sim = await make_sim(faults=FaultConfig(overload_rate=1.0))
    status, body = await post(http, sim.base_url, HELLO)
    assert status == 503 and body["error"]["status"] == "UNAVAILABLE"
    sim.set_faults(FaultConfig(error_rate=1.0))
    status, body = await post(http, sim.base_url, HELLO)
    assert status == 500 and body["error"]["status"] == "INTERNAL"


@pytest.mark.filterwarnings("ignore:Inheritance class AiohttpClientSession:DeprecationWarning")
async def test_official_sdk(make_sim: SimFactory) -> None:
    genai = pytest.importorskip("google.genai")
    from google.genai import errors, types

    sim = await make_sim(key={"rpm": 2})
    client = genai.Client(api_key=SECRET, http_options=types.HttpOptions(base_url=sim.base_url))
    config = types.GenerateContentConfig(system_instruction="Be brief.", max_output_tokens=64)
    answer = await client.aio.models.generate_content(model=MODEL, contents="hello", config=config)
    assert answer.text is not None and answer.text.startswith(
        "Simulated gemini reply to 2 message(s)."
    )
    assert answer.usage_metadata is not None and answer.usage_metadata.candidates_token_count == 24
    parts = []
    async for chunk in await client.aio.models.generate_content_stream(
        model=MODEL, contents="hello"
    ):
        parts.append(chunk.text or "")
    assert "".join(parts).startswith("Simulated gemini reply")
    with pytest.raises(errors.ClientError) as caught:
        await client.aio.models.generate_content(model=MODEL, contents="hello")
    assert caught.value.code == 429
