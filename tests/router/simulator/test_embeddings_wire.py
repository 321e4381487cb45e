"""The simulator's embeddings endpoints: OpenAI's ``/v1/embeddings`` (float and base64) and
Gemini's ``embedContent`` / ``batchEmbedContents``; deterministic unit vectors, usage counted with
the chat tokenizer, TPM charged the batch's tokens, request errors in each provider's shape."""

from __future__ import annotations

import base64
import json
import math
import struct
from typing import Any

import aiohttp
import pytest

from router.simulator import SimKey
from router.simulator.content import count_text_tokens
from router.simulator.wire_embeddings import vector
from tests.router.simulator.conftest import SECRET, SimFactory

pytestmark = pytest.mark.integration
SMALL = "text-embedding-3-small"
GEMINI = "gemini-embedding-001"


async def post(
    http: aiohttp.ClientSession, url: str, body: Any, headers: dict[str, str]
) -> tuple[int, Any]:
    async with http.post(url, json=body, headers=headers) as response:
        return response.status, json.loads(await response.read())


def bearer(secret: str = SECRET) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def test_vectors_are_deterministic_unit_vectors_of_the_models_dimension() -> None:
    first = vector(SMALL, "hello")
    assert first == vector(SMALL, "hello") and first != vector(SMALL, "hello!")
    assert len(first) == 1536 and len(vector("text-embedding-3-large", "x")) == 3072
    assert len(vector(GEMINI, "x")) == 3072 and len(vector(SMALL, "x", 12)) == 12
    assert math.isclose(sum(v * v for v in first), 1.0, rel_tol=1e-6)


async def test_openai_float_and_base64_with_usage(
    make_sim: SimFactory, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim()
    url = sim.base_url + "/v1/embeddings"
    texts = ["alpha beta", "gamma"]
    status, body = await post(http, url, {"model": SMALL, "input": texts}, bearer())
    assert status == 200 and body["object"] == "list" and body["model"] == SMALL
    assert [d["embedding"] for d in body["data"]] == [vector(SMALL, t) for t in texts]
    prompt = sum(count_text_tokens(SMALL, t) for t in texts)
    assert body["usage"] == {"prompt_tokens": prompt, "total_tokens": prompt}
    status, body = await post(
        http,
        url,
        {"model": SMALL, "input": "alpha", "encoding_format": "base64", "dimensions": 4},
        bearer(),
    )
    assert status == 200
    decoded = struct.unpack("<4f", base64.b64decode(body["data"][0]["embedding"]))
    assert decoded == pytest.approx(vector(SMALL, "alpha", 4), abs=1e-6)
    status, body = await post(http, url, {"model": SMALL, "input": [""]}, bearer())
    assert status == 400 and body["error"]["param"] == "input"


async def test_gemini_single_and_batch(make_sim: SimFactory, http: aiohttp.ClientSession) -> None:
    sim = await make_sim(key={"providers": ["gemini"]})
    base = f"{sim.base_url}/v1beta/models/{GEMINI}"
    headers = {"x-goog-api-key": SECRET}
    one = {"content": {"parts": [{"text": "hello"}]}, "outputDimensionality": 8}
    status, body = await post(http, base + ":embedContent", one, headers)
    assert status == 200 and body == {"embedding": {"values": vector(GEMINI, "hello", 8)}}
    batch = {
        "requests": [
            {"model": f"models/{GEMINI}", **one},
            {**one, "content": {"parts": [{"text": "b"}]}},
        ]
    }
    status, body = await post(http, base + ":batchEmbedContents", batch, headers)
    assert status == 200
    assert body == {"embeddings": [{"values": vector(GEMINI, t, 8)} for t in ("hello", "b")]}
    status, body = await post(http, base + ":batchEmbedContents", {"requests": []}, headers)
    assert status == 400 and body["error"]["status"] == "INVALID_ARGUMENT"


async def test_a_batch_is_charged_its_tokens_against_tpm(
    make_sim: SimFactory, http: aiohttp.ClientSession
) -> None:
    text = "token " * 50
    tokens = count_text_tokens(SMALL, text)
    sim = await make_sim(keys=[SimKey(key_id="k1", secret=SECRET, tpm=tokens * 2 + 1)])
    url = sim.base_url + "/v1/embeddings"
    status, _ = await post(http, url, {"model": SMALL, "input": [text, text]}, bearer())
    assert status == 200
    status, body = await post(http, url, {"model": SMALL, "input": text}, bearer())
    assert status == 429 and body["error"]["code"] == "rate_limit_exceeded"
    stats = sim.usage("k1", SMALL)
    assert stats["prompt_tokens"] == tokens * 2 and stats["completion_tokens"] == 0
