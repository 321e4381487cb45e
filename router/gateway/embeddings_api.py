"""``POST /v1/embeddings``: OpenAI's embeddings API over the pool.

The request goes as a chat request does (router/gateway/openai_api.py): virtual key -> body
checks -> allowed and known model -> the gateway's limits -> ``RequestRouter.embed`` (one
reservation for the batch on a key of the model: RPM 1, TPM its tokens; rotation and fallback as
for chat) -> OpenAI's answer: ``{"object": "list", "data": [{"object": "embedding", "index",
"embedding"}], "model", "usage": {"prompt_tokens", "total_tokens"}}``. ``encoding_format:
base64`` answers each vector as little-endian float32 bytes in base64 (what the official SDK
asks for by default). ``input`` is a string, a list of strings, or token arrays (a list of
integers, or a list of such lists, as LangChain sends): token arrays are decoded with the
model's tokenizer, so any provider can take them. A pool with no room answers 429 with
``Retry-After``.
"""

from __future__ import annotations

import base64
import struct
from dataclasses import dataclass
from typing import Any, cast

from aiohttp import web

from kernel import jsonio
from kernel.errors import GatewayError
from kernel.tokens import count_tokens, encoding_name_for, get_encoding
from router.answers import Answer
from router.embedding import MAX_INPUTS, EmbedAnswer
from router.gateway.errors import bad_request, from_answer
from router.gateway.openai_api import (
    REQUEST_ID,
    _headers,
    _settle,
    admit_caller,
    admit_model,
    attribution_of,
    read_json,
)
from router.gateway.state import GATEWAY, Gateway

ENCODINGS = ("float", "base64")


@dataclass
class EmbedParams:
    """A checked embeddings request."""

    model: str
    inputs: list[str]
    dimensions: int | None = None
    encoding_format: str = "float"


def _fail(message: str, param: str) -> GatewayError:
    return bad_request(f"Invalid value for '{param}': {message}", param=param)


def parse_embeddings_request(body: Any) -> EmbedParams:
    """The checked request; a 400 naming the parameter otherwise."""
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object.", param="body")
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise _fail("expected the name of an embedding model", "model")
    fmt = body.get("encoding_format") or "float"
    if fmt not in ENCODINGS:
        raise _fail(f"expected one of {', '.join(ENCODINGS)}", "encoding_format")
    dims = body.get("dimensions")
    if dims is not None and (isinstance(dims, bool) or not isinstance(dims, int) or dims < 1):
        raise _fail("expected a positive integer", "dimensions")
    user = body.get("user")
    if user is not None and not isinstance(user, str):
        raise _fail("expected a string", "user")
    return EmbedParams(model, _inputs(body.get("input"), model), dims, fmt)


def _inputs(value: Any, model: str) -> list[str]:
    if isinstance(value, str):
        value = [value]
    elif isinstance(value, list) and value and all(_is_token(t) for t in value):
        value = [value]  # one token array
    if not isinstance(value, list) or not value:
        raise _fail("expected a string, a list of strings or token arrays", "input")
    if len(value) > MAX_INPUTS:
        raise _fail(f"{len(value)} inputs, at most {MAX_INPUTS}", "input")
    return [_text(item, index, model) for index, item in enumerate(value)]


def _is_token(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _text(item: Any, index: int, model: str) -> str:
    param = f"input[{index}]"
    if isinstance(item, str):
        if not item:
            raise _fail("expected a non-empty string", param)
        return item
    if not isinstance(item, list) or not item or not all(_is_token(t) for t in item):
        raise _fail("expected a non-empty string or a non-empty array of token ids", param)
    encoder = get_encoding(encoding_name_for(model))
    decode = getattr(encoder, "decode", None)
    if decode is None:
        raise _fail("token arrays need the model's tokenizer, which is not available", param)
    vocabulary = getattr(encoder, "n_vocab", None)
    if isinstance(vocabulary, int) and any(t >= vocabulary for t in item):
        raise _fail(f"token ids of {model}'s tokenizer are below {vocabulary}", param)
    try:
        return str(decode(item))
    except (KeyError, ValueError, OverflowError) as exc:
        raise _fail(f"not token ids of {model}'s tokenizer", param) from exc


def as_base64(vector: list[float]) -> str:
    """A vector as OpenAI's ``encoding_format: base64`` sends it: little-endian float32."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


def embeddings_body(answer: EmbedAnswer, params: EmbedParams) -> dict[str, Any]:
    encode = as_base64 if params.encoding_format == "base64" else None
    data = [
        {"object": "embedding", "index": i, "embedding": encode(v) if encode else v}
        for i, v in enumerate(answer["embeddings"])
    ]
    tokens = answer["tokens"]
    return {
        "object": "list",
        "data": data,
        "model": answer["model"],
        "usage": {"prompt_tokens": tokens["prompt"], "total_tokens": tokens["total"]},
    }


def as_answer(answer: EmbedAnswer) -> Answer:
    """The embed answer in the chat answer's shape (metrics, error mapping, headers)."""
    tokens = answer["tokens"]
    full = {
        **answer,
        "content": None,
        "finish_reason": None,
        "tool_calls": [],
        "tokens": {
            "prompt": tokens["prompt"],
            "completion": 0,
            "cached": 0,
            "total": tokens["total"],
        },
    }
    full.pop("embeddings")
    return cast(Answer, full)


async def _estimate(params: EmbedParams) -> int:
    return sum(count_tokens(text, params.model) for text in params.inputs)


async def embeddings(request: web.Request) -> web.Response:
    gateway: Gateway = request.app[GATEWAY]
    caller = await admit_caller(request, gateway)
    params = parse_embeddings_request(await read_json(request))
    estimate = await admit_model(gateway, caller, params.model, lambda: _estimate(params), "input")
    options: dict[str, Any] = {"request_id": request[REQUEST_ID]}
    if caller.vkey is not None and caller.vkey.tags:
        options["tags"] = dict(caller.vkey.tags)
    answer = await gateway.router.embed(
        params.inputs,
        params.model,
        dimensions=params.dimensions,
        attribution=attribution_of(caller),
        **options,
    )
    chat = as_answer(answer)
    await _settle(gateway, caller, chat, estimate)
    if not answer["success"]:
        raise from_answer(chat)
    return web.Response(
        body=jsonio.dumps(embeddings_body(answer, params)),
        content_type="application/json",
        headers=_headers(chat),
    )
