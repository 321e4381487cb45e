"""The OpenAPI paths and schemas of the Anthropic-compatible routes (router/gateway/anthropic_api.py),
merged into the document by router/gateway/openapi.py. Their errors are in Anthropic's shape."""

from __future__ import annotations

from typing import Any

from router.gateway.openapi_schemas import Schema

STRING: Schema = {"type": "string"}
INT: Schema = {"type": "integer"}
ERROR_TYPES = [
    "invalid_request_error",
    "authentication_error",
    "permission_error",
    "not_found_error",
    "request_too_large",
    "rate_limit_error",
    "api_error",
    "overloaded_error",
]
STATUS_TEXT = {
    400: "invalid_request_error: the message names the field",
    401: "authentication_error: missing or invalid virtual key (x-api-key or bearer)",
    403: "permission_error: the key may not use the model",
    404: "not_found_error: unknown model",
    413: "request_too_large",
    429: "rate_limit_error: a limit of the gateway or of the pool; `retry-after` says when",
    502: "api_error: the provider failed the call",
    503: "api_error or overloaded_error: not ready, store unavailable, provider overloaded",
    504: "api_error: the provider did not answer in time",
}
BLOCK: Schema = {
    "type": "object",
    "required": ["type"],
    "properties": {"type": {"enum": ["text", "image", "tool_use", "tool_result", "thinking"]}},
}
VERSION_HEADER: Schema = {
    "name": "anthropic-version",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$"},
    "description": "accepted; 2023-06-01 when missing",
}


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def error_schema() -> Schema:
    return {
        "type": "object",
        "required": ["type", "error"],
        "properties": {
            "type": {"const": "error"},
            "error": {
                "type": "object",
                "required": ["type", "message"],
                "properties": {"type": {"enum": ERROR_TYPES}, "message": STRING},
            },
            "request_id": STRING,
        },
    }


def request_schema(*, count: bool = False) -> Schema:
    message = {
        "type": "object",
        "required": ["role", "content"],
        "properties": {
            "role": {"enum": ["user", "assistant"]},
            "content": {"anyOf": [STRING, {"type": "array", "items": BLOCK}]},
        },
    }
    properties: dict[str, Any] = {
        "model": {"type": "string", "minLength": 1, "maxLength": 256},
        "messages": {"type": "array", "minItems": 1, "items": message},
        "system": {"anyOf": [STRING, {"type": "array", "items": BLOCK}]},
        "tools": {"type": "array", "items": {"type": "object", "required": ["name"]}},
        "tool_choice": {"type": "object", "required": ["type"]},
    }
    if not count:
        properties.update(
            max_tokens={"type": "integer", "minimum": 1},
            stream={"type": "boolean"},
            stop_sequences={"type": "array", "items": {"type": "string", "minLength": 1}},
            temperature={"type": "number", "minimum": 0, "maximum": 1},
            top_p={"type": "number", "minimum": 0, "maximum": 1},
            top_k={"type": "integer", "minimum": 0},
            metadata={"type": "object", "properties": {"user_id": STRING}},
            thinking={"type": "object", "required": ["type"]},
        )
    required = ["model", "messages"] if count else ["model", "max_tokens", "messages"]
    return {"type": "object", "required": required, "properties": properties}


def message_schema() -> Schema:
    usage = {
        "type": "object",
        "required": ["input_tokens", "output_tokens"],
        "properties": {"input_tokens": INT, "output_tokens": INT, "cache_read_input_tokens": INT},
    }
    return {
        "type": "object",
        "required": ["id", "type", "role", "model", "content", "stop_reason", "usage"],
        "properties": {
            "id": STRING,
            "type": {"const": "message"},
            "role": {"const": "assistant"},
            "model": STRING,
            "content": {"type": "array", "items": BLOCK},
            "stop_reason": {
                "enum": ["end_turn", "max_tokens", "stop_sequence", "tool_use", "refusal"]
            },
            "stop_sequence": {"type": ["string", "null"]},
            "usage": usage,
        },
    }


def _responses(ok: Schema, errors: tuple[int, ...], stream: bool = False) -> Schema:
    out: Schema = {
        "200": {"description": "Success", "content": {"application/json": {"schema": ok}}}
    }
    if stream:
        out["200"]["content"]["text/event-stream"] = {
            "schema": {
                "type": "object",
                "description": "one server-sent event: `event` is message_start, ping, "
                "content_block_start, content_block_delta, content_block_stop, message_delta, "
                "message_stop (or error after a failure mid-stream); `data` its JSON",
                "required": ["event", "data"],
                "properties": {"event": STRING, "data": STRING},
            }
        }
    for status in errors:
        out[str(status)] = {
            "description": STATUS_TEXT[status],
            "content": {"application/json": {"schema": _ref("AnthropicError")}},
        }
    return out


def anthropic_paths() -> Schema:
    example = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 256,
        "messages": [{"role": "user", "content": "Hello!"}],
    }
    count = {"type": "object", "required": ["input_tokens"], "properties": {"input_tokens": INT}}
    security: list[Schema] = [{"virtualKey": []}, {"virtualKeyHeader": []}]
    return {
        "/v1/messages": {
            "post": {
                "summary": "Create a message (Anthropic-compatible; stream with SSE)",
                "operationId": "createMessage",
                "security": security,
                "parameters": [VERSION_HEADER],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": _ref("AnthropicMessagesRequest"),
                            "example": example,
                        }
                    },
                },
                "responses": _responses(
                    _ref("AnthropicMessage"),
                    (400, 401, 403, 404, 413, 429, 502, 503, 504),
                    stream=True,
                ),
            }
        },
        "/v1/messages/count_tokens": {
            "post": {
                "summary": "Count a message's input tokens (counted by the gateway)",
                "operationId": "countMessageTokens",
                "security": security,
                "parameters": [VERSION_HEADER],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("AnthropicCountRequest")}},
                },
                "responses": _responses(count, (400, 401, 403, 404, 413, 429, 503)),
            }
        },
    }


def anthropic_security() -> Schema:
    """The security scheme of a virtual key sent as ``x-api-key``."""
    return {
        "virtualKeyHeader": {
            "type": "apiKey",
            "in": "header",
            "name": "x-api-key",
            "description": "a virtual key, as Anthropic's SDKs send it",
        }
    }


def anthropic_schemas() -> Schema:
    return {
        "AnthropicError": error_schema(),
        "AnthropicMessagesRequest": request_schema(),
        "AnthropicCountRequest": request_schema(count=True),
        "AnthropicMessage": message_schema(),
    }
