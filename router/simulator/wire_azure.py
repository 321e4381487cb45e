"""Azure OpenAI as the simulator speaks it: OpenAI chat completions (wire_openai.py) except where
Azure differs: the deployment in the path is the model, the auth header (``api-key``), the error
bodies (``{"error": {"code": "429", "message": ...}}``) and the 429 headers (``retry-after``,
``retry-after-ms``, remaining counts only).
"""

from __future__ import annotations

import math
from typing import Any

from aiohttp import web

from router.simulator.limits import LimitView, Rejection
from router.simulator.outcomes import Admitted, Call, Denied, Fault
from router.simulator.wire import Answer, WireError, request_id
from router.simulator.wire_openai import OpenAIWire


class AzureWire(OpenAIWire):
    """Azure OpenAI: the deployment in the path is the model; ``api-key`` header; Azure errors."""

    name = "azure"

    def secret(self, request: web.Request) -> str | None:
        return request.headers.get("api-key") or super().secret(request)

    def model_of(self, body: dict[str, Any], request: web.Request) -> Any:
        if not request.query.get("api-version"):
            raise WireError("Resource not found")
        return request.match_info["deployment"]

    def invalid_request(self, error: WireError) -> Answer:
        if error.message == "Resource not found":
            return Answer(404, {"error": {"code": "404", "message": "Resource not found"}})
        return super().invalid_request(error)

    def _denied(self, denied: Denied) -> Answer:
        message = (
            "Access denied due to invalid subscription key or wrong API endpoint. Make sure "
            "to provide a valid "
            "key for an active subscription and use a correct regional API endpoint for your "
            "resource."
        )
        return Answer(401, {"error": {"code": "401", "message": message}})

    def _filtered(self, admitted: Admitted) -> Answer:
        message = (
            "The response was filtered due to the prompt triggering Azure OpenAI's content "
            "management policy. "
            "Please modify your prompt and retry."
        )
        categories = ("hate", "self_harm", "sexual", "violence")
        result: dict[str, Any] = {
            c: {"filtered": c == "violence", "severity": "medium" if c == "violence" else "safe"}
            for c in categories
        }
        body = {
            "error": {
                "message": message,
                "type": None,
                "param": "prompt",
                "code": "content_filter",
                "status": 400,
                "innererror": {
                    "code": "ResponsibleAIPolicyViolation",
                    "content_filter_result": result,
                },
            }
        }
        return Answer(400, body, self.limit_headers(admitted.view))

    def _limited(self, call: Call, rejection: Rejection, view: LimitView | None) -> Answer:
        seconds = max(1, math.ceil(rejection.retry_after))
        kinds = {"tokens": "token rate limit", "requests_per_day": "daily request quota"}
        kind = kinds.get(rejection.scope, "call rate limit")
        message = (
            "Requests to the ChatCompletions_Create Operation under Azure OpenAI API version "
            "2024-10-21 have "
            f"exceeded {kind} of your current OpenAI S0 pricing tier. Please retry after "
            f"{seconds} seconds. "
            "Please go here: https://aka.ms/oai/quotaincrease if you would like to further "
            "increase the "
            "default rate limit."
        )
        headers = self.limit_headers(view)
        headers["retry-after"] = str(seconds)
        headers["retry-after-ms"] = str(math.ceil(rejection.retry_after * 1000))
        return Answer(429, {"error": {"code": "429", "message": message}}, headers)

    def _fault(self, call: Call, fault: Fault) -> Answer:
        if fault.kind == "spurious_429":
            return self._limited(call, Rejection("requests", 1.0, 0, 0, 1), fault.view)
        return super()._fault(call, fault)

    def limit_headers(self, view: LimitView | None) -> dict[str, str]:
        headers = {"apim-request-id": request_id(""), "x-ms-region": "Simulated"}
        if view is None:
            return headers
        if view.requests_remaining is not None:
            headers["x-ratelimit-remaining-requests"] = str(view.requests_remaining)
        if view.tokens_remaining is not None:
            headers["x-ratelimit-remaining-tokens"] = str(view.tokens_remaining)
        return headers
