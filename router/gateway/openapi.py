"""The OpenAPI 3.1 document of the gateway's own routes, served at ``GET /openapi.json``.

Written out here rather than generated, so that it says what the gateway promises: the request
fields it checks, every status code a route may answer, and OpenAI's error shape for all of them.
A test compares it with the routes the application really has, and schemathesis fuzzes the
gateway against it.
"""

from __future__ import annotations

from typing import Any

from router.gateway.admin import PREFIX as ADMIN

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
STATUS_TEXT = {
    400: "Bad request: the error's `param` names the field",
    401: "Missing or invalid key",
    403: "The key may not do this (model not allowed; admin API disabled; a base_url or "
    "secret_ref the admin policy does not allow)",
    404: "Unknown model, key or route",
    405: "Method not allowed",
    413: "Request body too large",
    429: "No room: a limit of the gateway or of the pool; `Retry-After` says when to retry",
    502: "The provider failed the call",
    503: "Not ready, shutting down, store unavailable, or no key can serve",
    504: "The provider did not answer in time",
}
TEXT: Schema = {"type": "string"}
OBJECT: Schema = {"type": "object"}


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _responses(
    ok: int, schema: Schema, errors: tuple[int, ...], media: str = "application/json"
) -> Schema:
    out: Schema = {str(ok): {"description": "Success", "content": {media: {"schema": schema}}}}
    for status in errors:
        out[str(status)] = {
            "description": STATUS_TEXT[status],
            "content": {"application/json": {"schema": _ref("Error")}},
        }
    return out


def _envelope(data: Schema) -> Schema:
    return {
        "type": "object",
        "required": ["success", "data"],
        "properties": {"success": {"const": True}, "data": data},
    }


def _op(summary: str, responses: Schema, *, security: str | None = None, **extra: Any) -> Schema:
    op: Schema = {"summary": summary, "responses": responses, **extra}
    op["security"] = [{security: []}] if security else []
    return op


def _body(schema: Schema, example: Any = None) -> Schema:
    media: Schema = {"schema": schema}
    if example is not None:
        media["example"] = example
    return {"required": True, "content": {"application/json": media}}


def _path_param(name: str, pattern: str | None = None) -> Schema:
    schema: Schema = {"type": "string", "minLength": 1}
    if pattern:
        schema["pattern"] = pattern
    return {"name": name, "in": "path", "required": True, "schema": schema}


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


def _messages() -> Schema:
    text_or_parts = {
        "anyOf": [{"type": "string"}, {"type": "array", "items": TEXT_PART}],
    }
    name = {"type": "string", "minLength": 1, "maxLength": 256}
    return {
        "type": "array",
        "minItems": 1,
        "items": {
            "anyOf": [
                {
                    "type": "object",
                    "required": ["role", "content"],
                    "properties": {
                        "role": {"enum": ["system", "developer"]},
                        "content": text_or_parts,
                        "name": name,
                    },
                },
                {
                    "type": "object",
                    "required": ["role", "content"],
                    "properties": {
                        "role": {"const": "user"},
                        "content": {
                            "anyOf": [
                                {"type": "string"},
                                {"type": "array", "items": {"anyOf": [TEXT_PART, IMAGE_PART]}},
                            ]
                        },
                        "name": name,
                    },
                },
                {
                    "type": "object",
                    "required": ["role", "content"],
                    "properties": {
                        "role": {"const": "assistant"},
                        "content": {"type": "string"},
                        "tool_calls": {"type": "array", "items": TOOL_CALL},
                        "name": name,
                    },
                },
                {
                    "type": "object",
                    "required": ["role", "content", "tool_call_id"],
                    "properties": {
                        "role": {"const": "tool"},
                        "content": text_or_parts,
                        "tool_call_id": {"type": "string", "minLength": 1},
                    },
                },
            ]
        },
    }


