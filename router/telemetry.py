"""Optional OpenTelemetry export: one span per call, from its usage record.

With OTEL_EXPORTER_OTLP_ENDPOINT set and the ``otel`` extra installed
(``pip install 'llm-keypool-router[otel]'``), :meth:`UsageSpans.emit` turns each
:class:`kernel.usage_record.UsageRecord` into a span sent over OTLP/HTTP to
``<endpoint>/v1/traces`` (the exporter reads the other ``OTEL_EXPORTER_OTLP_*`` variables, such
as ``_HEADERS`` and ``_TIMEOUT``, itself; ``OTEL_SERVICE_NAME`` names the service).

The span follows the OpenTelemetry GenAI semantic conventions for a client inference call: named
``chat <requested model>``, kind CLIENT, from the call's start (``ts - latency``) to its end
(``ts``), with ``gen_ai.operation.name``, ``gen_ai.provider.name`` (and the older
``gen_ai.system``), ``gen_ai.request.model``, ``gen_ai.response.model``,
``gen_ai.usage.input_tokens``/``output_tokens``/``cache_read.input_tokens``,
``gen_ai.conversation.id``, and on failure ``error.type`` with status ERROR. The router's own
attributes are under ``llm_router.`` (:data:`ROUTER_ATTRIBUTES`).

Never in a span: the prompt or the completion text (attributes are copied from a fixed list of
the record's fields, which names neither), nor a secret (``key_id`` is the configured id).
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from kernel.log import get_logger
from kernel.providers import provider_of_model
from kernel.settings import Settings
from kernel.usage_record import UsageRecord

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

log = get_logger("router.telemetry")

#: ``gen_ai.provider.name`` of each provider (the semantic conventions' well-known values).
PROVIDER_NAMES = {
    "openai": "openai",
    "anthropic": "anthropic",
    "gemini": "gcp.gemini",
    "azure": "azure.ai.openai",
}
#: The record's fields copied to ``llm_router.<name>`` attributes (when not None).
ROUTER_ATTRIBUTES = (
    "request_id",
    "source",
    "key_id",
    "vkey",
    "user",
    "team",
    "attempts",
    "rotations",
    "fallback_used",
    "degraded",
    "stream",
    "usage_reported",
    "cached_tokens",
    "reasoning_tokens",
    "provider_ms",
)
#: The instrumentation scope the spans are created under.
SCOPE = "llm_router"
_missing_extra_logged = False


class UsageSpans:
    """Spans of usage records, created with ``tracer_provider`` (tests: the SDK's in-memory
    exporter; production: :meth:`from_settings`)."""

    def __init__(self, tracer_provider: TracerProvider) -> None:
        self.provider = tracer_provider
        self._tracer = tracer_provider.get_tracer(SCOPE)

    @classmethod
    def from_settings(cls, settings: Settings) -> UsageSpans | None:
        """Spans exported over OTLP/HTTP to OTEL_EXPORTER_OTLP_ENDPOINT; None when it is unset,
        or when the ``otel`` extra is not installed (logged once)."""
        endpoint = (settings.OTEL_EXPORTER_OTLP_ENDPOINT or "").strip()
        if not endpoint:
            return None
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor
        except ImportError as exc:
            _log_missing_extra(exc)
            return None
        named = os.environ.get("OTEL_SERVICE_NAME")
        resource = Resource.create({} if named else {"service.name": "llm-keypool-router"})
        provider = TracerProvider(resource=resource)
        exporter = OTLPSpanExporter(endpoint=endpoint.rstrip("/") + "/v1/traces")
        provider.add_span_processor(BatchSpanProcessor(exporter))
        log.info("opentelemetry export on", endpoint=_without_userinfo(endpoint))
        return cls(provider)

    def emit(self, record: UsageRecord) -> None:
        """One span for the call ``record`` describes; never raises (a failure is logged)."""
        try:
            self._emit(record)
        except Exception as exc:
            log.warning("opentelemetry span not emitted", error=type(exc).__name__)

    def _emit(self, record: UsageRecord) -> None:
        from opentelemetry.trace import SpanKind, Status, StatusCode

        end_ns = int(record.ts * 1e9) if record.ts else time.time_ns()
        start_ns = end_ns - int(max(record.latency_ms, 0.0) * 1e6)
        model = record.requested_model or record.model or ""
        span = self._tracer.start_span(
            f"chat {model}".strip(),
            kind=SpanKind.CLIENT,
            start_time=start_ns,
            attributes=span_attributes(record),
        )
        if not record.success:
            span.set_status(Status(StatusCode.ERROR))
        span.end(end_time=end_ns)

    def shutdown(self) -> None:
        """Send the spans still buffered and stop the exporter."""
        self.provider.shutdown()


def span_attributes(record: UsageRecord) -> dict[str, Any]:
    """The span's attributes: the GenAI conventions' and ``llm_router.*`` (never text)."""
    attrs: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": record.requested_model,
        "gen_ai.usage.input_tokens": record.prompt_tokens,
        "gen_ai.usage.output_tokens": record.completion_tokens,
        "gen_ai.usage.cache_read.input_tokens": record.cached_tokens,
        "llm_router.waited_ms": record.wait_ms,
        "llm_router.latency_ms": record.latency_ms,
    }
    provider = record.provider or provider_of_model(record.requested_model)
    if provider:
        attrs["gen_ai.provider.name"] = attrs["gen_ai.system"] = PROVIDER_NAMES.get(
            provider, provider
        )
    if record.model:
        attrs["gen_ai.response.model"] = record.model
    if record.conversation_id:
        attrs["gen_ai.conversation.id"] = record.conversation_id
    if not record.success:
        attrs["error.type"] = record.error_type or "_OTHER"
    if record.cost is not None:
        attrs["llm_router.cost_usd"] = record.cost
    for name in ROUTER_ATTRIBUTES:
        value = getattr(record, name)
        if value is not None:
            attrs[f"llm_router.{name}"] = value
    return attrs


def _without_userinfo(url: str) -> str:
    """``url`` without a ``user:password@`` part (logs never hold credentials)."""
    parts = urlsplit(url)
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()


def _log_missing_extra(exc: ImportError) -> None:
    global _missing_extra_logged
    if _missing_extra_logged:
        return
    _missing_extra_logged = True
    log.warning(
        "OTEL_EXPORTER_OTLP_ENDPOINT is set but the otel extra is not installed: no spans "
        "(pip install 'llm-keypool-router[otel]')",
        missing=exc.name,
    )
