"""The OpenAPI parts of the Responses API (``POST /v1/responses``) and of the bare-root aliases.

Every API route with a bare alias (router/gateway/routes.py) is documented twice: at ``/v1/...``
and at the root, the alias's operation id suffixed ``Bare``.
"""

from __future__ import annotations

import copy
from typing import Any

from router.gateway.openapi_schemas import NULLABLE_STRING, Schema
from router.gateway.routes import bare_form

_STRING = {"type": "string"}
_NUMBER_OR_NULL = {"type": ["number", "null"]}


def _input_item() -> Schema:
    return {
        "type": "object",
        "description": "a message (role user/system/developer/assistant; content a string or "
        "parts input_text, input_image, input_file, output_text, refusal), a function_call "
        "(call_id, name, arguments) or a function_call_output (call_id, output)",
        "properties": {
            "type": {"enum": ["message", "function_call", "function_call_output", "reasoning"]},
            "role": {"enum": ["user", "system", "developer", "assistant"]},
            "content": {"type": ["string", "array"]},
            "call_id": _STRING,
            "name": _STRING,
            "arguments": _STRING,
            "output": {"type": ["string", "array"]},
        },
    }


def responses_request_schema() -> Schema:
    return {
        "type": "object",
        "required": ["model", "input"],
        "properties": {
            "model": {"type": "string", "minLength": 1},
            "input": {
                "oneOf": [
                    {"type": "string"},
                    {"type": "array", "minItems": 1, "items": _input_item()},
                ]
            },
            "instructions": NULLABLE_STRING,
            "tools": {
                "type": "array",
                "description": "function tools only ({type: function, name, parameters, "
                "strict}); any other tool type is a 400 naming it",
                "items": {"type": "object", "required": ["type", "name"]},
            },
            "tool_choice": {"oneOf": [{"enum": ["none", "auto", "required"]}, {"type": "object"}]},
            "text": {
                "type": "object",
                "description": "format: text, json_object or json_schema (name, schema, strict)",
            },
            "max_output_tokens": {"type": ["integer", "null"], "minimum": 1},
            "temperature": _NUMBER_OR_NULL,
            "top_p": _NUMBER_OR_NULL,
            "stream": {"type": ["boolean", "null"]},
            "store": {
                "type": ["boolean", "null"],
                "description": "accepted; nothing is stored either way (the gateway is stateless)",
            },
            "metadata": {"type": ["object", "null"]},
            "user": NULLABLE_STRING,
            "previous_response_id": {
                "type": "null",
                "description": "not supported (stateless): a non-null value is a 400",
            },
        },
    }


def response_schema() -> Schema:
    return {
        "type": "object",
        "required": ["id", "object", "created_at", "status", "model", "output"],
        "properties": {
            "id": {"type": "string", "pattern": "^resp_"},
            "object": {"const": "response"},
            "created_at": {"type": "integer"},
            "status": {"enum": ["completed", "incomplete"]},
            "model": _STRING,
            "output": {"type": "array", "items": {"type": "object"}},
            "usage": {
                "type": "object",
                "required": ["input_tokens", "output_tokens", "total_tokens"],
            },
        },
    }


def responses_path(op: Any, responses: Any, body: Any, ref: Any) -> Schema:
    """``/v1/responses``, built with openapi.py's helpers (passed in to avoid a cycle)."""
    errors = (400, 401, 403, 404, 413, 429, 502, 503, 504)
    ok = responses(200, ref("Response"), errors)
    ok["200"]["content"]["text/event-stream"] = {
        "schema": {
            "type": "object",
            "description": "one server-sent event of the Responses API (response.created ... "
            "response.completed), its type in `event` and JSON in `data`",
            "required": ["data"],
            "properties": {"data": {"type": "string"}, "event": {"type": "string"}},
        }
    }
    example = {"model": "gpt-4o-mini", "input": "Hello!", "store": False}
    return {
        "/v1/responses": {
            "post": op(
                "Create a response (OpenAI Responses API, stateless; stream with SSE)",
                ok,
                security="virtualKey",
                operationId="createResponse",
                requestBody=body(ref("ResponseRequest"), example),
            )
        }
    }


def with_bare_aliases(paths: Schema) -> Schema:
    """``paths`` and the root-level copy of each aliased ``/v1`` path in it."""
    out: Schema = dict(paths)
    for path, item in paths.items():
        bare = bare_form(path)
        if bare is None:
            continue
        alias = copy.deepcopy(item)
        for operation in alias.values():
            operation["operationId"] = operation["operationId"] + "Bare"
            operation["summary"] = f"{operation['summary']} (alias of {path})"
        out[bare] = alias
    return out
