"""Embeddings as the simulator speaks them: OpenAI's ``POST /v1/embeddings`` (and Azure's
``/openai/deployments/{deployment}/embeddings``) and Gemini's
``models/{model}:embedContent`` / ``:batchEmbedContents``.

Vectors are deterministic: drawn from a hash of the model and the text, unit length, of the model's
dimension (the catalog's, or the request's ``dimensions`` / ``outputDimensionality``). Usage is
counted with the same tokenizer as chat prompts (no message framing); limits (RPM, TPM: a batch
charges its tokens) and faults apply as to chat, and errors are the chat wires' own. OpenAI's
``encoding_format: base64`` is honoured (little-endian float32, as the official SDK asks by
default). Gemini reports no token usage, as the real API does not.
"""

from __future__ import annotations

import base64
import hashlib
import math
import struct
from functools import lru_cache
from typing import Any

from aiohttp import web

from kernel import jsonio
from router.providers.catalog import model_info
from router.simulator.outcomes import Admitted, Call, Outcome
from router.simulator.wire import Answer, WireError, as_int
from router.simulator.wire_azure import AzureWire
from router.simulator.wire_gemini import GeminiWire
from router.simulator.wire_openai import OpenAIWire

#: Vector length of a model the catalog does not know as an embedding model.
DEFAULT_DIMENSIONS = 1536
GEMINI_ACTIONS = ("embedContent", "batchEmbedContents")


def vector(model: str, text: str, dimensions: int | None = None) -> list[float]:
    """The deterministic unit vector of ``text`` for ``model``."""
    info = model_info(model)
    size = dimensions or (info.dimensions if info and info.dimensions else DEFAULT_DIMENSIONS)
    return list(_vector(model, text, size))


@lru_cache(maxsize=4096)
def _vector(model: str, text: str, size: int) -> tuple[float, ...]:
    # hash-seeded int16 values (SHAKE-256 of the model and text), scaled to unit length
    raw = hashlib.shake_256(f"{model}\0{text}".encode()).digest(2 * size)
    values = struct.unpack(f"<{size}h", raw)
    norm = math.sqrt(math.fsum(v * v for v in values)) or 1.0
    return tuple(round(v / norm, 8) for v in values)


def as_base64(values: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()


def _texts(value: Any, param: str) -> tuple[str, ...]:
    texts = (value,) if isinstance(value, str) else value
    if not isinstance(texts, list | tuple) or not texts:
        raise WireError(f"'{param}' must be a non-empty string or array of strings", param)
    for text in texts:
        if not isinstance(text, str) or not text:
            raise WireError(f"'{param}' items must be non-empty strings", param)
    return tuple(texts)


def _call(provider: str, model: str, texts: tuple[str, ...], dimensions: int | None) -> Call:
    messages = [{"role": "user", "content": t} for t in texts]
    return Call(provider, model, messages, inputs=texts, dimensions=dimensions)


class OpenAIEmbeddingsWire(OpenAIWire):
    name = "openai-embeddings"
    provider = "openai"

    def parse(self, body: Any, request: web.Request) -> Call:
        if not isinstance(body, dict):
            raise WireError("We could not parse the JSON body of your request.")
        model = self.model_of(body, request)
        if not isinstance(model, str) or not model:
            raise WireError("you must provide a model parameter", "model")
        fmt = body.get("encoding_format") or "float"
        if fmt not in ("float", "base64"):
            raise WireError(f"Invalid value for 'encoding_format': {fmt!r}", "encoding_format")
        call = _call(self.provider, model, _texts(body.get("input"), "input"), None)
        call.dimensions = as_int(body.get("dimensions"), "dimensions")
        call.embed_format = fmt
        return call

    def answer(self, call: Call, outcome: Outcome) -> Answer:
        if not isinstance(outcome, Admitted):
            return super().answer(call, outcome)
        dims = call.dimensions
        encode: Any = as_base64 if call.embed_format == "base64" else (lambda v: v)
        data = [
            {"object": "embedding", "index": i, "embedding": encode(vector(call.model, t, dims))}
            for i, t in enumerate(call.inputs or ())
        ]
        prompt = outcome.prompt_tokens
        body = {
            "object": "list",
            "data": data,
            "model": call.model,
            "usage": {"prompt_tokens": prompt, "total_tokens": prompt},
        }
        return Answer(200, jsonio.dumps(body), self.limit_headers(outcome.view))


class AzureEmbeddingsWire(OpenAIEmbeddingsWire, AzureWire):
    """Azure OpenAI's ``{deployment}/embeddings?api-version=``: the deployment is the model."""

    name = "azure-embeddings"
    provider = "azure"


class GeminiEmbeddingsWire(GeminiWire):
    name = "gemini-embeddings"

    def parse(self, body: Any, request: web.Request) -> Call:
        model, _, action = request.match_info["target"].partition(":")
        model = model.removeprefix("models/")
        if not isinstance(body, dict):
            raise WireError("Invalid JSON payload received.")
        items: Any = [body] if action == "embedContent" else body.get("requests")
        if not isinstance(items, list) or not items:
            raise WireError("* BatchEmbedContentsRequest.requests: requests is not specified")
        texts = [_gemini_text(index, item) for index, item in enumerate(items)]
        dims = as_int(items[0].get("outputDimensionality"), "outputDimensionality")
        call = _call("gemini", model, tuple(texts), dims)
        call.embed_format = action
        return call

    def answer(self, call: Call, outcome: Outcome) -> Answer:
        if not isinstance(outcome, Admitted):
            return super().answer(call, outcome)
        vectors = [{"values": vector(call.model, t, call.dimensions)} for t in call.inputs or ()]
        if call.embed_format == "embedContent":
            return Answer(200, jsonio.dumps({"embedding": vectors[0]}))
        return Answer(200, jsonio.dumps({"embeddings": vectors}))


def _gemini_text(index: int, item: Any) -> str:
    content = item.get("content") if isinstance(item, dict) else None
    parts = content.get("parts") if isinstance(content, dict) else None
    text = "".join(str(p.get("text", "")) for p in parts or [] if isinstance(p, dict))
    if not text:
        raise WireError(f"* requests[{index}].content: content is not specified")
    return text


def gemini_wire_name(target: str) -> str:
    """Which wire serves a Gemini ``models/{target}`` POST."""
    _, _, action = target.partition(":")
    return "gemini-embeddings" if action in GEMINI_ACTIONS else "gemini"
