"""OpenTelemetry spans (the `aicn[otel]` extra): one per operation, one per connector call,
captured by the SDK's in-memory exporter."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from aicn.telemetry import configure_tracing
from aicn.watch_settings import TelemetrySettings
from resolvers.common.tracing import active, use_provider
from tests.conftest import Gateway
from tests.jobs_helpers import python_job, submit, wait_for_state


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Spans go to an in-memory exporter during the test (the process's provider is left alone:
    it can be set only once, and other tests run untraced)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    use_provider(provider)
    try:
        yield exporter
    finally:
        use_provider(None)
        provider.shutdown()


async def test_each_operation_and_connector_call_has_a_span(spans: InMemorySpanExporter, gateway: Gateway) -> None:
    await gateway.client.execute("query Centers { centers { edges { node { name } } } }")
    job = await submit(gateway.client, python_job("pass"))
    await wait_for_state(gateway.client, job["id"], {"SUCCEEDED"})
    finished = spans.get_finished_spans()
    names = [span.name for span in finished]
    assert "GraphQL Query: Centers" in names and "GraphQL Query: Submit" in names
    calls = [span for span in finished if span.name == "connector call"]
    assert calls and all(span.attributes is not None and span.attributes["aicn.center"] == "local" for span in calls)
    submitted = next(span for span in finished if span.name == "GraphQL Query: Submit")
    assert any(
        call.parent is not None and call.context.trace_id == submitted.context.trace_id for call in calls
    )  # submitting calls the center
    assert not any("graphql.param" in key for span in finished for key in (span.attributes or {}))  # no resolver arguments leave


def test_no_endpoint_exports_nothing_and_no_span_is_made() -> None:
    assert configure_tracing(TelemetrySettings()) is False
    assert not active()
