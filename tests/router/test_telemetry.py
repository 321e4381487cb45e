"""OpenTelemetry export: one CLIENT span per usage record with the GenAI semantic conventions'
attributes and the router's own, checked with the SDK's in-memory exporter and, end to end, with a
real OTLP/HTTP receiver on loopback; never the prompt or completion text (canary)."""

from __future__ import annotations

import secrets
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from kernel.settings import Settings
from kernel.usage_record import UsageRecord
from router import telemetry
from router.telemetry import UsageSpans
from tests.helpers import log_events

TS = 1_800_000_000.25


def record(**fields: Any) -> UsageRecord:
    values: dict[str, Any] = {
        "ts": TS,
        "request_id": "req-1",
        "source": "gateway",
        "vkey": "vk-0123456789ab",
        "user": "alice",
        "team": "ml",
        "conversation_id": "conv-9",
        "requested_model": "gpt-4o",
        "model": "gpt-4o-2024-08-06",
        "provider": "openai",
        "key_id": "openai-a-1",
        "prompt_tokens": 1200,
        "completion_tokens": 300,
        "cached_tokens": 1000,
        "reasoning_tokens": 0,
        "cost": 0.00475,
        "latency_ms": 812.5,
        "wait_ms": 40.0,
        "provider_ms": 760.0,
        "attempts": 2,
        "rotations": 1,
        "fallback_used": False,
        "degraded": False,
    }
    values.update(fields)
    return UsageRecord(**values)