def _chat_request() -> Schema:
    number = {"type": "number"}
    return {
        "type": "object",
        "required": ["model", "messages"],
        "properties": {
            "model": {"type": "string", "minLength": 1, "maxLength": 256},
            "messages": _messages(),
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
            "tool_choice": {
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
            },
            "response_format": {
                "type": "object",
                "required": ["type"],
                "properties": {"type": {"enum": ["text", "json_object"]}},
            },
            "parallel_tool_calls": {"type": "boolean"},
        },
    }


def _chat_completion() -> Schema:
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


def _vkey_spec() -> Schema:
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


def _vkey() -> Schema:
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


def _model() -> Schema:
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


def _openai_paths() -> Schema:
    chat_errors = (400, 401, 403, 404, 413, 429, 502, 503, 504)
    chat_ok = _responses(200, _ref("ChatCompletion"), chat_errors)
    chat_ok["200"]["content"]["text/event-stream"] = {
        "schema": {
            "type": "object",
            "description": "one server-sent event: a chat.completion.chunk as JSON in `data`, "
            "an error object after a failure mid-stream, and `[DONE]` last",
            "required": ["data"],
            "properties": {"data": {"type": "string"}, "event": {"type": "string"}},
        }
    }
    example = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello!"}]}
    model_list = {
        "type": "object",
        "required": ["object", "data"],
        "properties": {
            "object": {"const": "list"},
            "data": {"type": "array", "items": _ref("Model")},
        },
    }
    return {
        "/v1/chat/completions": {
            "post": _op(
                "Create a chat completion (OpenAI-compatible; stream with SSE)",
                chat_ok,
                security="virtualKey",
                operationId="createChatCompletion",
                requestBody=_body(_ref("ChatCompletionRequest"), example),
            )
        },
        "/v1/models": {
            "get": _op(
                "Models and aliases the pool serves (those the key may use)",
                _responses(200, model_list, (401, 503)),
                security="virtualKey",
                operationId="listModels",
            )
        },
        "/v1/models/{model}": {
            "get": _op(
                "One model",
                _responses(200, _ref("Model"), (401, 404, 503)),
                security="virtualKey",
                operationId="retrieveModel",
                parameters=[_path_param("model")],
            )
        },
    }


def _ops_paths() -> Schema:
    anything = {"type": "object"}
    return {
        "/health": {"get": _op("Liveness", _responses(200, anything, ()), operationId="health")},
        "/health/ready": {
            "get": _op(
                "Readiness: keys loaded, store and secret store answering, not draining",
                {
                    "200": {
                        "description": "Ready",
                        "content": {"application/json": {"schema": anything}},
                    },
                    "503": {
                        "description": "Not ready",
                        "content": {"application/json": {"schema": anything}},
                    },
                },
                operationId="ready",
            )
        },
        "/status": {
            "get": _op("Pool summary", _responses(200, anything, ()), operationId="status")
        },
        "/metrics": {
            "get": _op(
                "Prometheus metrics (with METRICS_TOKEN set, it is needed as a bearer token)",
                _responses(200, TEXT, (401,), media="text/plain"),
                operationId="metrics",
            )
        },
        "/openapi.json": {
            "get": _op("This document", _responses(200, anything, ()), operationId="openapi")
        },
    }


