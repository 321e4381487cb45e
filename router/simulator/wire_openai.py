"""OpenAI chat completions as the simulator speaks them (the Azure flavour: wire_azure.py).

Errors, rate-limit headers and stream chunks follow what api.openai.com sends: ``{"error": {message,
type, param, code}}`` bodies, ``x-ratelimit-{limit,remaining,reset}-{requests,tokens}`` headers on
every answer (resets as Go durations) and ``data: [DONE]`` closing a stream, with a last chunk
carrying ``usage`` when ``stream_options.include_usage`` is set.
"""

from __future__ import annotations

import math
import time
from typing import Any

from aiohttp import web

from router.simulator.limits import LimitView, Rejection
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
from router.simulator.structured import response_schema
from router.simulator.wire import (
    Answer,
    StreamPlan,
    Wire,
    WireError,
    as_int,
    completion_override,
    go_duration,
    masked,
    request_id,
    sse,
)

_RATE_DOCS = "Visit https://platform.openai.com/account/rate-limits to learn more."
_SCOPES = {
    "requests": ("requests per min (RPM)", "requests"),
    "tokens": ("tokens per min (TPM)", "tokens"),
    "requests_per_day": ("requests per day (RPD)", "requests"),
}


def _error(
    message: str, type_: str | None, code: str | None, param: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


class OpenAIWire(Wire):
    name = "openai"

    def secret(self, request: web.Request) -> str | None:
        auth = request.headers.get("Authorization", "")
        return auth[7:].strip() or None if auth[:7].lower() == "bearer " else None

    def model_of(self, body: dict[str, Any], request: web.Request) -> Any:
        return body.get("model")

    def parse(self, body: Any, request: web.Request) -> Call:
        if not isinstance(body, dict):
            raise WireError("We could not parse the JSON body of your request.")
        model = self.model_of(body, request)
        if not isinstance(model, str) or not model:
            raise WireError("you must provide a model parameter", "model")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise WireError("[] is too short - 'messages'", "messages")
        for index, message in enumerate(messages):
            if not isinstance(message, dict) or not isinstance(message.get("role"), str):
                raise WireError(
                    f"Invalid value for 'messages[{index}]': expected an object with a role.",
                    f"messages.[{index}]",
                )
        max_tokens = as_int(body.get("max_completion_tokens", body.get("max_tokens")), "max_tokens")
        options = body.get("stream_options") or {}
        tools = tuple(
            str((t.get("function") or {}).get("name", ""))
            for t in body.get("tools") or []
            if isinstance(t, dict)
        )
        return Call(
            provider=self.name,
            model=model,
            messages=messages,
            max_tokens=max_tokens,
            stream=bool(body.get("stream")),
            include_usage=bool(isinstance(options, dict) and options.get("include_usage")),
            tool_names=tools,
            forced_tool=_forced_tool(body.get("tool_choice"), tools),
            completion_tokens=completion_override(request),
            response_schema=response_schema(body.get("response_format")),
        )

    # -- answers -------------------------------------------------------------------------
    def answer(self, call: Call, outcome: Outcome) -> Answer:
        if isinstance(outcome, Admitted):
            return self._success(call, outcome)
        if isinstance(outcome, Limited):
            return self._limited(call, outcome.rejection, outcome.view)
        if isinstance(outcome, Denied):
            return self._denied(outcome)
        if isinstance(outcome, NotFound):
            message = f"The model `{outcome.model}` does not exist or you do not have access to it."
            return Answer(404, _error(message, "invalid_request_error", "model_not_found"))
        if isinstance(outcome, Invalid):
            return self._invalid(outcome)
        return self._fault(call, outcome)

    def _success(self, call: Call, admitted: Admitted) -> Answer:
        if admitted.filtered:
            return self._filtered(admitted)
        reply = admitted.reply
        message: dict[str, Any] = {
            "role": "assistant",
            "content": reply.text or None,
            "refusal": None,
        }
        if reply.tool_call is not None:
            message["tool_calls"] = [
                {
                    "id": reply.tool_call.id,
                    "type": "function",
                    "function": {
                        "name": reply.tool_call.name,
                        "arguments": reply.tool_call.arguments,
                    },
                }
            ]
        body = {
            **self._envelope(call, admitted, "chat.completion"),
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": reply.finish_reason,
                }
            ],
            "usage": self._usage(admitted.prompt_tokens, reply.completion_tokens),
        }
        return Answer(200, body, self.limit_headers(admitted.view))

    def _filtered(self, admitted: Admitted) -> Answer:
        message = (
            "Invalid prompt: your prompt was flagged as potentially violating our usage policy. "
            "Please try again with a different prompt."
        )
        return Answer(
            400,
            _error(message, "invalid_request_error", "invalid_prompt"),
            self.limit_headers(admitted.view),
        )

    @staticmethod
    def _envelope(call: Call, admitted: Admitted, kind: str) -> dict[str, Any]:
        return {
            "id": "chatcmpl-sim" + admitted.request_id,
            "object": kind,
            "created": int(time.time()),
            "model": call.model,
            "system_fingerprint": "fp_sim",
            "service_tier": "default",
        }

    @staticmethod
    def _usage(prompt: int, completion: int) -> dict[str, Any]:
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }

    def _limited(self, call: Call, rejection: Rejection, view: LimitView | None) -> Answer:
        what, type_ = _SCOPES.get(rejection.scope, _SCOPES["tokens"])
        org = "org-simulator"
        if rejection.too_large:
            message = (
                f"Request too large for {call.model} in organization {org} on {what}: Limit "
                f"{rejection.limit}, "
                f"Requested {math.ceil(rejection.requested)}. The input or output tokens must "
                "be reduced in "
                f"order to run successfully. {_RATE_DOCS}"
            )
        else:
            message = (
                f"Rate limit reached for {call.model} in organization {org} on {what}: Limit "
                f"{rejection.limit}, "
                f"Used {math.ceil(rejection.used)}, Requested "
                f"{math.ceil(rejection.requested)}. Please try "
                f"again in {go_duration(rejection.retry_after)}. {_RATE_DOCS}"
            )
        return Answer(429, _error(message, type_, "rate_limit_exceeded"), self.limit_headers(view))

    def _denied(self, denied: Denied) -> Answer:
        if denied.reason == "missing":
            message = (
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header "
                "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY). You can obtain an "
                "API key from "
                "https://platform.openai.com/account/api-keys."
            )
            return Answer(401, _error(message, "invalid_request_error", None))
        message = (
            f"Incorrect API key provided: {masked(denied.secret)}. You can find your API key at "
            "https://platform.openai.com/account/api-keys."
        )
        return Answer(401, _error(message, "invalid_request_error", "invalid_api_key"))

    def _invalid(self, invalid: Invalid) -> Answer:
        if invalid.reason == "max_tokens":
            message = (
                f"max_tokens is too large: {invalid.max_tokens}. This model supports at most "
                f"{invalid.limit} "
                f"completion tokens, whereas you provided {invalid.max_tokens}."
            )
            return Answer(
                400, _error(message, "invalid_request_error", "invalid_value", "max_tokens")
            )
        completion = invalid.max_tokens or 0
        message = (
            f"This model's maximum context length is {invalid.limit} tokens. However, you "
            "requested "
            f"{invalid.prompt_tokens + completion} tokens ({invalid.prompt_tokens} in the "
            "messages, "
            f"{completion} in the completion). Please reduce the length of the messages or "
            "completion."
        )
        return Answer(
            400, _error(message, "invalid_request_error", "context_length_exceeded", "messages")
        )

    def _fault(self, call: Call, fault: Fault) -> Answer:
        if fault.kind == "spurious_429":
            message = (
                f"Rate limit reached for {call.model} in organization org-simulator on "
                "requests per min (RPM): "
                f"Please try again in 1s. {_RATE_DOCS}"
            )
            return Answer(
                429,
                _error(message, "requests", "rate_limit_exceeded"),
                self.limit_headers(fault.view),
            )
        if fault.kind == "overload":
            message = "The engine is currently overloaded, please try again later."
            return Answer(fault.status, _error(message, "server_error", None))
        message = "The server had an error while processing your request. Sorry about that!"
        return Answer(fault.status, _error(message, "server_error", None))

    def invalid_request(self, error: WireError) -> Answer:
        return Answer(400, _error(error.message, "invalid_request_error", None, error.param))

    def limit_headers(self, view: LimitView | None) -> dict[str, str]:
        headers = {
            "x-request-id": request_id(),
            "openai-version": "2020-10-01",
            "openai-processing-ms": "1",
        }
        if view is None:
            return headers
        for scope, limit, remaining, reset in (
            ("requests", view.requests_limit, view.requests_remaining, view.requests_reset),
            ("tokens", view.tokens_limit, view.tokens_remaining, view.tokens_reset),
        ):
            if limit is not None and remaining is not None:
                headers[f"x-ratelimit-limit-{scope}"] = str(limit)
                headers[f"x-ratelimit-remaining-{scope}"] = str(remaining)
                headers[f"x-ratelimit-reset-{scope}"] = go_duration(reset)
        return headers

    # -- streams -------------------------------------------------------------------------
    def stream(self, call: Call, admitted: Admitted) -> StreamPlan:
        envelope = self._envelope(call, admitted, "chat.completion.chunk")
        usage_field: dict[str, Any] = {"usage": None} if call.include_usage else {}
        reply = admitted.reply

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            return sse({**envelope, "choices": [choice], **usage_field})

        head = [chunk({"role": "assistant", "content": "", "refusal": None})]
        content = [chunk({"content": piece}) for piece in reply.pieces]
        if reply.tool_call is not None:
            call_ = reply.tool_call
            content = [
                chunk(
                    {
                        "tool_calls": [
                            {
                                "index": 0,
                                "id": call_.id,
                                "type": "function",
                                "function": {"name": call_.name, "arguments": ""},
                            }
                        ]
                    }
                ),
                chunk({"tool_calls": [{"index": 0, "function": {"arguments": call_.arguments}}]}),
            ]
        tail = [chunk({}, reply.finish_reason)]
        if call.include_usage:
            usage = self._usage(admitted.prompt_tokens, reply.completion_tokens)
            tail.append(sse({**envelope, "choices": [], "usage": usage}))
        tail.append(b"data: [DONE]\n\n")
        return StreamPlan(self.limit_headers(admitted.view), head, content, tail)


def _forced_tool(choice: Any, tools: tuple[str, ...]) -> str | None:
    if not tools:
        return None
    if choice == "required":
        return tools[0]
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        return str(name) if name else None
    return None
