"""Exporting traces: an OTLP/HTTP exporter when ``[telemetry] otlp_endpoint`` is set.

Spans are made wherever the ``aicn[otel]`` extra is installed (graph/observe.py, the
connector calls, webhook deliveries); without an endpoint they go nowhere.
"""

from __future__ import annotations

from aicn.watch_settings import TelemetrySettings
from resolvers.common.tracing import AVAILABLE, process_provider_set


class TracingUnavailable(Exception):
    """An endpoint is configured, but the packages that export to it are not installed."""


def configure_tracing(settings: TelemetrySettings) -> bool:
    """Install the process's tracer provider; False when no endpoint is configured."""
    if settings.otlp_endpoint is None:
        return False
    try:
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        raise TracingUnavailable("telemetry.otlp_endpoint is set, but the tracing extra is missing: pip install 'aicn[otel]'") from None
    provider = TracerProvider(resource=Resource.create({"service.name": settings.service_name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=settings.otlp_endpoint)))
    trace.set_tracer_provider(provider)
    process_provider_set()
    return True


def flush_tracing(timeout_seconds: float = 5.0) -> None:
    """Export the spans still batched: at shutdown, before uvicorn re-raises the signal that
    stopped it (which ends the process without running atexit handlers)."""
    if not AVAILABLE:
        return
    from opentelemetry import trace

    provider = trace.get_tracer_provider()
    flush = getattr(provider, "force_flush", None)
    if flush is not None:
        flush(int(timeout_seconds * 1000))
