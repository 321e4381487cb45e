"""Structured output in the simulator: a JSON answer that matches the request's JSON Schema.

An OpenAI chat request with ``response_format`` ``json_schema`` gets, as its content, the JSON of
a value built from the schema (every required property, the first enum value or const, arrays of
one item, ``$ref`` into ``$defs``); ``json_object`` gets a small object. Deterministic, so
``client.chat.completions.parse`` and ``client.responses.parse`` work against the simulator.
"""

from __future__ import annotations

import json
from typing import Any

from kernel.tokens import encoding_name_for, get_encoding
from router.simulator.content import Reply, count_text_tokens

_MAX_DEPTH = 12
_STRING_FORMATS = {
    "date-time": "2024-01-01T00:00:00Z",
    "date": "2024-01-01",
    "time": "00:00:00",
    "email": "sim@example.com",
    "uri": "https://example.com/",
    "uuid": "00000000-0000-4000-8000-000000000000",
}


def response_schema(response_format: Any) -> dict[str, Any] | None:
    """The schema a ``response_format`` asks for: the JSON Schema, ``{}`` for json_object."""
    if not isinstance(response_format, dict):
        return None
    kind = response_format.get("type")
    if kind == "json_object":
        return {}
    if kind != "json_schema":
        return None
    spec = response_format.get("json_schema")
    schema = spec.get("schema") if isinstance(spec, dict) else None
    return schema if isinstance(schema, dict) else {}


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if not isinstance(ref, str) or not ref.startswith("#/"):
        return schema
    target: Any = root
    for part in ref[2:].split("/"):
        target = target.get(part, {}) if isinstance(target, dict) else {}
    return target if isinstance(target, dict) else {}


def _type_of(schema: dict[str, Any]) -> str | None:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None and "properties" in schema:
        return "object"
    return kind if isinstance(kind, str) else None


def _choice(schema: dict[str, Any]) -> dict[str, Any] | None:
    for name in ("anyOf", "oneOf", "allOf"):
        options = schema.get(name)
        if isinstance(options, list) and options:
            real = [o for o in options if isinstance(o, dict) and o.get("type") != "null"]
            return real[0] if real else options[0]
    return None


def _string(schema: dict[str, Any]) -> str:
    text = _STRING_FORMATS.get(str(schema.get("format")), "sample")
    minimum = schema.get("minLength")
    if isinstance(minimum, int) and len(text) < minimum:
        text = text + "x" * (minimum - len(text))
    return text


def _number(schema: dict[str, Any], integer: bool) -> int | float:
    low = schema.get("minimum", schema.get("exclusiveMinimum"))
    value = low + 1 if isinstance(low, int | float) else 1
    return int(value) if integer else float(value)


def sample(schema: dict[str, Any], root: dict[str, Any] | None = None, depth: int = 0) -> Any:
    """A value that the (simple) JSON Schema ``schema`` accepts."""
    root = schema if root is None else root
    schema = _resolve(schema, root)
    if depth > _MAX_DEPTH:
        return None
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    chosen = _choice(schema)
    if chosen is not None:
        return sample(chosen, root, depth + 1)
    return _typed(schema, _type_of(schema), root, depth)


def _typed(schema: dict[str, Any], kind: str | None, root: dict[str, Any], depth: int) -> Any:
    if kind == "object":
        properties = schema.get("properties") or {}
        required = schema.get("required", list(properties))
        return {
            name: sample(properties.get(name) or {}, root, depth + 1)
            for name in required
            if isinstance(name, str)
        }
    if kind == "array":
        items = schema.get("items")
        count = max(1, int(schema.get("minItems") or 1))
        return [sample(items if isinstance(items, dict) else {}, root, depth + 1)] * count
    if kind == "string":
        return _string(schema)
    if kind in ("integer", "number"):
        return _number(schema, kind == "integer")
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return {"reply": "sample"} if depth == 0 else "sample"


def json_reply(model: str, schema: dict[str, Any], max_tokens: int | None, chunk: int) -> Reply:
    """The JSON answer as a reply; cut (``length``) when ``max_tokens`` is too small for it."""
    text = json.dumps(sample(schema))
    encoder = get_encoding(encoding_name_for(model))
    if encoder is None:
        tokens = count_text_tokens(model, text)
        if max_tokens is not None and tokens > max_tokens:
            return Reply((text[: max_tokens * 4],), max_tokens, "length")
        return Reply((text,), tokens, "stop")
    ids = encoder.encode(text, disallowed_special=())
    finish = "stop"
    if max_tokens is not None and len(ids) > max_tokens:
        ids, finish = ids[:max_tokens], "length"
    decode = getattr(encoder, "decode")  # noqa: B009 - Encoder protocol only declares encode
    pieces = tuple(decode(ids[i : i + chunk]) for i in range(0, len(ids), max(1, chunk)))
    return Reply(pieces, len(ids), finish)
