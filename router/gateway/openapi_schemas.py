"""The schemas of the gateway's OpenAPI document (router/gateway/openapi.py): the chat request and
its messages, the chat completion, models, virtual keys, and OpenAI's error shape.

Pure data: each function returns a fresh JSON Schema (3.1) dict, so a caller may change its copy.
"""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]

NULLABLE_STRING: Schema = {"type": ["string", "null"]}
ERROR: Schema = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type", "param", "code"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": NULLABLE_STRING,
                "code": NULLABLE_STRING,
            },
        }
    },
}
TEXT: Schema = {"type": "string"}
OBJECT: Schema = {"type": "object"}


TEXT_PART: Schema = {
    "type": "object",
    "required": ["type", "text"],
    "properties": {"type": {"const": "text"}, "text": {"type": "string"}},
}
IMAGE_PART: Schema = {
    "type": "object",
    "required": ["type", "image_url"],
    "properties": {
        "type": {"const": "image_url"},
        "image_url": {
            "type": "object",
            "required": ["url"],
            "properties": {"url": {"type": "string", "minLength": 1}},
        },
    },
}
TOOL_CALL: Schema = {
    "type": "object",
    "required": ["id", "type", "function"],
    "properties": {
        "id": {"type": "string", "minLength": 1},
        "type": {"const": "function"},
        "function": {
            "type": "object",
            "required": ["name", "arguments"],
            "properties": {
                "name": {"type": "string", "minLength": 1},
                "arguments": {"type": "string"},
            },
        },
    },
}
FUNCTION_TOOL: Schema = {
    "type": "object",
    "required": ["type", "function"],
    "properties": {
        "type": {"const": "function"},
        "function": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"},
                "description": {"type": "string"},
                "parameters": {"type": "object"},
            },
        },
    },
}


TOOL_CHOICE: Schema = {
    "anyOf": [
        {"enum": ["none", "auto", "required"]},
        {
            "type": "object",
            "required": ["type", "function"],
            "properties": {
                "type": {"const": "function"},
                "function": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {"name": {"type": "string", "minLength": 1}},
                },
            },
        },
    ]
}


def _message(role: Schema, content: Schema, *required: str, **properties: Schema) -> Schema:
    """One message: ``role``, ``content`` and the other ``properties`` (``required`` among them)."""
    return {
        "type": "object",
        "required": ["role", "content", *required],
        "properties": {"role": role, "content": content, **properties},
    }


def messages_schema() -> Schema:
    text_or_parts = {
        "anyOf": [{"type": "string"}, {"type": "array", "items": TEXT_PART}],
    }
    user_content = {
        "anyOf": [
            {"type": "string"},
            {"type": "array", "items": {"anyOf": [TEXT_PART, IMAGE_PART]}},
        ]
    }
    name = {"type": "string", "minLength": 1, "maxLength": 256}
    return {
        "type": "array",
        "minItems": 1,
        "items": {
            "anyOf": [
                _message({"enum": ["system", "developer"]}, text_or_parts, name=name),
                _message({"const": "user"}, user_content, name=name),
                _message(
                    {"const": "assistant"},
                    {"type": "string"},
                    tool_calls={"type": "array", "items": TOOL_CALL},
                    name=name,
                ),
                _message(
                    {"const": "tool"},
                    text_or_parts,
                    "tool_call_id",
                    tool_call_id={"type": "string", "minLength": 1},
                ),
            ]
        },
    }


def chat_request_schema() -> Schema:
    number = {"type": "number"}
    return {
        "type": "object",
        "required": ["model", "messages"],
        "properties": {
            "model": {"type": "string", "minLength": 1, "maxLength": 256},
            "messages": messages_schema(),
            "stream": {"type": "boolean"},
            "stream_options": {
                "type": "object",
                "properties": {"include_usage": {"type": "boolean"}},
                "description": "only with stream: true",
            },
            "max_tokens": {"type": "integer", "minimum": 1},
            "max_completion_tokens": {"type": "integer", "minimum": 1},
            "temperature": {**number, "minimum": 0, "maximum": 2},
            "top_p": {**number, "minimum": 0, "maximum": 1},
            "presence_penalty": {**number, "minimum": -2, "maximum": 2},
            "frequency_penalty": {**number, "minimum": -2, "maximum": 2},
            "n": {"type": "integer", "const": 1},
            "seed": {"type": "integer"},
            "stop": {
                "anyOf": [
                    {"type": "string"},
                    {"type": "array", "items": {"type": "string"}, "maxItems": 4},
                ]
            },
            "user": {"type": "string", "maxLength": 256},
            "tools": {"type": "array", "items": FUNCTION_TOOL},
            "tool_choice": TOOL_CHOICE,
            "response_format": {
                "type": "object",
                "required": ["type"],
                "properties": {"type": {"enum": ["text", "json_object"]}},
            },
            "parallel_tool_calls": {"type": "boolean"},
        },
    }


def chat_completion_schema() -> Schema:
    return {
        "type": "object",
        "required": ["id", "object", "created", "model", "choices", "usage"],
        "properties": {
            "id": {"type": "string"},
            "object": {"const": "chat.completion"},
            "created": {"type": "integer"},
            "model": {"type": "string"},
            "choices": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["index", "message", "finish_reason"],
                    "properties": {
                        "index": {"type": "integer"},
                        "message": {
                            "type": "object",
                            "required": ["role", "content"],
                            "properties": {
                                "role": {"const": "assistant"},
                                "content": NULLABLE_STRING,
                                "tool_calls": {"type": "array", "items": TOOL_CALL},
                            },
                        },
                        "finish_reason": {
                            "enum": [
                                "stop",
                                "length",
                                "tool_calls",
                                "content_filter",
                                "function_call",
                            ]
                        },
                    },
                },
            },
            "usage": {
                "type": "object",
                "required": ["prompt_tokens", "completion_tokens", "total_tokens"],
                "properties": {
                    "prompt_tokens": {"type": "integer"},
                    "completion_tokens": {"type": "integer"},
                    "total_tokens": {"type": "integer"},
                },
            },
        },
    }


def vkey_spec_schema() -> Schema:
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string", "maxLength": 200},
            "user_id": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.@:-]{0,127}$"},
            "models": {"type": "array", "items": {"type": "string"}, "maxItems": 1000},
            "rpm": {"type": "integer", "minimum": 1},
            "tpm": {"type": "integer", "minimum": 1},
            "tags": {"type": "object", "additionalProperties": {"type": "string"}},
            "expires_in": {"type": "number", "exclusiveMinimum": 0},
        },
    }


def vkey_schema() -> Schema:
    return {
        "type": "object",
        "required": ["id", "models", "revoked", "key_hint"],
        "properties": {
            "id": {"type": "string"},
            "name": {"type": "string"},
            "user_id": NULLABLE_STRING,
            "models": {"type": "array", "items": {"type": "string"}},
            "rpm": {"type": ["integer", "null"]},
            "tpm": {"type": ["integer", "null"]},
            "revoked": {"type": "boolean"},
            "key_hint": {"type": "string"},
            "key": {"type": "string", "description": "the virtual key; only in the create answer"},
        },
    }


def model_schema() -> Schema:
    return {
        "type": "object",
        "required": ["id", "object", "owned_by"],
        "properties": {
            "id": {"type": "string"},
            "object": {"const": "model"},
            "created": {"type": "integer"},
            "owned_by": {"type": "string"},
        },
    }
