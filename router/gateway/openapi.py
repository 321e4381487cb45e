"""The OpenAPI 3.1 document of the gateway's own routes, served at ``GET /openapi.json``.

Written out here rather than generated, so that it says what the gateway promises: the request
fields it checks, every status code a route may answer, and OpenAI's error shape for all of them.
A test compares it with the routes the application really has, and schemathesis fuzzes the
gateway against it. The paths are here; the request and answer schemas in openapi_schemas.py.
"""

from __future__ import annotations

from typing import Any

from router.gateway.admin import PREFIX as ADMIN
from router.gateway.openapi_anthropic import (
    anthropic_paths,
    anthropic_schemas,
    anthropic_security,
)
from router.gateway.openapi_embeddings import embeddings_paths, embeddings_schemas
from router.gateway.openapi_responses import (
    response_schema,
    responses_path,
    responses_request_schema,
    with_bare_aliases,
)
from router.gateway.openapi_schemas import (
    ERROR,
    OBJECT,
    TEXT,
    Schema,
    chat_completion_schema,
    chat_request_schema,
    model_schema,
    vkey_schema,
    vkey_spec_schema,
)
from router.gateway.openapi_usage import usage_paths, usage_schemas

STATUS_TEXT = {
    400: "Bad request: the error's `param` names the field",
    401: "Missing or invalid key",
    403: "The key may not do this (model not allowed; admin API disabled; a base_url or "
    "secret_ref the admin policy does not allow)",
    404: "Unknown model, key, virtual key, budget or route (the message lists the API routes)",
    405: "Method not allowed",
    413: "Request body too large",
    429: "No room: a limit of the gateway or of the pool; `Retry-After` says when to retry",
    502: "The provider failed the call",
    503: "Not ready, shutting down, store unavailable, or no key can serve",
    504: "The provider did not answer in time",
}


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


_ADMIN_ERRORS = (400, 401, 403, 404, 503)


def _admin(summary: str, ok: Schema, code: int = 200, **extra: Any) -> Schema:
    """An admin operation: master key, the admin API's errors."""
    return _op(summary, _responses(code, ok, _ADMIN_ERRORS), security="masterKey", **extra)


def _admin_paths() -> Schema:
    return {**_key_paths(), **_key_action_paths(), **_vkey_paths(), **usage_paths(ADMIN)}


def _key_paths() -> Schema:
    status, key_id = _envelope(OBJECT), [_path_param("key_id")]
    listing = _envelope({"type": "array", "items": OBJECT})
    key_body = _body(
        OBJECT,
        {"key_id": "openai-2", "model_name": "gpt-4o-mini", "provider": "openai", "rpm": 500},
    )
    return {
        f"{ADMIN}/openai/stats": {
            "get": _admin(
                "Key statistics (document 001's shape)", status, operationId="openaiStats"
            )
        },
        f"{ADMIN}/keys": {
            "get": _admin("Every key's status", listing, operationId="listKeys"),
            "post": _admin(
                "Add a key (metadata; its secret comes from the secret store)",
                status,
                201,
                operationId="addKey",
                requestBody=key_body,
            ),
        },
        f"{ADMIN}/keys/{{key_id}}": {
            "get": _admin("One key's status", status, operationId="getKey", parameters=key_id),
            "patch": _admin(
                "Change a key's metadata",
                status,
                operationId="updateKey",
                parameters=key_id,
                requestBody=_body(OBJECT, {"rpm": 1000}),
            ),
            "delete": _admin("Remove a key", status, operationId="removeKey", parameters=key_id),
        },
    }


def _key_action_paths() -> Schema:
    status, key_id = _envelope(OBJECT), [_path_param("key_id")]
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
        f"{ADMIN}/keys/{{key_id}}/activate": {
            "post": _admin("Activate a key", status, operationId="activateKey", parameters=key_id)
        },
        f"{ADMIN}/keys/{{key_id}}/deactivate": {
            "post": _admin(
                "Deactivate a key", status, operationId="deactivateKey", parameters=key_id
            )
        },
        f"{ADMIN}/keys/{{key_id}}/cooldown": {
            "post": _admin(
                "Cool a key down",
                status,
                operationId="setCooldown",
                parameters=key_id,
                requestBody=cooldown,
            ),
            "delete": _admin(
                "Clear a key's cooldown", status, operationId="clearCooldown", parameters=key_id
            ),
        },
        f"{ADMIN}/reload": {
            "post": _admin("Reload keys from every source", status, operationId="reloadKeys")
        },
        f"{ADMIN}/save": {
            "post": _admin("Write the pool's metadata to keys.json", status, operationId="saveKeys")
        },
    }


def _vkey_paths() -> Schema:
    vkey_id = [_path_param("vkey_id")]
    return {
        f"{ADMIN}/vkeys": {
            "get": _admin(
                "Virtual keys",
                _envelope({"type": "array", "items": _ref("VirtualKey")}),
                operationId="listVirtualKeys",
            ),
            "post": _admin(
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
            "get": _admin(
                "One virtual key",
                _envelope(_ref("VirtualKey")),
                operationId="getVirtualKey",
                parameters=vkey_id,
            ),
            "delete": _admin(
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
        "paths": with_bare_aliases(
            {
                **_openai_paths(),
                **embeddings_paths(),
                **responses_path(_op, _responses, _body, _ref),
                **anthropic_paths(),
                **_ops_paths(),
                **_admin_paths(),
            }
        ),
        "components": {
            "securitySchemes": {
                "virtualKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "a virtual key (sk-llmr-...)",
                },
                **anthropic_security(),
                "masterKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "ROUTER_MASTER_KEY",
                },
            },
            "schemas": {
                "Error": ERROR,
                "ChatCompletionRequest": chat_request_schema(),
                "ChatCompletion": chat_completion_schema(),
                "ResponseRequest": responses_request_schema(),
                "Response": response_schema(),
                "Model": model_schema(),
                "VirtualKeySpec": vkey_spec_schema(),
                "VirtualKey": vkey_schema(),
                **usage_schemas(),
                **embeddings_schemas(),
                **anthropic_schemas(),
            },
        },
    }
