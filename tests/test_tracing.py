"""OpenTelemetry spans (the `aicn[otel]` extra): one per operation, one per connector call,
captured by the SDK's in-memory exporter."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from aicn.telemetry import configure_tracing
from aicn.watch_settings import TelemetrySettings
from tests.conftest import Gateway
from tests.jobs_helpers import python_job, submit, wait_for_state

EXPORTER = InMemorySpanExporter()


@pytest.fixture(scope="module")
def spans() -> Iterator[InMemorySpanExporter]:
    """The process's tracer provider can be set once: this module's, with an in-memory exporter."""
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(EXPORTER))
    trace.set_tracer_provider(provider)
    assert trace.get_tracer_provider() is provider, "another test set the tracer provider first"
    yield EXPORTER
    EXPORTER.shutdown()  # later tests' spans are dropped, not kept in memory


async def test_each_operation_and_connector_call_has_a_span(spans: InMemorySpanExporter, gateway: Gateway) -> None:
    spans.clear()
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


def test_no_endpoint_exports_nothing() -> None:
    assert configure_tracing(TelemetrySettings()) is False
