"""``POST /v1/embeddings``: the official openai SDK (a string, a list, ``dimensions``, base64 -
the SDK's default), LangChain's OpenAIEmbeddings (token arrays), a full pool answering 429 with
Retry-After and no provider 429, errors in OpenAI's shape naming the parameter, and one usage
record per call with its cost; the simulator upstream, real Redis."""

from __future__ import annotations

import asyncio
import base64
import struct

import openai
import pytest

from kernel.prices import default_table
from kernel.tokens import count_tokens
from kernel.usage_record import UsageRecord
from router.simulator.wire_embeddings import vector
from tests.router.gateway.conftest import GatewayFactory
from tests.router.gateway.harness import GatewayHarness, PoolKey

pytestmark = pytest.mark.integration
SMALL = "text-embedding-3-small"


def pool(rpm: int = 600) -> list[PoolKey]:
    return [PoolKey("emb-a", rpm=rpm, models=[SMALL]), PoolKey("emb-b", rpm=rpm, models=[SMALL])]


def close(got: list[float], want: list[float]) -> bool:
    return len(got) == len(want) and all(abs(a - b) < 1e-6 for a, b in zip(got, want, strict=True))


async def records(gw: GatewayHarness) -> list[UsageRecord]:
    await gw.gateway.router.flush()
    store = gw.gateway.router.key_manager.store
    entries = await store.client.xrange(store.keys.usage_stream)
    out = []
    for _, fields in entries:
        raw = {
            (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
            for k, v in fields.items()
        }
        out.append(UsageRecord.from_json(raw["r"]))
    return out


async def test_the_sdk_embeds_a_string_and_a_list_with_its_default_base64(
    make_gateway: GatewayFactory,
) -> None:
    gw = await make_gateway(pool=pool())
    client = gw.client(await gw.vkey(name="rag"))
    one = await client.embeddings.create(model=SMALL, input="hello world")
    many = await client.embeddings.create(model=SMALL, input=["alpha", "beta", "gamma"])
    assert one.object == "list" and one.model == SMALL
    assert len(one.data) == 1 and one.data[0].object == "embedding" and one.data[0].index == 0
    assert close(one.data[0].embedding, vector(SMALL, "hello world"))  # float32 round trip
    assert [d.index for d in many.data] == [0, 1, 2]
    for item, text in zip(many.data, ["alpha", "beta", "gamma"], strict=True):
        assert close(item.embedding, vector(SMALL, text))
    prompt = sum(count_tokens(t, SMALL) for t in ["alpha", "beta", "gamma"])
    assert many.usage.prompt_tokens == prompt and many.usage.total_tokens == prompt
    written = await records(gw)
    assert len(written) == 2
    cost = default_table().cost(SMALL, prompt, 0)
    assert cost is not None
    last = next(r for r in written if r.prompt_tokens == prompt)
    assert last.cost == pytest.approx(cost.usd) and last.source == "gateway" and last.success


async def test_dimensions_and_explicit_encodings(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway(pool=pool())
    client = gw.client(await gw.vkey())
    floats = await client.embeddings.create(
        model=SMALL, input=["short"], dimensions=64, encoding_format="float"
    )
    assert floats.data[0].embedding == pytest.approx(vector(SMALL, "short", 64))
    raw = await client.embeddings.create(
        model=SMALL, input="short", dimensions=64, encoding_format="base64"
    )
    encoded = raw.data[0].embedding
    assert isinstance(encoded, str)  # asked for explicitly: the SDK leaves it as it came
    decoded = list(struct.unpack("<64f", base64.b64decode(encoded)))
    assert close(decoded, vector(SMALL, "short", 64))


async def test_a_full_pool_answers_429_with_retry_after_and_no_provider_429(
    make_gateway: GatewayFactory,
) -> None:
    gw = await make_gateway(pool=pool(rpm=1))
    client = gw.client(await gw.vkey())
    for _ in range(2):  # one request per key in this minute
        await client.embeddings.create(model=SMALL, input="fits")
    with pytest.raises(openai.RateLimitError) as raised:
        await client.embeddings.create(model=SMALL, input="no room")
    assert float(raised.value.response.headers["Retry-After"]) > 0
    assert raised.value.body is not None
    assert gw.sim is not None
    totals = gw.sim.stats()["totals"]
    assert totals["rate_limited"] == 0 and totals["admitted_requests"] == 2
    assert len(await records(gw)) == 3


async def test_bad_input_is_a_400_in_openais_shape_naming_the_parameter(
    make_gateway: GatewayFactory,
) -> None:
    gw = await make_gateway(pool=pool())
    key = await gw.vkey()
    cases = [
        ({"model": SMALL, "input": []}, "input"),
        ({"model": SMALL, "input": ["ok", ""]}, "input[1]"),
        ({"model": SMALL, "input": "x", "dimensions": 0}, "dimensions"),
        ({"model": SMALL, "input": "x", "encoding_format": "int8"}, "encoding_format"),
        ({"input": "x"}, "model"),
    ]
    for body, param in cases:
        status, answer, _ = await gw.request("POST", "/v1/embeddings", token=key, body=body)
        assert status == 400, (body, answer)
        assert answer["error"]["param"] == param and answer["error"]["type"]
    status, answer, _ = await gw.request(
        "POST", "/v1/embeddings", token=key, body={"model": "nope-embed", "input": "x"}
    )
    assert status == 404 and answer["error"]["code"] == "model_not_found"
    status, _, _ = await gw.request("POST", "/v1/embeddings", body={"model": SMALL, "input": "x"})
    assert status == 401
    assert gw.sim is not None and gw.sim.requests() == []


async def test_langchain_openai_embeddings_sends_token_arrays_that_are_decoded(
    make_gateway: GatewayFactory,
) -> None:
    langchain_openai = pytest.importorskip("langchain_openai")
    gw = await make_gateway(pool=pool())
    key = await gw.vkey()
    texts = ["LangChain sends token ids", "and a second document"]

    def run() -> tuple[list[list[float]], list[float]]:
        embedder = langchain_openai.OpenAIEmbeddings(
            model=SMALL, base_url=gw.base_url, api_key=key, max_retries=0
        )
        return embedder.embed_documents(texts), embedder.embed_query("a query")

    documents, query = await asyncio.to_thread(run)
    assert len(documents) == 2
    for got, text in zip(documents, texts, strict=True):
        assert close(got, vector(SMALL, text))
    assert close(query, vector(SMALL, "a query"))


async def test_a_chat_model_is_a_400_and_a_keys_tpm_is_charged_the_inputs_tokens(
    make_gateway: GatewayFactory,
) -> None:
    gw = await make_gateway(pool=[PoolKey("mixed", models=["gpt-4o-mini", SMALL])])
    key = await gw.vkey(tpm=100)
    status, answer, _ = await gw.request(
        "POST", "/v1/embeddings", token=key, body={"model": "gpt-4o-mini", "input": "x"}
    )
    assert status == 400 and "not an embedding model" in answer["error"]["message"]
    status, answer, _ = await gw.request(
        "POST", "/v1/embeddings", token=key, body={"model": SMALL, "input": "word " * 150}
    )
    assert status == 400 and answer["error"]["param"] == "input"
    assert answer["error"]["code"] == "request_too_large"
    text = "word " * 60  # 60 tokens: the key's 100 per minute hold one such call
    status, answer, _ = await gw.request(
        "POST", "/v1/embeddings", token=key, body={"model": SMALL, "input": text}
    )
    assert status == 200, answer
    status, answer, headers = await gw.request(
        "POST", "/v1/embeddings", token=key, body={"model": SMALL, "input": text}
    )
    assert status == 429 and answer["error"]["code"] == "key_tpm_limit_exceeded"
    assert float(headers["Retry-After"]) > 0
    assert gw.sim is not None and len(gw.sim.requests(model=SMALL)) == 1


async def test_the_bare_root_serves_embeddings_too(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway(pool=pool())
    client = openai.AsyncOpenAI(base_url=gw.url, api_key=await gw.vkey(), max_retries=0)
    answer = await client.embeddings.create(model=SMALL, input="no /v1 in the base URL")
    assert close(answer.data[0].embedding, vector(SMALL, "no /v1 in the base URL"))


async def test_token_ids_outside_the_tokenizer_are_a_400_naming_the_input(
    make_gateway: GatewayFactory,
) -> None:
    gw = await make_gateway(pool=pool())
    key = await gw.vkey()
    for tokens in ([2**64], [10**9], [[1, 2], [3, 2**40]]):
        status, answer, _ = await gw.request(
            "POST", "/v1/embeddings", token=key, body={"model": SMALL, "input": tokens}
        )
        assert status == 400, (tokens, answer)
        assert answer["error"]["param"].startswith("input[")
