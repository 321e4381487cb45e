"""Gemini's generateContent and streamGenerateContent as the simulator speaks them.

Key in ``x-goog-api-key`` (or ``?key=``). Errors are Google RPC statuses: ``{"error": {code,
message, status, details}}``. A wrong key gets 400 INVALID_ARGUMENT with an ``ErrorInfo`` whose
reason is ``API_KEY_INVALID``; a missing key 403 PERMISSION_DENIED; a revoked one 403 with reason
``CONSUMER_SUSPENDED``. A 429 is RESOURCE_EXHAUSTED with a ``google.rpc.QuotaFailure`` (its
``quotaId`` says per-minute or per-day) and a ``google.rpc.RetryInfo`` whose ``retryDelay`` is like
``"26s"``. Streams (``alt=sse``) are ``data:`` events, each a GenerateContentResponse carrying
``usageMetadata``. A blocked prompt gets ``promptFeedback.blockReason: SAFETY`` and no candidates.
"""

from __future__ import annotations

import json
import math
from typing import Any

from aiohttp import web

from router.simulator.limits import Rejection
from router.simulator.outcomes import (
    Admitted,
    Call,
    Denied,
    Fault,
    Invalid,
    Limited,
    NotFound,
    Outcome,
)
from router.simulator.wire import (
    Answer,
    StreamPlan,
    Wire,
    WireError,
    as_int,
    completion_override,
    sse,
)

_FINISH = {"stop": "STOP", "length": "MAX_TOKENS", "tool_calls": "STOP", "content_filter": "SAFETY"}
_ROLES = {"user": "user", "model": "assistant", "function": "tool", "tool": "tool"}
_QUOTA = {
    "requests": ("generate_content_requests", "GenerateRequestsPerMinutePerProjectPerModel"),
    "tokens": ("generate_content_input_token_count", "GenerateContentInputTokensPerModelPerMinute"),
    "requests_per_day": ("generate_content_requests", "GenerateRequestsPerDayPerProjectPerModel"),
}
_HELP = {
    "@type": "type.googleapis.com/google.rpc.Help",
    "links": [
        {
            "description": "Learn more about Gemini API quotas",
            "url": "https://ai.google.dev/gemini-api/docs/rate-limits",
        }
    ],
}
_SAFETY_CATEGORIES = (
    "HARM_CATEGORY_HATE_SPEECH",
    "HARM_CATEGORY_DANGEROUS_CONTENT",
    "HARM_CATEGORY_HARASSMENT",
    "HARM_CATEGORY_SEXUALLY_EXPLICIT",
)