@pytest.fixture
def exported() -> Iterator[tuple[UsageSpans, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield UsageSpans(provider), exporter
    provider.shutdown()


def only_span(exporter: InMemorySpanExporter) -> ReadableSpan:
    (span,) = exporter.get_finished_spans()
    return span


def test_a_call_is_one_client_span_with_the_genai_attributes(
    exported: tuple[UsageSpans, InMemorySpanExporter],
) -> None:
    spans, exporter = exported
    spans.emit(record())
    span = only_span(exporter)
    assert span.name == "chat gpt-4o" and span.kind is SpanKind.CLIENT
    assert span.end_time == int(TS * 1e9)
    assert span.end_time - span.start_time == 812_500_000
    assert span.status.status_code is StatusCode.UNSET
    assert (
        span.instrumentation_scope is not None and span.instrumentation_scope.name == "llm_router"
    )
    assert dict(span.attributes or {}) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.system": "openai",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.response.model": "gpt-4o-2024-08-06",
        "gen_ai.usage.input_tokens": 1200,
        "gen_ai.usage.output_tokens": 300,
        "gen_ai.usage.cache_read.input_tokens": 1000,
        "gen_ai.conversation.id": "conv-9",
        "llm_router.request_id": "req-1",
        "llm_router.source": "gateway",
        "llm_router.key_id": "openai-a-1",
        "llm_router.vkey": "vk-0123456789ab",
        "llm_router.user": "alice",
        "llm_router.team": "ml",
        "llm_router.attempts": 2,
        "llm_router.rotations": 1,
        "llm_router.waited_ms": 40.0,
        "llm_router.latency_ms": 812.5,
        "llm_router.provider_ms": 760.0,
        "llm_router.cost_usd": 0.00475,
        "llm_router.fallback_used": False,
        "llm_router.degraded": False,
        "llm_router.stream": False,
        "llm_router.usage_reported": True,
        "llm_router.cached_tokens": 1000,
        "llm_router.reasoning_tokens": 0,
    }


def test_a_failed_call_has_error_type_and_status_error(
    exported: tuple[UsageSpans, InMemorySpanExporter],
) -> None:
    spans, exporter = exported
    spans.emit(
        record(
            success=False,
            error_type="rate_limited",
            model=None,
            provider=None,
            key_id=None,
            cost=None,
            requested_model="claude-sonnet-4-5",
        )
    )
    span = only_span(exporter)
    attrs = dict(span.attributes or {})
    assert span.status.status_code is StatusCode.ERROR
    assert attrs["error.type"] == "rate_limited"
    assert attrs["gen_ai.provider.name"] == "anthropic"  # from the requested model's name
    for absent in ("gen_ai.response.model", "llm_router.key_id", "llm_router.cost_usd"):
        assert absent not in attrs, "unknown values are left out, never faked"


@pytest.mark.parametrize(
    ("provider", "name"),
    [("gemini", "gcp.gemini"), ("anthropic", "anthropic"), ("azure", "azure.ai.openai")],
)
def test_provider_names_follow_the_conventions(
    exported: tuple[UsageSpans, InMemorySpanExporter], provider: str, name: str
) -> None:
    spans, exporter = exported
    spans.emit(record(provider=provider))
    assert dict(only_span(exporter).attributes or {})["gen_ai.provider.name"] == name


def test_no_prompt_or_completion_text_in_any_span(
    exported: tuple[UsageSpans, InMemorySpanExporter],
) -> None:
    canary = "canary-" + secrets.token_hex(8)
    spans, exporter = exported
    spans.emit(record(prompt=f"tell me {canary}", completion=f"here is {canary}"))
    spans.emit(record(prompt=canary, completion=canary, success=False, error_type="server_error"))
    finished = exporter.get_finished_spans()
    assert len(finished) == 2
    for span in finished:
        assert canary not in span.to_json()  # name, attributes, events, links, resource
        texts = [str(k) + str(v) for k, v in (span.attributes or {}).items()]
        texts += [e.name + str(dict(e.attributes or {})) for e in span.events]
        assert not any(canary in text for text in texts)
        assert not span.events


def test_no_endpoint_no_spans() -> None:
    assert UsageSpans.from_settings(Settings.from_env({})) is None
    assert UsageSpans.from_settings(Settings.from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": " "})) is None


def test_without_the_extra_it_logs_once_and_answers_none(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # the exporter package "not installed": importing it fails as it would without the extra
    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.http.trace_exporter", None)
    monkeypatch.setattr(telemetry, "_missing_extra_logged", False)
    settings = Settings.from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"})
    with log_events(caplog) as events:
        assert UsageSpans.from_settings(settings) is None
        assert UsageSpans.from_settings(settings) is None
    warnings = [e for e in events if "otel extra is not installed" in str(e.get("event"))]
    assert len(warnings) == 1


class _Receiver(BaseHTTPRequestHandler):
    bodies: list[tuple[str, bytes]]
    arrived: threading.Event

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.bodies.append((self.path, body))
        self.arrived.set()  # before the answer: the exporter returns once it has it
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture
def otlp_receiver() -> Iterator[tuple[str, type[_Receiver]]]:
    handler = type("Receiver", (_Receiver,), {"bodies": [], "arrived": threading.Event()})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


def test_spans_reach_a_real_otlp_endpoint(otlp_receiver: tuple[str, type[_Receiver]]) -> None:
    url, handler = otlp_receiver
    canary = "canary-" + secrets.token_hex(8)
    spans = UsageSpans.from_settings(Settings.from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": url + "/"}))
    assert spans is not None
    spans.emit(record(prompt=canary, completion=canary))
    spans.shutdown()  # flushes the batch
    assert handler.arrived.is_set()
    ((path, body),) = handler.bodies
    assert path == "/v1/traces"
    assert canary.encode() not in body
    request = ExportTraceServiceRequest.FromString(body)
    (resource_spans,) = request.resource_spans
    service = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
    assert service["service.name"] == "llm-keypool-router"
    ((span,),) = [scope.spans for scope in resource_spans.scope_spans]
    assert span.name == "chat gpt-4o"
    attrs = {a.key: a.value for a in span.attributes}
    assert attrs["gen_ai.usage.input_tokens"].int_value == 1200
    assert attrs["llm_router.key_id"].string_value == "openai-a-1"
    assert span.end_time_unix_nano == int(TS * 1e9)


def test_a_span_that_cannot_be_made_is_logged_never_raised(
    exported: tuple[UsageSpans, InMemorySpanExporter], caplog: pytest.LogCaptureFixture
) -> None:
    spans, exporter = exported
    with log_events(caplog) as events:
        spans.emit(record(ts=float("nan")))  # the answer's path must not fail on telemetry
    assert exporter.get_finished_spans() == ()
    assert [e["error"] for e in events if e.get("event") == "opentelemetry span not emitted"] == [
        "ValueError"
    ]
