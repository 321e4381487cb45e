"""The embeddings call of the OpenAI and Gemini adapters against the simulator: vectors, usage
(reported by OpenAI, counted for Gemini), and the chat call's error classes for 429, 401, 5xx,
an input over the model's limit and a malformed body; no error text holds the secret."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from kernel.errors import (
    ContextLengthExceededError,
    MalformedResponseError,
    ProviderAuthError,
    ProviderError,
    RateLimitedError,
    ServerError,
)
from kernel.masking import mask_secret
from kernel.providers import provider_of_model
from kernel.tokens import count_tokens
from keys.models import APIKey
from router.providers import catalog, get_adapter
from router.providers.catalog import ModelInfo, is_embedding_model, model_info, models_fitting
from router.providers.embeddings import EmbedRequest, embed, endpoint, payload
from router.routing import RoutingTable
from router.simulator import ProviderSimulator
from router.simulator.wire_embeddings import vector
from tests.router.providers.conftest import OTHER, SECRET
from tests.router.simulator.conftest import SimFactory

pytestmark = pytest.mark.integration
MODELS = {
    "openai": "text-embedding-3-small",
    "azure": "text-embedding-3-small",  # the deployment's name
    "gemini": "gemini-embedding-001",
}
PROVIDERS = list(MODELS)


def key_for(sim: ProviderSimulator, provider: str) -> APIKey:
    return APIKey(
        key_id="k1",
        model_name=MODELS[provider],
        provider=provider,  # type: ignore[arg-type]
        base_url=sim.base_url_for(provider, deployment=MODELS[provider]),
    )


async def call(
    sim: ProviderSimulator,
    http: aiohttp.ClientSession,
    provider: str,
    texts: list[str],
    secret: str = SECRET,
    **kwargs: Any,
) -> Any:
    request = EmbedRequest(MODELS[provider], texts, **kwargs)
    return await embed(get_adapter(provider, http), key_for(sim, provider), secret, request)


def no_secret(error: ProviderError, secret: str = SECRET) -> None:
    for text in (str(error), repr(error), str(error.to_dict())):
        assert secret not in text
    assert error.key == mask_secret(secret)


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_vectors_in_order_with_the_asked_dimensions_and_usage(
    make_sim: SimFactory, http: aiohttp.ClientSession, provider: str
) -> None:
    sim = await make_sim(key={"rpm": 100, "tpm": 100_000, "providers": [provider]})
    texts = ["one text", "two texts", "three"]
    result = await call(sim, http, provider, texts, dimensions=32)
    model = MODELS[provider]
    assert result.vectors == [vector(model, t, 32) for t in texts]
    assert result.provider == provider and result.latency_ms > 0
    seen = sim.requests(key_id="k1")
    assert len(seen) == 1 and seen[0].prompt_tokens is not None
    if provider != "gemini":  # reported by the provider
        assert result.usage_reported and result.usage.prompt_tokens == seen[0].prompt_tokens
        assert result.rate_limits is not None and result.rate_limits.requests.remaining == 99
    else:  # Gemini reports none: counted with the router's tokenizer (never below the provider's)
        assert not result.usage_reported
        assert result.usage.prompt_tokens == sum(count_tokens(t, model) for t in texts)
        assert result.usage.prompt_tokens >= seen[0].prompt_tokens
    assert result.usage.completion_tokens == 0


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_failures_are_the_chat_calls_error_classes(
    make_sim: SimFactory, http: aiohttp.ClientSession, provider: str
) -> None:
    sim = await make_sim(key={"rpm": 1, "providers": [provider]})
    await call(sim, http, provider, ["fits"])
    with pytest.raises(RateLimitedError) as limited:
        await call(sim, http, provider, ["over the minute's requests"])
    assert limited.value.retry_after is not None and limited.value.retry_after > 0
    no_secret(limited.value)
    with pytest.raises(ProviderAuthError) as denied:
        await call(sim, http, provider, ["x"], secret=OTHER)
    no_secret(denied.value, OTHER)
    sim.reset_stats(limits=True)
    sim.set_faults({"error_rate": 1.0})
    with pytest.raises(ServerError) as failed:
        await call(sim, http, provider, ["x"])
    no_secret(failed.value)
    sim.set_faults({"malformed_rate": 1.0})
    with pytest.raises(MalformedResponseError):
        await call(sim, http, provider, ["x"])
    sim.set_faults({})
    with pytest.raises(ContextLengthExceededError):
        await call(sim, http, provider, ["word " * 9000])


async def test_the_request_shapes(http: aiohttp.ClientSession) -> None:
    openai_key = APIKey(key_id="a", model_name="m", provider="openai", base_url="http://h/v1")
    azure_key = APIKey(
        key_id="z", model_name="m", provider="azure", base_url="https://r.openai.azure.com/d/x"
    )
    gemini_key = APIKey(key_id="g", model_name="m", provider="gemini")
    request = EmbedRequest("text-embedding-3-small", ["a", "b"], dimensions=8, user="ann")
    adapters = {p: get_adapter(p, http) for p in ("openai", "azure", "gemini")}
    assert endpoint(adapters["openai"], openai_key, request) == "http://h/v1/embeddings"
    assert endpoint(adapters["azure"], azure_key, request).startswith(
        "https://r.openai.azure.com/d/x/embeddings?api-version="
    )
    gemini = EmbedRequest("models/gemini-embedding-001", ["a"], dimensions=8)
    assert endpoint(adapters["gemini"], gemini_key, gemini) == (
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-embedding-001"
        ":batchEmbedContents"
    )
    assert payload("openai", request) == {
        "model": "text-embedding-3-small",
        "input": ["a", "b"],
        "encoding_format": "float",
        "dimensions": 8,
        "user": "ann",
    }
    assert payload("gemini", gemini) == {
        "requests": [
            {
                "model": "models/gemini-embedding-001",
                "outputDimensionality": 8,
                "content": {"parts": [{"text": "a"}]},
            }
        ]
    }


def test_the_catalog_knows_embedding_models_and_never_offers_them_for_chat(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    small = model_info("text-embedding-3-small")
    assert small is not None and (small.kind, small.context_window) == ("embedding", 8_191)
    assert small.dimensions == 1536 and is_embedding_model("models/gemini-embedding-001")
    assert provider_of_model("text-embedding-004") == "gemini"
    assert not is_embedding_model("gpt-4o-mini") and not is_embedding_model("unknown-model")
    assert all(info.kind == "chat" for info in models_fitting(1_000))
    # an embedding model with a large input limit (registered for a host) is no chat fallback
    big = ModelInfo("acme-embed", "openai", 200_000, 0, "embedding", 1024)
    monkeypatch.setitem(catalog._CATALOG, "acme-embed", big)  # restored after the test
    served = [("gpt-4o-mini", "openai"), ("acme-embed", "openai")]
    routing = RoutingTable.from_section({}, source="test")
    assert routing.context_fallbacks("gpt-4", 9_000, served, "openai") == ["gpt-4o-mini"]
    assert all(info.kind == "chat" for info in models_fitting(150_000))
