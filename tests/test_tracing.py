"""OpenTelemetry spans (the `aicn[otel]` extra): one per operation, one per connector call,
captured by the SDK's in-memory exporter."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from aicn.telemetry import configure_tracing
from aicn.watch_settings import TelemetrySettings
from resolvers.common.tracing import active, use_provider
from tests.conftest import DatabaseChoice, Gateway
from tests.jobs_helpers import python_job, submit, wait_for_state
from tests.served_gateway import ServedGateway, write_config


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


@pytest.fixture
def collector() -> Iterator[tuple[str, list[bytes]]]:
    """An OTLP/HTTP traces receiver on loopback: it keeps each export request's body."""
    bodies: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            return

        def do_POST(self) -> None:
            bodies.append(self.rfile.read(int(self.headers["content-length"])))
            self.send_response(200)
            self.send_header("content-type", "application/x-protobuf")
            self.send_header("content-length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1/traces", bodies
    finally:
        server.shutdown()
        server.server_close()


SPAN_AFTER_A_FIRST_LOOK = """
import sys
from aicn.telemetry import configure_tracing, flush_tracing
from aicn.watch_settings import TelemetrySettings
from resolvers.common import tracing

assert not tracing.active()  # looked up (and kept) before any provider is set
assert configure_tracing(TelemetrySettings(otlp_endpoint=sys.argv[1]))
assert tracing.active()
with tracing.span("after a first look"):
    pass
flush_tracing()
"""


def test_a_provider_set_after_active_was_first_asked_gets_the_spans(collector: tuple[str, list[bytes]]) -> None:
    """``active`` keeps what it looked up (the look-up reads the environment, and every center call
    asks), yet sees the provider ``configure_tracing`` sets afterwards. In a process of its own: the
    process's provider can be set only once."""
    endpoint, bodies = collector
    subprocess.run([sys.executable, "-c", SPAN_AFTER_A_FIRST_LOOK, endpoint], check=True, cwd=Path(__file__).parent.parent, timeout=60)
    names = {
        span.name
        for body in bodies
        for resource_spans in ExportTraceServiceRequest.FromString(body).resource_spans
        for scope in resource_spans.scope_spans
        for span in scope.spans
    }
    assert names == {"after a first look"}


async def test_a_served_gateway_exports_its_spans_by_otlp(
    database: DatabaseChoice, tmp_path: Path, collector: tuple[str, list[bytes]]
) -> None:
    endpoint, bodies = collector
    assert database.url is not None
    config = write_config(tmp_path, database.url, database.schema)
    config.write_text(config.read_text() + f'\n[telemetry]\notlp_endpoint = "{endpoint}"\nservice_name = "aicn-under-test"\n')
    served = ServedGateway(config)
    try:
        await served.start()
        await served.client.execute("query Exported { centers { edges { node { name } } } }")
    finally:
        await served.stop()  # a clean exit flushes the batch

    names: set[str] = set()
    services: set[str] = set()
    for body in bodies:
        request = ExportTraceServiceRequest.FromString(body)
        for resource_spans in request.resource_spans:
            services.update(a.value.string_value for a in resource_spans.resource.attributes if a.key == "service.name")
            names.update(span.name for scope in resource_spans.scope_spans for span in scope.spans)
    assert "GraphQL Query: Exported" in names and "connector call" in names, names
    assert services == {"aicn-under-test"}
