"""Embeddings: one call with one key, through the chat adapters' transport, auth and errors.

    result = await embed(adapter, key, secret, EmbedRequest("text-embedding-3-small", ["hi"]))

OpenAI (and OpenAI-compatible hosts): ``POST {base_url}/embeddings`` with ``input`` (a list),
``model``, ``dimensions``, ``user``; floats are asked for (``encoding_format: float``), the
gateway encodes base64 itself. Usage: ``usage.prompt_tokens``. Azure: ``{deployment}/embeddings
?api-version=``. Gemini: ``POST {base}/v1beta/models/{model}:batchEmbedContents`` with one
request per input (``outputDimensionality``); Gemini reports no tokens, so they are counted with
the router's tokenizer (kernel/tokens.py). Failures are the chat adapters' classes (the same
``error_for``): a 429 is a RateLimitedError, a 401 an AuthenticationError, and so on, so rotation
and cooldowns work as for chat. Anthropic has no embeddings API.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import aiohttp

from kernel import jsonio
from kernel.errors import ConfigError
from kernel.tokens import count_tokens
from keys.models import APIKey
from router.providers.base import ProviderAdapter
from router.providers.gemini import API_VERSION
from router.providers.openai import AZURE_DEFAULT_API_VERSION
from router.providers.ratelimits import RateLimitSnapshot
from router.providers.transport import CallContext, HttpRequest, read_body, translate
from router.providers.types import Usage

#: Providers with an embeddings API here.
EMBEDDING_PROVIDERS = ("openai", "azure", "gemini")
_PARSE_ERRORS = (KeyError, TypeError, IndexError, ValueError, AttributeError)


@dataclass
class EmbedRequest:
    """Texts to embed with ``model``; ``dimensions`` shortens the vectors (where supported)."""

    model: str
    inputs: list[str]
    dimensions: int | None = None
    user: str | None = None
    timeout: float | None = None


@dataclass
class EmbedResult:
    """One vector per input, in order, and the tokens the provider counted (or we did)."""

    vectors: list[list[float]]
    usage: Usage
    model: str
    provider: str
    usage_reported: bool = True
    rate_limits: RateLimitSnapshot | None = None
    latency_ms: float = 0.0


def supports_embeddings(provider: str) -> bool:
    return provider in EMBEDDING_PROVIDERS


def endpoint(adapter: ProviderAdapter, key: APIKey, request: EmbedRequest) -> str:
    base = adapter.base_url(key)
    if adapter.provider == "gemini":
        if not base.endswith(("/v1beta", "/v1")):
            base += "/" + API_VERSION
        return f"{base}/models/{request.model.removeprefix('models/')}:batchEmbedContents"
    if adapter.provider == "azure":
        if not key.base_url:
            raise ConfigError(
                "an Azure OpenAI key needs base_url (the deployment URL)",
                entry=key.key_id,
                field="base_url",
            )
        version = key.api_version or AZURE_DEFAULT_API_VERSION
        return f"{base}/embeddings?api-version={version}"
    return base + "/embeddings"


def payload(provider: str, request: EmbedRequest) -> dict[str, Any]:
    if provider == "gemini":
        name = "models/" + request.model.removeprefix("models/")
        one: dict[str, Any] = {"model": name}
        if request.dimensions is not None:
            one["outputDimensionality"] = request.dimensions
        return {"requests": [{**one, "content": {"parts": [{"text": t}]}} for t in request.inputs]}
    body: dict[str, Any] = {
        "model": request.model,
        "input": request.inputs,
        "encoding_format": "float",
    }
    if request.dimensions is not None:
        body["dimensions"] = request.dimensions
    if request.user is not None:
        body["user"] = request.user
    return body


def parse(provider: str, data: Any, request: EmbedRequest) -> EmbedResult:
    """The vectors and usage of an answer; a wrong shape raises one of ``_PARSE_ERRORS``."""
    if provider == "gemini":
        vectors = [[float(v) for v in e["values"]] for e in data["embeddings"]]
        prompt = sum(count_tokens(t, request.model) for t in request.inputs)
        usage, reported, model = Usage(prompt, 0, 0, prompt), False, request.model
    else:
        rows = sorted(data["data"], key=lambda row: int(row.get("index", 0)))
        vectors = [[float(v) for v in row["embedding"]] for row in rows]
        raw_usage = data.get("usage") or {}
        reported = "prompt_tokens" in raw_usage
        prompt = (
            int(raw_usage["prompt_tokens"])
            if reported
            else sum(count_tokens(t, request.model) for t in request.inputs)
        )
        usage = Usage(prompt, 0, 0, int(raw_usage.get("total_tokens") or prompt))
        model = str(data.get("model") or request.model)
    if len(vectors) != len(request.inputs):
        raise ValueError(f"{len(vectors)} vectors for {len(request.inputs)} inputs")
    return EmbedResult(vectors, usage, model, provider, usage_reported=reported)


async def embed(
    adapter: ProviderAdapter, key: APIKey, secret: str, request: EmbedRequest
) -> EmbedResult:
    """One embeddings call; a failure raises the ``ProviderError`` subclass chat would."""
    ctx = CallContext(adapter.provider, secret)
    started = time.perf_counter()
    headers = {"Content-Type": "application/json", **adapter.auth_headers(key, secret)}
    call = HttpRequest(
        endpoint(adapter, key, request),
        headers,
        jsonio.dumps(payload(adapter.provider, request)),
        request.timeout or adapter.timeout,
        adapter.connect_timeout,
    )
    try:
        response = await adapter.transport.send(call)
    except (TimeoutError, aiohttp.ClientError) as exc:
        raise translate(exc, ctx) from exc
    try:
        raw, body = await read_body(response, ctx)
    finally:
        response.release()
    if response.status >= 400:
        snapshot = adapter.snapshot(response.headers, body)
        raise adapter.error_for(response.status, body, raw, snapshot, ctx)
    snapshot = adapter.snapshot(response.headers)
    try:
        result = parse(adapter.provider, body, request)
    except _PARSE_ERRORS as exc:
        raise adapter.malformed(ctx, response.status, raw, snapshot) from exc
    result.rate_limits = snapshot
    result.latency_ms = (time.perf_counter() - started) * 1000.0
    return result
