"""The OpenAPI path and schemas of ``POST /v1/embeddings`` (router/gateway/embeddings_api.py),
merged into the document by router/gateway/openapi.py."""

from __future__ import annotations

from router.embedding import MAX_INPUTS
from router.gateway.openapi_schemas import Schema

ERRORS = {
    400: "Bad request: the error's `param` names the field",
    401: "Missing or invalid key",
    403: "The key may not use this model",
    404: "Unknown model",
    413: "Request body too large",
    429: "No room: a limit of the gateway or of the pool; `Retry-After` says when to retry",
    502: "The provider failed the call",
    503: "Not ready, shutting down, store unavailable, or no key can serve",
    504: "The provider did not answer in time",
}
_TOKENS: Schema = {"type": "array", "minItems": 1, "items": {"type": "integer", "minimum": 0}}


def embeddings_request_schema() -> Schema:
    text: Schema = {"type": "string", "minLength": 1}
    return {
        "type": "object",
        "required": ["model", "input"],
        "properties": {
            "model": {"type": "string", "minLength": 1},
            "input": {
                "description": "a text, texts, or token arrays (decoded with the model's "
                "tokenizer)",
                "anyOf": [
                    text,
                    {"type": "array", "minItems": 1, "maxItems": MAX_INPUTS, "items": text},
                    _TOKENS,
                    {"type": "array", "minItems": 1, "maxItems": MAX_INPUTS, "items": _TOKENS},
                ],
            },
            "dimensions": {"type": "integer", "minimum": 1},
            "encoding_format": {"enum": ["float", "base64"]},
            "user": {"type": "string"},
        },
    }


def embeddings_schema() -> Schema:
    vector: Schema = {
        "anyOf": [
            {"type": "array", "items": {"type": "number"}},
            {"type": "string", "description": "base64 of little-endian float32 values"},
        ]
    }
    item: Schema = {
        "type": "object",
        "required": ["object", "index", "embedding"],
        "properties": {
            "object": {"const": "embedding"},
            "index": {"type": "integer", "minimum": 0},
            "embedding": vector,
        },
    }
    usage: Schema = {
        "type": "object",
        "required": ["prompt_tokens", "total_tokens"],
        "properties": {"prompt_tokens": {"type": "integer"}, "total_tokens": {"type": "integer"}},
    }
    return {
        "type": "object",
        "required": ["object", "data", "model", "usage"],
        "properties": {
            "object": {"const": "list"},
            "data": {"type": "array", "items": item},
            "model": {"type": "string"},
            "usage": usage,
        },
    }


def embeddings_paths() -> Schema:
    responses: Schema = {
        "200": {
            "description": "Success",
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/Embeddings"}}
            },
        }
    }
    for status, text in ERRORS.items():
        responses[str(status)] = {
            "description": text,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
    example = {"model": "text-embedding-3-small", "input": ["Hello!", "World"]}
    schema = {"$ref": "#/components/schemas/EmbeddingsRequest"}
    return {
        "/v1/embeddings": {
            "post": {
                "summary": "Create embeddings (OpenAI-compatible; OpenAI and Gemini models)",
                "operationId": "createEmbedding",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": schema, "example": example}},
                },
                "responses": responses,
                "security": [{"virtualKey": []}],
            }
        }
    }


def embeddings_schemas() -> Schema:
    return {"EmbeddingsRequest": embeddings_request_schema(), "Embeddings": embeddings_schema()}