def _status(
    code: int, status: str, message: str, details: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = details
    return {"error": error}


def _get(body: dict[str, Any], camel: str, snake: str) -> Any:
    return body.get(camel, body.get(snake))


def _error_info(reason: str) -> dict[str, Any]:
    return {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": reason,
        "domain": "googleapis.com",
        "metadata": {"service": "generativelanguage.googleapis.com"},
    }


class GeminiWire(Wire):
    name = "gemini"

    def secret(self, request: web.Request) -> str | None:
        return request.headers.get("x-goog-api-key") or request.query.get("key") or None

    def parse(self, body: Any, request: web.Request) -> Call:
        model, _, action = request.match_info["target"].partition(":")
        if action not in ("generateContent", "streamGenerateContent"):
            raise WireError(f"Method {action or 'none'} is not supported on models/{model}.")
        if not isinstance(body, dict):
            raise WireError("Invalid JSON payload received.")
        contents = body.get("contents")
        if not isinstance(contents, list) or not contents:
            raise WireError("* GenerateContentRequest.contents: contents is not specified")
        messages: list[dict[str, Any]] = []
        system = _get(body, "systemInstruction", "system_instruction")
        if isinstance(system, dict):
            messages.append({"role": "system", "content": system.get("parts") or []})
        for index, content in enumerate(contents):
            if not isinstance(content, dict) or not isinstance(content.get("parts"), list):
                raise WireError(
                    f"* GenerateContentRequest.contents[{index}].parts: contents.parts must "
                    "not be empty."
                )
            role = _ROLES.get(str(content.get("role") or "user"), "user")
            messages.append({"role": role, "content": _parts_text(content["parts"])})
        config = _get(body, "generationConfig", "generation_config") or {}
        max_tokens = as_int(
            _get(config, "maxOutputTokens", "max_output_tokens"), "max_output_tokens"
        )
        tools = _tool_names(body.get("tools"))
        return Call(
            provider=self.name,
            model=model.removeprefix("models/"),
            messages=messages,
            max_tokens=max_tokens,
            stream=action == "streamGenerateContent",
            tool_names=tools,
            forced_tool=_forced_tool(_get(body, "toolConfig", "tool_config"), tools),
            completion_tokens=completion_override(request),
        )

    def answer(self, call: Call, outcome: Outcome) -> Answer:
        if isinstance(outcome, Admitted):
            return Answer(200, self._response(call, outcome, outcome.reply.pieces, final=True))
        if isinstance(outcome, Limited):
            return self._limited(call, outcome.rejection)
        if isinstance(outcome, Denied):
            return self._denied(outcome)
        if isinstance(outcome, NotFound):
            message = (
                f"models/{outcome.model} is not found for API version v1beta, or is not "
                "supported for "
                "generateContent. Call ListModels to see the list of available models and "
                "their supported methods."
            )
            return Answer(404, _status(404, "NOT_FOUND", message))
        if isinstance(outcome, Invalid):
            return Answer(400, _status(400, "INVALID_ARGUMENT", self._invalid_text(outcome)))
        return self._fault(call, outcome)

    @staticmethod
    def _invalid_text(invalid: Invalid) -> str:
        if invalid.reason == "max_tokens":
            return (
                "Unable to submit request because it has a maxOutputTokens value of "
                f"{invalid.max_tokens} but the "
                f"supported range is from 1 (inclusive) to {invalid.limit + 1} (exclusive). "
                "Update the value and try again."
            )
        return (
            f"The input token count ({invalid.prompt_tokens}) exceeds the maximum number of "
            "tokens allowed "
            f"({invalid.limit})."
        )

    def _response(
        self,
        call: Call,
        admitted: Admitted,
        pieces: tuple[str, ...] | list[str],
        *,
        final: bool,
        completion: int | None = None,
    ) -> dict[str, Any]:
        reply = admitted.reply
        prompt = admitted.prompt_tokens
        done = reply.completion_tokens if completion is None else completion
        usage: dict[str, Any] = {
            "promptTokenCount": prompt,
            "candidatesTokenCount": done,
            "totalTokenCount": prompt + done,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}],
        }
        body: dict[str, Any] = {
            "usageMetadata": usage,
            "modelVersion": call.model,
            "responseId": "sim" + admitted.request_id,
        }
        if admitted.filtered:
            ratings = [
                {"category": c, "probability": "HIGH" if i == 0 else "NEGLIGIBLE"}
                for i, c in enumerate(_SAFETY_CATEGORIES)
            ]
            body["promptFeedback"] = {"blockReason": "SAFETY", "safetyRatings": ratings}
            usage.pop("candidatesTokenCount")
            return body
        parts: list[dict[str, Any]] = [{"text": piece} for piece in pieces]
        if reply.tool_call is not None:
            parts = [{"functionCall": {"name": reply.tool_call.name, "args": {}}}]
        candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
        if final:
            candidate["finishReason"] = _FINISH[reply.finish_reason]
        body["candidates"] = [candidate]
        return body

    def _limited(self, call: Call, rejection: Rejection) -> Answer:
        metric, quota_id = _QUOTA.get(rejection.scope, _QUOTA["tokens"])
        delay = max(1, math.ceil(rejection.retry_after))
        violation = {
            "quotaMetric": f"generativelanguage.googleapis.com/{metric}",
            "quotaId": quota_id,
            "quotaDimensions": {"location": "global", "model": call.model},
            "quotaValue": str(rejection.limit),
        }
        message = (
            "You exceeded your current quota, please check your plan and billing details. For "
            "more information on "
            "this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.\n"
            f"* Quota exceeded for metric: {violation['quotaMetric']}, limit: "
            f"{rejection.limit}, model: {call.model}\n"
            f"Please retry in {delay}s."
        )
        details: list[dict[str, Any]] = [
            {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [violation]},
            _HELP,
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{delay}s"},
        ]
        return Answer(429, _status(429, "RESOURCE_EXHAUSTED", message, details))

    def _denied(self, denied: Denied) -> Answer:
        if denied.reason == "missing":
            message = (
                "Method doesn't allow unregistered callers (callers without established "
                "identity). Please use API "
                "Key or other form of API consumer identity to call this API."
            )
            return Answer(403, _status(403, "PERMISSION_DENIED", message))
        if denied.reason == "revoked":
            message = "Permission denied: Consumer 'api_key:simulated' has been suspended."
            return Answer(
                403, _status(403, "PERMISSION_DENIED", message, [_error_info("CONSUMER_SUSPENDED")])
            )
        message = "API key not valid. Please pass a valid API key."
        localized = {
            "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
            "locale": "en-US",
            "message": message,
        }
        return Answer(
            400,
            _status(400, "INVALID_ARGUMENT", message, [_error_info("API_KEY_INVALID"), localized]),
        )

    def _fault(self, call: Call, fault: Fault) -> Answer:
        if fault.kind == "spurious_429":
            return self._limited(call, Rejection("requests", 1.0, 0, 0, 1))
        if fault.kind == "overload":
            return Answer(
                503, _status(503, "UNAVAILABLE", "The model is overloaded. Please try again later.")
            )
        message = (
            "An internal error has occurred. Please retry or report in "
            "https://developers.generativeai.google/guide/troubleshooting"
        )
        return Answer(fault.status, _status(fault.status, "INTERNAL", message))

    def invalid_request(self, error: WireError) -> Answer:
        return Answer(400, _status(400, "INVALID_ARGUMENT", error.message))

    def stream(self, call: Call, admitted: Admitted) -> StreamPlan:
        reply = admitted.reply
        if admitted.filtered:
            return StreamPlan({}, [], [], [sse(self._response(call, admitted, (), final=True))])
        if reply.tool_call is not None:
            return StreamPlan({}, [], [], [sse(self._response(call, admitted, (), final=True))])
        content: list[bytes] = []
        pieces = reply.pieces
        done = 0
        per_piece = max(1, math.ceil(reply.completion_tokens / max(1, len(pieces))))
        for index, piece in enumerate(pieces):
            last = index == len(pieces) - 1
            done = (
                reply.completion_tokens if last else min(reply.completion_tokens, done + per_piece)
            )
            content.append(
                sse(self._response(call, admitted, [piece], final=last, completion=done))
            )
        if not pieces:
            content.append(sse(self._response(call, admitted, [""], final=True)))
        return StreamPlan({}, [], content, [])

    def malformed(self) -> bytes:
        return b'{"candidates": [{"content": {"parts": [{"text": "broken'


def _parts_text(parts: list[Any]) -> list[Any]:
    """Parts for counting and the request log: function calls and responses as their JSON."""
    out: list[Any] = []
    for part in parts:
        if isinstance(part, dict) and ("functionCall" in part or "functionResponse" in part):
            inner = part.get("functionCall") or part.get("functionResponse") or {}
            out.append({"text": json.dumps(inner.get("args") or inner.get("response") or {})})
        else:
            out.append(part)
    return out


def _tool_names(tools: Any) -> tuple[str, ...]:
    names: list[str] = []
    for tool in tools or []:
        if isinstance(tool, dict):
            for decl in _get(tool, "functionDeclarations", "function_declarations") or []:
                if isinstance(decl, dict):
                    names.append(str(decl.get("name", "")))
    return tuple(names)


def _forced_tool(config: Any, tools: tuple[str, ...]) -> str | None:
    if not tools or not isinstance(config, dict):
        return None
    calling = _get(config, "functionCallingConfig", "function_calling_config") or {}
    if str(calling.get("mode", "")).upper() != "ANY":
        return None
    allowed = _get(calling, "allowedFunctionNames", "allowed_function_names") or []
    return str(allowed[0]) if allowed else tools[0]