def _admin_paths() -> Schema:
    key_id = [_path_param("key_id")]
    vkey_id = [_path_param("vkey_id")]
    status = _envelope(OBJECT)
    errors = (400, 401, 403, 404, 503)
    listing = _envelope({"type": "array", "items": OBJECT})

    def admin(summary: str, ok: Schema, code: int = 200, **extra: Any) -> Schema:
        return _op(summary, _responses(code, ok, errors), security="masterKey", **extra)

    key_body = _body(
        OBJECT,
        {"key_id": "openai-2", "model_name": "gpt-4o-mini", "provider": "openai", "rpm": 500},
    )
    cooldown = {
        "required": False,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "seconds": {"type": "number", "exclusiveMinimum": 0, "maximum": 2592000},
                        "reason": {"type": "string", "maxLength": 200},
                    },
                }
            }
        },
    }
    return {
        f"{ADMIN}/openai/stats": {
            "get": admin("Key statistics (document 001's shape)", status, operationId="openaiStats")
        },
        f"{ADMIN}/keys": {
            "get": admin("Every key's status", listing, operationId="listKeys"),
            "post": admin(
                "Add a key (metadata; its secret comes from the secret store)",
                status,
                201,
                operationId="addKey",
                requestBody=key_body,
            ),
        },
        f"{ADMIN}/keys/{{key_id}}": {
            "get": admin("One key's status", status, operationId="getKey", parameters=key_id),
            "patch": admin(
                "Change a key's metadata",
                status,
                operationId="updateKey",
                parameters=key_id,
                requestBody=_body(OBJECT, {"rpm": 1000}),
            ),
            "delete": admin("Remove a key", status, operationId="removeKey", parameters=key_id),
        },
        f"{ADMIN}/keys/{{key_id}}/activate": {
            "post": admin("Activate a key", status, operationId="activateKey", parameters=key_id)
        },
        f"{ADMIN}/keys/{{key_id}}/deactivate": {
            "post": admin(
                "Deactivate a key", status, operationId="deactivateKey", parameters=key_id
            )
        },
        f"{ADMIN}/keys/{{key_id}}/cooldown": {
            "post": admin(
                "Cool a key down",
                status,
                operationId="setCooldown",
                parameters=key_id,
                requestBody=cooldown,
            ),
            "delete": admin(
                "Clear a key's cooldown", status, operationId="clearCooldown", parameters=key_id
            ),
        },
        f"{ADMIN}/reload": {
            "post": admin("Reload keys from every source", status, operationId="reloadKeys")
        },
        f"{ADMIN}/save": {
            "post": admin("Write the pool's metadata to keys.json", status, operationId="saveKeys")
        },
        f"{ADMIN}/vkeys": {
            "get": admin(
                "Virtual keys",
                _envelope({"type": "array", "items": _ref("VirtualKey")}),
                operationId="listVirtualKeys",
            ),
            "post": admin(
                "Create a virtual key (the key is in this answer only)",
                _envelope(_ref("VirtualKey")),
                201,
                operationId="createVirtualKey",
                requestBody=_body(
                    _ref("VirtualKeySpec"),
                    {"name": "ci", "user_id": "alice", "models": ["gpt-4o*"], "rpm": 60},
                ),
            ),
        },
        f"{ADMIN}/vkeys/{{vkey_id}}": {
            "get": admin(
                "One virtual key",
                _envelope(_ref("VirtualKey")),
                operationId="getVirtualKey",
                parameters=vkey_id,
            ),
            "delete": admin(
                "Revoke a virtual key",
                _envelope(_ref("VirtualKey")),
                operationId="revokeVirtualKey",
                parameters=vkey_id,
            ),
        },
    }


def build_openapi(version: str = "0") -> Schema:
    """The gateway's OpenAPI document."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "LLM key-pool router gateway",
            "version": version,
            "description": "OpenAI-compatible chat completions over a shared pool of provider keys, "
            "with virtual keys, per-user and global limits, and an admin API.",
        },
        "paths": {**_openai_paths(), **_ops_paths(), **_admin_paths()},
        "components": {
            "securitySchemes": {
                "virtualKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "a virtual key (sk-llmr-...)",
                },
                "masterKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "ROUTER_MASTER_KEY",
                },
            },
            "schemas": {
                "Error": ERROR,
                "ChatCompletionRequest": _chat_request(),
                "ChatCompletion": _chat_completion(),
                "Model": _model(),
                "VirtualKeySpec": _vkey_spec(),
                "VirtualKey": _vkey(),
            },
        },
    }
